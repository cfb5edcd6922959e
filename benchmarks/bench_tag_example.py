"""The README's tag-target example on the built-in model: pin "red" over "blue".

The prompt "a red or blue circle, on a white background" names both colours, so
the shape comes out between them. The run wants the tag "red" and does not want
"blue" (tag loss added to the default image loss, weight 1, the built-in
model's exact tagger). The red and blue tags' mean probabilities are measured
on held-out seeds (disjoint from every training and validation seed of the
run), for the unmodified prompt and for the result, with the CLI's generation
defaults.

    OMP_NUM_THREADS=1 python benchmarks/bench_tag_example.py [--heldout-batches 4] [--cma-seeds 3]
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
from prompt_pinning.rendering import GenerationSettings  # noqa: E402
from prompt_pinning.run import run_pinning  # noqa: E402

PROMPT = "a red or blue circle, on a white background"
HELD_OUT_SEED = 50_000  # far past every seed the runs use


def held_out(renderer, prompt: tuple[str, str], settings: GenerationSettings, batches: int) -> dict[str, float]:
    red, blue = [], []
    for k in range(batches):
        (batch,) = renderer.render([prompt], settings.with_(seed=HELD_OUT_SEED + k * settings.batch_size))
        red.append(batch.tag_probabilities["red"].mean())
        blue.append(batch.tag_probabilities["blue"].mean())
    return {"red": float(np.mean(red)), "blue": float(np.mean(blue))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heldout-batches", type=int, default=4)
    parser.add_argument("--cma-seeds", type=int, default=3)
    parser.add_argument("--generations", type=int, default=0, help="0: the default for the prompt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    renderer = BuiltinRenderer(tags=True)
    settings = GenerationSettings(seed=1)  # the CLI's defaults: batch 8, 64x64, 12 steps, CFG 3
    before = held_out(renderer, (PROMPT, ""), settings, args.heldout_batches)
    after, started = [], time.perf_counter()
    for cma_seed in range(1, args.cma_seeds + 1):
        config = PinningConfig(PROMPT, generation=settings, wanted_tags="red", unwanted_tags="blue",
                               cma_seed=cma_seed, cma_logging=False, generations=args.generations)
        result = run_pinning(config, renderer, store=MemoryStore())
        after.append(held_out(renderer, (result.best.positive, result.best.negative), settings, args.heldout_batches))
        print(f"cma seed {cma_seed}: {result.best.positive!r}: held-out p(red) {after[-1]['red']:.3f}, "
              f"p(blue) {after[-1]['blue']:.3f}", flush=True)
    print(f"\nheld-out: {args.heldout_batches} batches of {settings.batch_size} seeds from {HELD_OUT_SEED}; "
          f"{args.cma_seeds} runs took {time.perf_counter() - started:.1f} s")
    print("| prompt | p(red), held-out | p(blue), held-out |")
    print("|---|---|---|")
    print(f"| unmodified prompt | {before['red']:.3f} | {before['blue']:.3f} |")
    print(f"| pinned to red over blue (mean of {args.cma_seeds} runs) | {np.mean([a['red'] for a in after]):.3f} | "
          f"{np.mean([a['blue'] for a in after]):.3f} |")
    print(f"| runs raising p(red) | {sum(a['red'] > before['red'] for a in after)} of {len(after)} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
