"""Whole-generation timing of the pinning loop on the diffusers SD1.5-layout renderer.

Four ways to render a generation of lambda individuals (batch B, S steps, CFG):
  (a) one sampler call per individual, plain DPM++ 2M
  (b) one sampler call per individual, DPM++ 2M hyperbatch
  (c) the population batched into as few calls as memory allows, plain
  (d) the population batched, hyperbatch
Each runs the real loop (``run_pinning``: CMA-ES, FLIP loss, reports) for a few
generations. Time is split into stages: sampler (UNet), VAE, FLIP, optimizer,
reports, and everything else (text encoding, copies, checkpoints, the loop).
FLIP runs on the renderer's device. ``d_over_a`` = (d) sampling time per
generation / (a)'s.

    python benchmarks/bench_generation.py --json docs/bench_generation.json   # GPU: 512x512, fp16
    python benchmarks/bench_generation.py --tiny --json /tmp/tiny.json        # CPU, seconds

Without CUDA, --tiny is implied.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import prompt_pinning.run as run_module  # noqa: E402
from prompt_pinning.run.builders import Builders, build_loss  # noqa: E402
from prompt_pinning.search.optimizer import make_optimizer  # noqa: E402
from prompt_pinning.config import PinningConfig  # noqa: E402
from diffusers_renderer import StageClock, build_renderer  # noqa: E402
from prompt_pinning.diffusers import DiffusersRenderer  # noqa: E402
from prompt_pinning.rendering import GenerationSettings  # noqa: E402

PLAIN, HYPER = "DPM++ 2M", "DPM++ 2M Karras - Hyperbatch"
MODES = {  # key: (description, sampler, population batched)
    "a": ("one call per individual, plain", PLAIN, False),
    "b": ("one call per individual, hyperbatch", HYPER, False),
    "c": ("population batched, plain", PLAIN, True),
    "d": ("population batched, hyperbatch", HYPER, True),
}
STAGES = ("sampler", "vae", "flip", "optimizer", "reports")
PROMPT = "a photograph of a red fox in the snow, golden hour, (detailed fur:1.2), sharp focus"
NEGATIVE = "blurry, low quality"
FULL = dict(size=512, batch=8, steps=20, lambda_=10, generations=2)
TINY = dict(size=32, batch=4, steps=4, lambda_=3, generations=1)
TARGETS = {"d_over_a_max": 0.40, "outside_unet_vae_share_max": 0.05}


class TimedLoss:
    """PinningLoss on ``device``, timed as "flip"."""

    def __init__(self, inner, clock: StageClock, device: torch.device):
        self.inner, self.clock, self.device = inner, clock, device

    def set_targets(self, images, seeds=None):
        with self.clock.stage("flip"):
            return self.inner.set_targets(images.to(self.device), seeds=seeds)

    def evaluate(self, images, traces=None, seeds=None):
        with self.clock.stage("flip"):
            return self.inner.evaluate(images.to(self.device), traces, seeds=seeds)

    def evaluate_many(self, images_list, traces_list=None, seeds_list=None):
        with self.clock.stage("flip"):
            return self.inner.evaluate_many([images.to(self.device) for images in images_list], traces_list,
                                            seeds_list=seeds_list)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class TimedOptimizer:
    """Times every optimizer call as "optimizer" (its checkpoint state included)."""

    def __init__(self, inner, clock: StageClock):
        self.__dict__.update(inner=inner, clock=clock)

    def __getattr__(self, name):
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def timed(*args, **kwargs):
            with self.clock.stage("optimizer"):
                return value(*args, **kwargs)
        return timed


class TimedSink:
    """Times the report writer's calls as "reports" and marks each generation's end."""

    def __init__(self, inner, clock: StageClock, renderer=None):
        self.inner, self.clock, self.renderer = inner, clock, renderer
        self.marks: list[tuple[int, float, dict]] = []  # (generation, time, stage seconds)
        self.call_sizes: list[int] = []  # images per sampler call in the last generation's render

    def mark(self, generation: int) -> None:
        self.clock.sync()
        self.marks.append((generation, time.perf_counter(), self.clock.snapshot()))

    def on_run_start(self, *args):
        with self.clock.stage("reports"):
            self.inner.on_run_start(*args)

    def on_individual(self, record):
        with self.clock.stage("reports"):
            self.inner.on_individual(record)
        if record.generation == 0:
            self.mark(0)

    def on_generation(self, record, result):
        if self.renderer is not None:
            self.call_sizes = list(self.renderer.last_call_sizes)
        with self.clock.stage("reports"):
            self.inner.on_generation(record, result)
        self.mark(record.generation)

    def on_finish(self, result):
        with self.clock.stage("reports"):
            self.inner.on_finish(result)


class NullSink:
    def on_run_start(self, *args): pass
    def on_individual(self, record): pass
    def on_generation(self, record, result): pass
    def on_finish(self, result): pass


def generation_rows(marks) -> list[dict]:
    """Per generation: wall time and seconds per stage, from consecutive marks."""
    rows = []
    for (_, t0, s0), (g, t1, s1) in zip(marks, marks[1:]):
        stages = {k: s1.get(k, 0.0) - s0.get(k, 0.0) for k in set(s1) | set(s0)}
        wall = t1 - t0
        other = wall - sum(stages.get(k, 0.0) for k in STAGES)
        outside = wall - stages.get("sampler", 0.0) - stages.get("vae", 0.0)
        rows.append({"generation": g, "wall_s": wall, "stages_s": {k: stages.get(k, 0.0) for k in STAGES},
                     "other_s": other, "other_parts_s": {k: v for k, v in stages.items() if k not in STAGES},
                     "outside_unet_vae_share": outside / wall if wall > 0 else float("nan")})
    return rows


def summarise(rows: list[dict]) -> dict:
    """Medians over the measured generations."""
    med = lambda values: statistics.median(values)  # noqa: E731
    stages = {k: med([r["stages_s"][k] for r in rows]) for k in STAGES}
    wall = med([r["wall_s"] for r in rows])
    return {"generation_wall_s": wall, "sampling_s": stages["sampler"], "stages_s": stages,
            "other_s": med([r["other_s"] for r in rows]),
            "outside_unet_vae_share": med([r["outside_unet_vae_share"] for r in rows])}


def run_mode(key: str, renderer: DiffusersRenderer, params: dict, packed_limit, reports: bool, workdir: Path) -> dict:
    description, sampler, packed = MODES[key]
    settings = GenerationSettings(seed=1234, batch_size=params["batch"], steps=params["steps"],
                                  width=params["size"], height=params["size"], sampler=sampler, cfg_scale=7.0)
    renderer.max_images_per_call = packed_limit if packed else params["batch"]
    renderer.render([(PROMPT, NEGATIVE)], settings)  # warm-up (kernels, allocator)
    clock = renderer.clock
    clock.enabled = True  # off by default: it synchronizes CUDA at every stage edge
    clock.seconds.clear()
    if clock.cuda:
        torch.cuda.reset_peak_memory_stats()
    config = PinningConfig(positive=PROMPT, negative=NEGATIVE, generation=settings, lambda_=params["lambda_"],
                           generations=params["generations"], cma_seed=7, outdir=workdir / key,
                           validation_batches=0)  # the generations' renders only: what this measures
    sink = TimedSink(_report_writer() if reports else NullSink(), clock, renderer)
    builders = Builders(loss=lambda *a: TimedLoss(build_loss(*a), clock, renderer.device),
                        optimizer=lambda *a: TimedOptimizer(make_optimizer(*a), clock))
    started = time.perf_counter()
    result = run_module.run_pinning(config, renderer, sink=sink, builders=builders)
    total = time.perf_counter() - started
    if result.stop_reason != "completed":
        raise RuntimeError(f"mode {key}: run stopped: {result.stop_reason}")
    rows = generation_rows(sink.marks)
    return {"mode": key, "description": description, "sampler": sampler, "population_batched": packed,
            "max_images_per_call": renderer.max_images(settings),
            "images_per_sampler_call": sink.call_sizes,
            "sampler_calls_per_generation": len(renderer.last_call_sizes),
            "run_wall_s": total, "generations": rows, **summarise(rows),
            "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if clock.cuda else None}


def _report_writer():
    from prompt_pinning.reports import ReportWriter

    return ReportWriter()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads"


def print_table(record: dict) -> None:
    s = record["settings"]
    print(f"{record['card']}, {record['dtype']}, {s['size']}x{s['size']}, batch {s['batch']}, {s['steps']} steps, "
          f"lambda {s['lambda_']}, {s['generations']} generation(s) measured, preset {record['preset']}")
    print(f"{'mode':<40} {'calls':>5} {'sampler':>8} {'VAE':>7} {'FLIP':>7} {'optim':>7} {'reports':>8} "
          f"{'other':>7} {'gen wall':>9} {'non-UNet/VAE':>12}")
    for m in record["modes"].values():
        st = m["stages_s"]
        print(f"({m['mode']}) {m['description']:<36} {m['sampler_calls_per_generation']:>5} {st['sampler']:>8.3f} "
              f"{st['vae']:>7.3f} {st['flip']:>7.3f} {st['optimizer']:>7.3f} {st['reports']:>8.3f} "
              f"{m['other_s']:>7.3f} {m['generation_wall_s']:>9.3f} {100 * m['outside_unet_vae_share']:>11.1f}%")
    if record.get("d_over_a") is not None:
        print(f"d_over_a (sampling) = {record['d_over_a']:.3f} (target <= {TARGETS['d_over_a_max']}); "
              f"generation wall d/a = {record['d_over_a_generation_wall']:.3f}")
    print("seconds per generation (median); other = text encoder, copies, checkpoints, loop")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model and sizes on the CPU (default without CUDA)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    for name in ("size", "batch", "steps", "lambda", "generations"):
        parser.add_argument(f"--{name}", type=int, help=f"override the {name} (full: {FULL.get(name, FULL.get('lambda_'))}, "
                                                         f"tiny: {TINY.get(name, TINY.get('lambda_'))})")
    parser.add_argument("--max-images", type=int, help="images per call when population batched (default: auto)")
    parser.add_argument("--checkpoint", help="local SD1.5 pipeline folder or checkpoint file (default: random weights)")
    parser.add_argument("--no-reports", action="store_true", help="a sink that writes nothing")
    args = parser.parse_args(argv)

    tiny = args.tiny or not torch.cuda.is_available()
    params = dict(TINY if tiny else FULL)
    for name in ("size", "batch", "steps", "lambda", "generations"):
        if getattr(args, name) is not None:
            params["lambda_" if name == "lambda" else name] = getattr(args, name)
    device = "cpu" if tiny else "cuda"
    if tiny:
        torch.set_num_threads(1)  # tiny tensors: more threads only add synchronisation
    renderer = build_renderer("tiny" if tiny else "sd15", device=device, checkpoint=args.checkpoint)
    modes = {}
    with tempfile.TemporaryDirectory() as workdir:
        for key in args.modes:
            modes[key] = run_mode(key, renderer, params, args.max_images, not args.no_reports, Path(workdir))
    record = {
        "benchmark": "bench_generation", "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "card": device_name(renderer.device), "device": str(renderer.device), "tiny": tiny,
        "preset": renderer.preset, "dtype": str(renderer.dtype).replace("torch.", ""),
        "torch": torch.__version__, "diffusers": _version("diffusers"), "cuda": torch.version.cuda,
        "weights": args.checkpoint or "random", "settings": params, "cfg_scale": 7.0,
        "prompt": [PROMPT, NEGATIVE], "targets": TARGETS, "modes": modes,
        "load_average_1min_after": round(os.getloadavg()[0], 2),
    }
    if "a" in modes and "d" in modes:
        record["d_over_a"] = modes["d"]["sampling_s"] / modes["a"]["sampling_s"]
        record["d_over_a_generation_wall"] = modes["d"]["generation_wall_s"] / modes["a"]["generation_wall_s"]
        record["meets_targets"] = {
            "d_over_a": record["d_over_a"] <= TARGETS["d_over_a_max"],
            "outside_unet_vae_share_d": modes["d"]["outside_unet_vae_share"] <= TARGETS["outside_unet_vae_share_max"],
        }
    print_table(record)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {args.json}")
    return record


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


if __name__ == "__main__":
    main()
