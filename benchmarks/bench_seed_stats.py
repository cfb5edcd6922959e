"""How much do a batch's contrast and colourfulness vary with its seeds alone?

For each of bench_quality.py's prompts, the unmodified prompt is rendered on
``--blocks`` consecutive blocks of seeds (bench_quality's generation settings)
and each block's mean contrast and colourfulness (``prompt_pinning.score.fade_guard``)
is measured. Printed: their coefficient of variation across blocks, the spread a
fade guard that compares batches of different seeds would mistake for fading.

    python benchmarks/bench_seed_stats.py [--blocks 10] [--size 64] [--steps 12] [--batch-size 8]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from bench_quality import PROMPTS, base_settings
from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.score.fade_guard import batch_stats
from prompt_pinning.search.seed_blocks import block_settings


def main(argv=None) -> dict[str, list[float]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--blocks", type=int, default=10)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    if args.blocks < 2:
        p.error(f"--blocks: at least 2, got {args.blocks}")
    torch.set_num_threads(1)
    renderer, settings = BuiltinRenderer(), base_settings(args)
    out = {}
    print("| prompt | contrast: mean, CV across blocks | colourfulness: mean, CV across blocks |\n|---|---|---|")
    for prompt in PROMPTS:
        stats = np.array([batch_stats(renderer.render([prompt], block_settings(settings, k))[0].images)
                          for k in range(args.blocks)])
        mean, cv = stats.mean(axis=0), stats.std(axis=0) / stats.mean(axis=0)
        out[prompt[0]] = [float(x) for x in cv]
        print(f"| {prompt[0]} | {mean[0]:.3f}, {100 * cv[0]:.0f}% | {mean[1]:.3f}, {100 * cv[1]:.0f}% |")
    return out


if __name__ == "__main__":
    main()
