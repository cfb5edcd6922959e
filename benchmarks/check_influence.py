"""Do the influence maps point the right way? A check on the built-in model.

For each prompt, a pinning run with the ``fixed`` seed schedule (so every image slot is
one seed and its map lies on that seed's picture), then, from the run's
influence_maps.npz and the unmodified prompt's images:

- colour word: share of its colour map on the shape (the pixels nearer the shape's
  colour than the background's), against the shape's share of the picture;
- background colour word ("X background"): share of its colour map on the background;
- place word: the shift of the shape's centre its weight causes (pixels per unit of
  weight, from the map projected on shape colour minus background colour), in how many
  seeds it points the named way, and in how many its direction agrees with a direct
  render of the word at weight 1.2 (the pull goes towards a point a quarter from that
  side, so a shape already past it moves back);
- filler words ("a", "the", "on", "at", ","): the strongest one's strength as a share of the
  colour word's and of the strongest unit's.

    OMP_NUM_THREADS=1 python benchmarks/check_influence.py [--generations 0] [--cma-seeds 1]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prompt_pinning.builtin import BuiltinRenderer  # noqa: E402
from prompt_pinning.builtin.layouts import PALETTE  # noqa: E402
from prompt_pinning.config import PinningConfig  # noqa: E402
from prompt_pinning.run.files import read_json, read_npz  # noqa: E402
from prompt_pinning.reports import ReportWriter  # noqa: E402
from prompt_pinning.reports.influence import InfluenceMaps, read_map_image, rgb_coefficients  # noqa: E402
from prompt_pinning.reports.map_drawing import opponent_to_rgb  # noqa: E402
from prompt_pinning.rendering import GenerationSettings  # noqa: E402
from prompt_pinning.run import run_pinning  # noqa: E402

# prompt, shape colour, background colour, place word, its direction (x, y)
CASES = [
    ("a red circle on the left, on a blue background", "red", "blue", "left", (-1, 0)),
    ("a yellow square at the top, on a green background", "yellow", "green", "top", (0, -1)),
    ("a white ring on the right, on a purple background", "white", "purple", "right", (1, 0)),
]
FILLERS = ("a", "the", "on", "at", ",")


def load_maps(run_dir: Path) -> tuple[np.ndarray, list[str]]:
    info = read_json(run_dir / "influence_maps.json")
    arrays = read_npz(run_dir / "influence_maps.npz", {
        "coefficients": ("f", lambda s: len(s) == 5), "mean_images": ("f", lambda s: len(s) == 4),
        "unit_labels": ("U", lambda s: len(s) == 1), "channels": ("U", lambda s: len(s) == 1)})
    maps = InfluenceMaps(arrays["coefficients"], arrays["mean_images"], info["individuals"], info["groups"],
                         info["ridge"], info["aligned"])
    assert maps.aligned, "the check needs the fixed seed schedule"
    return rgb_coefficients(maps), [str(v) for v in arrays["unit_labels"]]


def shape_masks(run_dir: Path, shape: str, background: str, slots: int, size) -> np.ndarray:
    summary = read_json(run_dir / "final_result.json")["baseline"]
    folder = run_dir / summary["folder"]
    masks = []
    for name in summary["image_files"][:slots]:
        rgb = opponent_to_rgb(read_map_image(folder / name, size)).astype(np.float64) / 255
        near_shape = np.linalg.norm(rgb - PALETTE[shape], axis=2) < np.linalg.norm(rgb - PALETTE[background], axis=2)
        masks.append(near_shape)
    return np.array(masks)


def moved(shapeness: np.ndarray, mask: np.ndarray, along: np.ndarray) -> float:
    """Shift of the shape's centre along ``along`` that a change of shape-ness implies, in pixels.

    A uniform change inside the shape or over the background (a colour change the unit also
    makes) is taken out first: only the change at the edges says where the shape goes."""
    s = shapeness.copy()
    for region in (mask, ~mask):
        if region.any():
            s[region] -= s[region].mean()
    centre = (along * mask).sum() / max(1, mask.sum())
    return float((s * (along - centre)).sum() / max(1, mask.sum()))


def rendered_shift(settings, prompt: str, place: str, shape: str, background: str, along: np.ndarray) -> np.ndarray:
    """What the maps should say, rendered directly: the shape's centre moves per unit of weight
    when the place word goes from 1.0 to 1.2 (the check's own renders, not the run's)."""
    renderer = BuiltinRenderer()
    centres = []
    for text in (prompt, prompt.replace(f" {place}", f" ({place}:1.2)", 1)):
        (batch,) = renderer.render([(text, "")], settings)
        images = batch.images.permute(0, 2, 3, 1).numpy().astype(np.float64)
        masks = (np.linalg.norm(images - PALETTE[shape], axis=3)
                 < np.linalg.norm(images - PALETTE[background], axis=3))
        centres.append([(along * m).sum() / max(1, m.sum()) for m in masks])
    return (np.array(centres[1]) - np.array(centres[0])) / 0.2


def check(case, generations: int, cma_seed: int, root: Path) -> dict[str, float]:
    prompt, shape, background, place, direction = case
    config = PinningConfig(positive=prompt, negative="", seed_schedule="fixed", cma_seed=cma_seed,
                           generations=generations or None, outdir=root,
                           generation=GenerationSettings(seed=11, batch_size=8, steps=12, width=64, height=64))
    result = run_pinning(config, BuiltinRenderer(), sink=ReportWriter())
    rgb, labels = load_maps(result.run_dir)
    units, slots, _, h, w = rgb.shape
    masks = shape_masks(result.run_dir, shape, background, slots, (w, h))
    colour = np.sqrt(np.square(rgb).sum(axis=2))  # (N, slots, h, w), all channels
    index = {label: k for k, label in reversed(list(enumerate(labels)))}  # first occurrence

    def share(unit: int, where: np.ndarray) -> float:
        return float((colour[unit] * where).sum() / colour[unit].sum())

    contrast = np.array(PALETTE[shape]) - np.array(PALETTE[background])
    shapeness = np.einsum("nschw,c->nshw", rgb, contrast / contrast.dot(contrast))[index[place]]
    ys, xs = np.mgrid[0:h, 0:w]
    along = xs * direction[0] + ys * direction[1]  # coordinate along the named direction
    shift = np.array([moved(shapeness[k], masks[k], along) for k in range(slots)])
    rendered = rendered_shift(config.generation, prompt, place, shape, background, along)
    strength = colour.mean(axis=(1, 2, 3))
    fillers = [strength[k] for k, label in enumerate(labels) if label in FILLERS]
    return {
        "individuals": read_json(result.run_dir / "influence_maps.json")["individuals"],
        "shape_area": float(masks.mean()),
        "colour_on_shape": share(index[shape], masks),
        "background_word_on_background": share(index["background"], ~masks),
        "background_colour_on_background": share(index[background], ~masks),
        "place_shift": float(shift.mean()), "place_right_way": int((shift > 0).sum()), "slots": slots,
        "rendered_right_way": int((rendered > 0).sum()),
        "agree": int((np.sign(shift) == np.sign(rendered)).sum()),
        "filler_share": float(max(fillers) / strength[index[shape]]),
        "filler_of_strongest": float(max(fillers) / strength.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=0, help="0: the run's default")
    parser.add_argument("--cma-seeds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            for cma_seed in range(1, args.cma_seeds + 1):
                r = check(case, args.generations, cma_seed, Path(tmp))
                print(f"{case[0]!r} (CMA seed {cma_seed}, {r['individuals']} individuals):")
                print(f"  '{case[1]}' map on the shape: {r['colour_on_shape']:.0%} (shape area "
                      f"{r['shape_area']:.0%}); '{case[2]}' on the background: "
                      f"{r['background_colour_on_background']:.0%}, 'background' on it: "
                      f"{r['background_word_on_background']:.0%} (background area {1 - r['shape_area']:.0%})")
                print(f"  '{case[3]}' moves the shape {r['place_shift']:+.2f} px per unit of weight towards "
                      f"{case[3]}; the named way in {r['place_right_way']} of {r['slots']} seeds (rendered directly: "
                      f"{r['rendered_right_way']}; the map's direction agrees with the render in {r['agree']})")
                print(f"  strongest filler word: {r['filler_share']:.1%} of the colour word's strength, "
                      f"{r['filler_of_strongest']:.1%} of the strongest unit's")


if __name__ == "__main__":
    main()
