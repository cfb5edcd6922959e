"""Speed-up of a generation rendered on 1, 2 and 4 Ray actors, each with a renderer of fixed cost.

Each actor owns a ``SleepRenderer``: ``--delay`` seconds per individual (as a GPU of constant
speed would take), images of ``--size`` pixels. The ideal time on k actors is
ceil(individuals / k) * delay (one part per actor); what Ray adds beyond it (task dispatch,
moving the images to the driver) is printed per individual. The losses are not part of it:
they are computed in the driver, as in a run. Ray runs locally with 2 CPUs, each actor asking
for half of one, so 4 sleeping actors fit on 2 cores.

    OMP_NUM_THREADS=1 python benchmarks/bench_ray.py
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prompt_pinning.rendering import GenerationSettings, RenderedBatch, check_prompt_pairs  # noqa: E402


class SleepRenderer:
    """A renderer of fixed cost per individual: it sleeps, then returns grey images."""

    name = "sleep"

    def __init__(self, delay: float = 0.2):
        from prompt_pinning.builtin.tokenizer import WordTokenizer

        self.delay, self.tokenizer = delay, WordTokenizer()

    def host_settings(self) -> dict:
        return {"model": "sleep"}

    def render(self, prompts, settings: GenerationSettings, progress=None):
        prompts = check_prompt_pairs(prompts)
        time.sleep(self.delay * len(prompts))
        shape = (settings.batch_size, 3, settings.height, settings.width)
        return [RenderedBatch(torch.full(shape, 0.5), settings.seeds()) for _ in prompts]


def measure(actors: int, individuals: int, delay: float, settings: GenerationSettings, repeats: int) -> dict:
    from prompt_pinning.distributed import RayRenderer, RendererSpec

    spec = RendererSpec("factory", "benchmarks.bench_ray:SleepRenderer", {"kwargs": {"delay": delay}})
    renderer = RayRenderer(spec, actors, num_cpus=0.5)
    prompts = [(f"a red circle {k}", "green") for k in range(individuals)]
    try:
        renderer.render(prompts[:actors], settings)  # every actor up and imported (not counted)
        walls = []
        for _ in range(repeats):
            started = time.perf_counter()
            batches = renderer.render(prompts, settings)
            walls.append(time.perf_counter() - started)
        assert len(batches) == individuals
    finally:
        renderer.shutdown()
    wall = sorted(walls)[len(walls) // 2]
    ideal = math.ceil(individuals / actors) * delay
    return {"actors": actors, "wall": wall, "ideal": ideal, "overhead_ms": 1000 * (wall - ideal) / individuals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--individuals", type=int, default=24)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per individual")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", type=int, default=64, help="image width and height")
    parser.add_argument("--repeats", type=int, default=3, help="render calls per actor count (median shown)")
    args = parser.parse_args()
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    print(f"ray.init: {time.perf_counter() - started:.1f} s")
    settings = GenerationSettings(seed=1, batch_size=args.batch_size, width=args.size, height=args.size)
    rows = [measure(k, args.individuals, args.delay, settings, args.repeats) for k in (1, 2, 4)]
    ray.shutdown()
    print(f"{args.individuals} individuals, {args.delay} s each, batch {args.batch_size}, {args.size}x{args.size}\n")
    print("| actors | wall | ideal | speed-up | overhead per individual |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['actors']} | {row['wall']:.2f} s | {row['ideal']:.2f} s | {rows[0]['wall'] / row['wall']:.2f} "
              f"| {row['overhead_ms']:.1f} ms |")


if __name__ == "__main__":
    main()
