"""The README's masked-target example on the built-in model: pin the background, leave the shape free.

The prompt leaves both colours open ("a small red or yellow circle, center, on a
blue or green background": each pair of colour words gives a colour between the
two, which the weights move). The targets are renders of "a small yellow circle,
center, on a <colour> background", for a green and a blue background in turn;
the mask counts only a border of BORDER pixels,
where the background is (the small centred shape stays inside), so the shape is
free. The same run without the mask is the comparison. Every figure is measured
on held-out seeds (disjoint from every training and validation seed of the runs):

* the masked loss (border pixels only) against the targets;
* the border's colour (per image, the per-channel median of its border pixels, so
  a shape reaching into the border does not count) against the targets' median,
  as an RGB distance: the background;
* the built-in model's exact tag probabilities (builtin/tags.py) of "<colour>
  background" and "yellow" (the shape's colour, which the mask leaves free).

    OMP_NUM_THREADS=1 python benchmarks/bench_masked_example.py [--heldout-batches 4] [--cma-seeds 2]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prompt_pinning import MemoryStore  # noqa: E402
from prompt_pinning.builtin import BuiltinRenderer  # noqa: E402
from prompt_pinning.config import PinningConfig  # noqa: E402
from prompt_pinning.score.loss import PinningLoss  # noqa: E402
from prompt_pinning.rendering import GenerationSettings  # noqa: E402
from prompt_pinning.run import run_pinning  # noqa: E402

PROMPT = "a small red or yellow circle, center, on a blue or green background"
TARGET_PROMPT = "a small yellow circle, center, on a {} background"
BACKGROUNDS = ("green", "blue")
SIZE, BORDER = 64, 16
SETTINGS = GenerationSettings(seed=100, batch_size=8, steps=12, width=SIZE, height=SIZE, cfg_scale=3.0,
                              sampler="DPM++ 2M", scheduler="karras")
HELD_OUT_SEED = 50_000  # far past every seed the runs use (100 .. a few hundred)


def border_mask() -> torch.Tensor:
    mask = torch.ones(SIZE, SIZE)
    mask[BORDER:-BORDER, BORDER:-BORDER] = 0.0
    return mask


def measure(renderer, prompt, targets, mask, batches: int, colour: str) -> dict[str, float]:
    loss = PinningLoss(targets, mask=mask, hyperbatch_weights=False)
    values, background, shape, distance = [], [], [], []
    border = lambda images: images[:, :, mask.bool()].median(dim=2).values  # noqa: E731
    wanted = border(targets).median(dim=0).values
    for k in range(batches):
        settings = SETTINGS.with_(seed=HELD_OUT_SEED + k * SETTINGS.batch_size)
        (batch,) = renderer.render([prompt], settings)
        values.append(loss.evaluate(batch.images).value)
        background.append(batch.tag_probabilities[f"{colour} background"].mean())
        shape.append(batch.tag_probabilities["yellow"].mean())
        distance.append(torch.linalg.norm(border(batch.images) - wanted, dim=1).mean().item())
    return {"masked loss": float(np.mean(values)), "border distance": float(np.mean(distance)),
            "background": float(np.mean(background)),
            "yellow": float(np.mean(shape))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout-batches", type=int, default=4)
    parser.add_argument("--cma-seeds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    renderer = BuiltinRenderer(tags=True)  # the tag posteriors change no image
    mask = border_mask()
    started = time.perf_counter()
    lines = []
    for colour in BACKGROUNDS:
        (target,) = renderer.render([(TARGET_PROMPT.format(colour), "")], SETTINGS.with_(seed=7_000))
        rows = {"unmodified prompt": [measure(renderer, (PROMPT, ""), target.images, mask,
                                              args.heldout_batches, colour)]}
        for cma_seed in range(1, args.cma_seeds + 1):
            for name, run_mask in (("pinned with the mask", mask), ("pinned without a mask", None)):
                config = PinningConfig(PROMPT, generation=SETTINGS, targets=[target.images], target_mask=run_mask,
                                       cma_seed=cma_seed, cma_logging=False)
                result = run_pinning(config, renderer, store=MemoryStore())
                best = (result.best.positive, result.best.negative)
                rows.setdefault(name, []).append(measure(renderer, best, target.images, mask,
                                                         args.heldout_batches, colour))
                print(f"{colour} background, cma seed {cma_seed}, {name}: {best[0]!r}", flush=True)
        for name, measured in rows.items():
            mean = {key: np.mean([m[key] for m in measured]) for key in measured[0]}
            lines.append(f"| {colour} | {name} | {mean['masked loss']:.4f} | {mean['border distance']:.3f} | "
                         f"{mean['background']:.3f} | {mean['yellow']:.3f} |")
    print(f"\nheld-out: {args.heldout_batches} batches of {SETTINGS.batch_size} seeds from {HELD_OUT_SEED}; "
          f"{args.cma_seeds} CMA seeds per run kind; border mask of {BORDER} px on {SIZE}x{SIZE}; "
          f"runs took {time.perf_counter() - started:.1f} s")
    print("| target background | prompt | masked loss (border) | border colour distance | "
          "p(target background) | p(yellow), the free shape |")
    print("|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
