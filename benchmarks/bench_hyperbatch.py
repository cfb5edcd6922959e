"""Wall time of plain DPM++ 2M against its hyperbatch version.

For every batch size, both samplers run the same denoiser, sigmas and noise
for S steps; the best of several alternating repeats is reported with the speedup and
the image-step ratio the schedule promises. The default denoiser is a small
random-weight conv net (a CPU stand-in for a diffusion UNet); pass
``--model module:factory`` for another one, where ``factory(device)`` returns
``(denoiser, latent_shape)`` and ``denoiser(x, sigma)`` gives the denoised x.

    python benchmarks/bench_hyperbatch.py --json docs/hyperbatch_benchmark.json

``--diversity`` instead renders one batch per prompt with the built-in model,
plain DPM++ 2M and its hyperbatch version with the same seeds, and prints the
mean pairwise LDR-FLIP within each batch (the hyperbatch should keep at least
half of the plain batch's).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hyperbatch as hb  # noqa: E402


class ConvDenoiser(nn.Module):
    """A few 3x3 conv layers with a skip path; random weights, fixed seed."""

    def __init__(self, channels=4, width=64, depth=4):
        super().__init__()
        layers = [nn.Conv2d(channels + 1, width, 3, padding=1), nn.SiLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.SiLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, x, sigma):
        s = sigma.view(-1, 1, 1, 1)
        scaled = x / (s**2 + 1).sqrt()
        level = torch.log(s).expand(-1, 1, *x.shape[2:])
        return scaled + 0.1 * self.net(torch.cat([scaled, level], dim=1))


def conv_factory(device, size=32):
    torch.manual_seed(0)
    model = ConvDenoiser().to(device).eval()
    return model, (4, size, size)


def load_factory(spec: str):
    if spec == "conv":
        return conv_factory, "random-weight 4-layer conv net (64 channels), 4x32x32 latents"
    module_name, _, attribute = spec.partition(":")
    if not attribute:
        raise SystemExit(f"--model must be 'conv' or 'module:factory', got {spec!r}")
    return getattr(importlib.import_module(module_name), attribute), spec


def synchronize(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_once(function, device):
    """(wall seconds, CPU seconds of this process) of one call."""
    synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu


def time_pair(first, second, repeats, device):
    """Best-of-``repeats`` (wall, CPU) times of two calls, run alternately so
    that load from other processes falls on both alike."""
    times = ([], [])
    for _ in range(repeats):
        for function, bucket in zip((first, second), times):
            bucket.append(time_once(function, device))
    best = lambda bucket, k: min(t[k] for t in bucket)
    return [(best(bucket, 0), best(bucket, 1)) for bucket in times]


@torch.no_grad()
def measure(denoiser, shape, batch_size, steps, repeats, device):
    generator = torch.Generator().manual_seed(batch_size)
    sigmas = hb.karras_sigmas(steps, 0.03, 14.6, device=device)
    x = (torch.randn(batch_size, *shape, generator=generator) * 14.6).to(device)
    plain = lambda: hb.sample_dpmpp_2m(denoiser, x, sigmas, disable=True)
    grown = lambda: hb.sample_dpmpp_2m_hyperbatch(denoiser, x, sigmas, disable=True)
    plain(), grown()  # warm-up
    (plain_s, plain_cpu), (grown_s, grown_cpu) = time_pair(plain, grown, repeats, device)
    return {"batch_size": batch_size, "steps": steps, "plain_s": round(plain_s, 4),
            "hyperbatch_s": round(grown_s, 4), "wall_speedup": round(plain_s / grown_s, 3),
            "plain_cpu_s": round(plain_cpu, 4), "hyperbatch_cpu_s": round(grown_cpu, 4),
            "cpu_time_speedup": round(plain_cpu / grown_cpu, 3),
            "image_step_ratio": round(hb.image_step_ratio(batch_size, steps), 3)}


def device_description(device):
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, " \
           f"{os.cpu_count()} cores visible"


def mean_pairwise_flip(images) -> float:
    from prompt_pinning.score import flip

    features = flip.preprocess(images)
    first, second = flip.all_pairs(images.shape[0])
    return flip.pair_means(features, features, first, second).mean().item()


def diversity(prompts, batch_size, steps, seed, size):
    """Mean pairwise FLIP of plain vs hyperbatch batches on the built-in model."""
    from prompt_pinning.builtin.renderer import BuiltinRenderer
    from prompt_pinning.rendering import GenerationSettings

    renderer = BuiltinRenderer()
    print(f"built-in model, {size}x{size}, batch {batch_size}, {steps} steps, seed {seed}")
    print(f"{'prompt':<32} {'plain':>7} {'hyper':>7} {'ratio':>6}")
    for prompt in prompts:
        values = []
        for sampler in ("DPM++ 2M", "DPM++ 2M Karras - Hyperbatch"):
            settings = GenerationSettings(seed=seed, batch_size=batch_size, steps=steps, sampler=sampler,
                                          scheduler="karras", width=size, height=size)
            values.append(mean_pairwise_flip(renderer.render([(prompt, "")], settings)[0].images))
        print(f"{prompt:<32} {values[0]:>7.3f} {values[1]:>7.3f} {values[1] / values[0]:>6.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="conv", help="'conv' or module:factory")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--diversity", nargs="*", metavar="PROMPT",
                        help="measure batch diversity on the built-in model instead of speed")
    parser.add_argument("--seed", type=int, default=1234, help="first seed (--diversity)")
    parser.add_argument("--size", type=int, default=64, help="image size (--diversity)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.diversity is not None:
        prompts = args.diversity or ["portrait of a cat", "a red house by a lake"]
        for batch_size in args.batch_sizes:
            diversity(prompts, batch_size, args.steps, args.seed, args.size)
        return

    factory, model_name = load_factory(args.model)
    denoiser, shape = factory(args.device)
    rows = [measure(denoiser, shape, b, args.steps, args.repeats, args.device) for b in args.batch_sizes]

    print(f"DPM++ 2M, {args.steps} steps, best of {args.repeats}, alternating; {model_name}; "
          f"{device_description(args.device)}")
    print(f"load average (1 min) {os.getloadavg()[0]:.2f}")
    print(f"{'batch':>5} {'plain s':>9} {'hyper s':>9} {'wall x':>7} {'plain cpu':>10} {'hyper cpu':>10} "
          f"{'cpu x':>6} {'img-step ratio':>15}")
    for r in rows:
        print(f"{r['batch_size']:>5} {r['plain_s']:>9.3f} {r['hyperbatch_s']:>9.3f} {r['wall_speedup']:>7.2f} "
              f"{r['plain_cpu_s']:>10.3f} {r['hyperbatch_cpu_s']:>10.3f} {r['cpu_time_speedup']:>6.2f} "
              f"{r['image_step_ratio']:>15.2f}")
    if args.json:
        record = {"sampler": "DPM++ 2M", "model": model_name, "device": device_description(args.device),
                  "torch": torch.__version__, "date": datetime.date.today().isoformat(),
                  "timing": f"best of {args.repeats}, plain and hyperbatch alternating",
                  "load_average_1min_after": round(os.getloadavg()[0], 2), "results": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
