"""The built-in image set: deterministic, tagged, any size."""
import numpy as np
import pytest
import torch

from prompt_pinning.builtin import images as image_module
from prompt_pinning.builtin.images import (
    IMAGE_COUNT, PALETTE, SHAPES, draw_scene, draw_scenes, image_set, position_tags, size_tag,
)


def test_set_is_cached_and_well_formed():
    first = image_set(64, 64)
    assert image_set(64, 64) is first
    assert first.images.shape == (IMAGE_COUNT, 3, 64, 64)
    assert first.images.dtype == torch.float32
    assert 0.0 <= float(first.images.min()) and float(first.images.max()) <= 1.0
    assert first.tag_matrix.shape == (IMAGE_COUNT, len(first.tag_names))
    assert torch.equal(first.tag_matrix.sum(1), torch.tensor([float(len(t)) for t in first.tags]))


def test_scenes_are_deterministic_and_varied():
    a, b = draw_scenes(), draw_scenes()
    assert a == b
    assert len({s.shape for s in a}) == len(SHAPES)
    assert len({s.colour_name for s in a}) == len(PALETTE)
    radii = np.array([s.radius for s in a])
    assert len(np.unique(radii)) == len(a)  # continuous, not a grid
    assert all(s.colour_name != s.background_name for s in a)


def test_every_image_names_shape_colour_background_size_and_place():
    for tags, scene in zip(image_set().tags, draw_scenes()):
        assert {scene.shape, scene.colour_name, f"{scene.background_name} background"} <= tags
        assert size_tag(scene.radius) in tags
        assert position_tags(scene.centre_x, scene.centre_y) <= tags


def test_shape_pixels_carry_the_tagged_colour():
    scene = next(s for s in draw_scenes() if s.shape == "circle" and s.radius > 0.25)
    pixels = draw_scene(scene, 64, 64)
    cx, cy = int(scene.centre_x * 64), int(scene.centre_y * 64)
    np.testing.assert_allclose(pixels[:, cy, cx], scene.colour, atol=1e-6)
    corner = pixels[:, 0, 0] if scene.centre_x > 0.5 else pixels[:, 0, 63]
    assert np.abs(corner - np.asarray(scene.background)).max() < 0.15  # background, up to shading


def test_other_sizes_draw_the_same_scenes():
    small, large = image_set(64, 64), image_set(128, 128)
    assert large.images.shape == (IMAGE_COUNT, 3, 128, 128)
    assert large.tags == small.tags
    # Resolution-free drawing: the 128 px set averaged down to 64 px is the 64 px set, up to edges.
    halved = torch.nn.functional.avg_pool2d(large.images, 2)
    assert float((halved - small.images).abs().mean()) < 0.01
    wide = image_set(96, 48)
    assert wide.images.shape == (IMAGE_COUNT, 3, 48, 96) and wide.tags == small.tags


@pytest.mark.parametrize("size", [(7, 64), (64, 0), (64.0, 64), (True, 64)])
def test_bad_sizes_are_rejected(size):
    with pytest.raises(ValueError, match="width|height"):
        image_module.image_set(*size)
