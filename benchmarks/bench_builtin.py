"""Speed of the built-in model on one CPU core.

Target: a batch of 8 images at 64x64 with 20 steps in under 1 s (default
sampler, DPM++ 2M Karras). Also prints the other samplers, the time to draw
a new geometry's layout bases (once per distinct prompt pair), and a packed
generation (10 individuals in one render call).
``--commitment`` instead prints, per step of a plain DPM++ 2M run, the mean
top posterior weight of the layouts (how decided the samples are).
benchmarks/bench_builtin_quality.py measures what the images mean.

    python benchmarks/bench_builtin.py [--threads 1] [--repeats 3] [--commitment]
"""
from __future__ import annotations

import argparse
import time

import torch

import hyperbatch
from prompt_pinning.builtin.conditioning import GEOMETRY, conditioning_rows, pair_conditioning
from prompt_pinning.builtin.latents import LATENT_CHANNELS, latent_size
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.builtin.seeds import batch_noise
from prompt_pinning.rendering import GenerationSettings

PROMPT = ("a (large:1.2) red circle on a blue background", "small")
SAMPLERS = ("DPM++ 2M", "Euler", "DPM++ 2M Karras - Hyperbatch", "DPM++ SDE", "DPM++ SDE Karras - Hyperbatch")
TARGET_SECONDS = 1.0
BASES_REPEATS = 5


def best_of(repeats: int, work) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def commitment(steps: int = 20, batch: int = 16, size: int = 64) -> None:
    """Mean top layout weight per step, CFG 7, over a few prompts."""
    renderer = BuiltinRenderer()
    model = renderer.denoiser(size, size)
    spec = hyperbatch.get_sampler("DPM++ 2M")
    sigmas = renderer.sigmas(GenerationSettings(seed=0, steps=steps, width=size, height=size), spec)
    prompts = ["red", "large ring", "green background", "a red circle", ""]
    cond, uncond = conditioning_rows([(p, "") for p in prompts for _ in range(batch)])
    x = batch_noise(range(batch), (LATENT_CHANNELS, *latent_size(size, size))).repeat(len(prompts), 1, 1, 1)
    x = x * sigmas[0]
    tops = []
    spec.function(model, x, sigmas, extra_args={"cond": cond, "uncond": uncond, "cond_scale": 7.0}, disable=True,
                  callback=lambda info: tops.append(float(model.layout_weights(
                      info["x"], info["sigma"].double().expand(len(x))).max(1).values.mean())))
    print(f"{size}x{size}, latent {tuple(x.shape[1:])}, {steps} Karras steps, CFG 7, "
          f"{len(prompts)} prompts x {batch} seeds: mean top posterior weight at each step")
    for i, top in enumerate(tops):
        print(f"  step {i:2d}  sigma {float(sigmas[i]):8.3f}  top weight {top:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is shown (default 3)")
    parser.add_argument("--commitment", action="store_true", help="print when samples commit, not speed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.commitment:
        commitment()
        return

    renderer = BuiltinRenderer()
    model = renderer.denoiser(64, 64)
    geometries = iter([pair_conditioning(f"(large:{1 + k / 100}) ring")[0] for k in range(BASES_REPEATS)])
    build = best_of(BASES_REPEATS, lambda: model.bases(next(geometries)[GEOMETRY]))
    print(f"layout bases of a new geometry (384 layouts, 64x64): {build:.4f} s")

    renderer.render([PROMPT], GenerationSettings(seed=1, batch_size=1, steps=2))  # warm caches
    print(f"threads={args.threads}, batch 8, 64x64, 20 steps, CFG 7, best of {args.repeats}:")
    for sampler in SAMPLERS:
        settings = GenerationSettings(seed=1, batch_size=8, steps=20, sampler=sampler)
        seconds = best_of(args.repeats, lambda: renderer.render([PROMPT], settings))
        verdict = ("PASS" if seconds < TARGET_SECONDS else "over 1 s") if sampler == "DPM++ 2M" else ""
        print(f"  {sampler:32s} {seconds:7.3f} s  {verdict}")

    settings = GenerationSettings(seed=1, batch_size=8, steps=20, sampler="DPM++ 2M Karras - Hyperbatch")
    population = [PROMPT] * 10
    packed = best_of(1, lambda: BuiltinRenderer(max_images_per_call=80).render(population, settings))
    single = best_of(1, lambda: [BuiltinRenderer().render([p], settings) for p in population])
    print(f"lambda=10 generation, hyperbatch 2M: packed {packed:.3f} s, one call per individual {single:.3f} s")


if __name__ == "__main__":
    main()
