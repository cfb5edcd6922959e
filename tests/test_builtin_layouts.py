"""The built-in layouts: deterministic, any size, moved continuously by a geometry vector."""
import math

import pytest
import torch

from prompt_pinning.builtin import layouts as geo
from prompt_pinning.builtin.layouts import (
    LAYOUT_COUNT, SHAPES, coverage, draw_layouts, neutral_geometry, placed, shape_distance,
)


def test_layouts_are_deterministic_balanced_and_continuous():
    a = draw_layouts()
    b = draw_layouts.__wrapped__()  # drawn again, not from the cache
    assert len(a) == LAYOUT_COUNT
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("shape", "centre_x", "radius", "rotation"))
    assert torch.bincount(a.shape).tolist() == [LAYOUT_COUNT // len(SHAPES) + (k < LAYOUT_COUNT % len(SHAPES))
                                                 for k in range(len(SHAPES))]
    assert len(torch.unique(a.radius)) == LAYOUT_COUNT
    assert float(a.centre_x.min()) > 0 and float(a.centre_x.max()) < 1


def test_neutral_geometry_draws_the_layout_shapes():
    layouts = draw_layouts()
    mask, shade = coverage(layouts, neutral_geometry(), 64, 64, 64, 64, select=torch.arange(14))
    assert mask.shape == shade.shape == (14, 64, 64)
    assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    for k in range(14):
        cx, cy = float(layouts.centre_x[k]) * 64, float(layouts.centre_y[k]) * 64
        ys, xs = torch.meshgrid(torch.arange(64) + 0.5, torch.arange(64) + 0.5, indexing="ij")
        inside = mask[k] > 0.5
        if SHAPES[int(layouts.shape[k])] not in ("ring", "stripes"):
            assert float(mask[k, int(cy), int(cx)]) > 0.5  # filled shapes cover their centre
        assert abs(float(xs[inside].mean()) - cx) < 3 and abs(float(ys[inside].mean()) - cy) < 3
    assert float(shade.min()) >= 1 - geo.SHADE_RANGE and float(shade.max()) <= 1 + geo.SHADE_RANGE


def test_geometry_scales_pulls_and_morphs_every_layout():
    layouts = draw_layouts()
    neutral = neutral_geometry()
    larger = neutral.clone()
    larger[geo.LOG_SCALE] = 0.3
    area = lambda g: coverage(layouts, g, 64, 64, 32, 32)[0].sum((1, 2))
    assert bool((area(larger) > area(neutral)).all())
    left = neutral.clone()
    left[geo.TARGET_X], left[geo.PULL_X] = 0.25, 0.5
    cx, _, _ = placed(layouts, left)
    assert torch.allclose(cx, layouts.centre_x + 0.5 * (0.25 - layouts.centre_x))
    ring = neutral.clone()
    ring[geo.OWN_SHAPE], ring[geo.SHAPE_MIX] = 0.0, torch.eye(len(SHAPES))[SHAPES.index("ring")].double()
    mask = coverage(layouts, ring, 64, 64, 64, 64, select=torch.tensor([0, 1, 2]))[0]
    for k in range(3):  # every layout is now a ring: its centre is empty
        cx, cy = float(layouts.centre_x[k]) * 64, float(layouts.centre_y[k]) * 64
        assert float(mask[k, int(cy), int(cx)]) < 0.5


def test_morphing_is_continuous():
    layouts = draw_layouts()
    masks = []
    for share in (0.5, 0.501, 0.502, 0.6):
        g = neutral_geometry()
        g[geo.OWN_SHAPE], g[geo.SHAPE_MIX] = 1 - share, share * torch.eye(len(SHAPES))[0].double()
        masks.append(coverage(layouts, g, 64, 64, 32, 32, select=torch.arange(20))[0])
    near, nearish, far = ((m - masks[0]).abs().mean() for m in masks[1:])
    assert 0 < near < nearish < far / 10


def test_other_sizes_draw_the_same_scenes():
    layouts, g = draw_layouts(), neutral_geometry()
    small = coverage(layouts, g, 64, 64, 64, 64, select=torch.arange(30))[0]
    large = coverage(layouts, g, 128, 128, 128, 128, select=torch.arange(30))[0]
    halved = torch.nn.functional.avg_pool2d(large[:, None], 2)[:, 0]
    assert float((halved - small).abs().mean()) < 0.01
    wide = coverage(layouts, g, 96, 48, 96, 48, select=torch.arange(3))[0]
    assert wide.shape == (3, 48, 96)


def test_shape_distance_rejects_unknown_shapes():
    with pytest.raises(ValueError, match="shape must be one of"):
        shape_distance("hexagon", torch.zeros(1), torch.zeros(1), torch.ones(()))
    r = torch.tensor(0.3)
    assert float(shape_distance("circle", torch.tensor([0.0]), torch.tensor([0.0]), r)) == pytest.approx(-0.3)
    assert math.isclose(float(shape_distance("circle", torch.tensor([0.5]), torch.tensor([0.0]), r)), 0.2,
                        rel_tol=1e-6)
