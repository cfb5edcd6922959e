"""How much the reports cost a run, and whether their memory stays flat.

1. Critical path: the same run with a sink that does nothing, with a writer that
   writes only the files the run waits for by design (PNG images, batch_stats.json,
   generation JSON), and with the full ReportWriter. Prints the time spent inside
   the sink's calls and the wall time of each, as shares of the run's wall time.
   The difference between the last two is what plots, GIFs and index.html add.
   Uses the built-in model and the real run loop when they are importable, else a
   synthetic run whose "render" is real torch work.
2. Memory: a synthetic run of N individuals (default 500) through the writer;
   prints the resident memory of the run process and of the report process.

    python benchmarks/bench_reports.py [--individuals 500] [--skip-memory]
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prompt_pinning.reports import ReportWriter  # noqa: E402
from synthetic_run import synthetic_run  # noqa: E402


class NullSink:
    def on_run_start(self, run_dir, config, units):
        pass

    def on_individual(self, record):
        pass

    def on_generation(self, record, result):
        pass

    def on_finish(self, result):
        pass


class FilesOnlyWriter(ReportWriter):
    """Writes what on_individual/on_generation write at once, and queues nothing."""

    def __init__(self):
        super().__init__(worker="thread")

    def _submit(self, job, *args, coalesce=None):
        pass

    def _submit_run_reports(self, result, status, final):
        pass


class TimedSink:
    """Forwards to a sink and adds up the seconds each call keeps the run waiting."""

    def __init__(self, inner):
        self.inner = inner
        self.seconds: dict[str, float] = defaultdict(float)

    def __getattr__(self, name):
        method = getattr(self.inner, name)

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - started

        return timed


def rss_mib(pid="self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def builtin_run(sink, outdir: Path, generations):
    """One run on the built-in model; None when the run loop or model is not available."""
    try:
        from prompt_pinning.builtin.renderer import BuiltinRenderer
        from prompt_pinning.config import PinningConfig
        from prompt_pinning.rendering import GenerationSettings
        from prompt_pinning.run import run_pinning
    except ImportError as error:
        print(f"built-in run not available ({error}); using a synthetic run")
        return None
    config = PinningConfig(
        positive="a large red circle, on a blue background", negative="green",
        generation=GenerationSettings(seed=1, batch_size=8, steps=12, cfg_scale=5.0, width=64, height=64),
        generations=generations, outdir=outdir, cma_logging=False)
    try:
        return run_pinning(config, BuiltinRenderer(), sink=sink)
    except ImportError as error:  # a part of the run loop that has not landed yet
        print(f"built-in run not available ({error}); using a synthetic run")
        return None


def torch_render(seconds: float):
    """A stand-in for image generation: convolutions that take about ``seconds``."""
    weight = torch.randn(32, 32, 3, 3)
    images = torch.randn(8, 32, 64, 64)

    def step():
        return torch.nn.functional.conv2d(images, weight, padding=1)

    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < 0.3:
        step()
        calls += 1
    repeats = max(1, round(seconds / ((time.perf_counter() - started) / calls)))

    def render():
        for _ in range(repeats):
            step()

    return render


def one_run(kind: str, sink, outdir: Path, generations, render) -> float:
    started = time.perf_counter()
    if kind == "builtin":
        builtin_run(sink, outdir, generations)
    else:
        synthetic_run(outdir / "run", sink, generations=generations or 32, population=10, batch=8, side=64,
                      render=render)
    return time.perf_counter() - started


def critical_path(generations, render_seconds: float, repeats: int) -> None:
    with tempfile.TemporaryDirectory() as probe:
        kind = "builtin" if builtin_run(NullSink(), Path(probe), 1) is not None else "synthetic"
    render = torch_render(render_seconds) if kind == "synthetic" else None
    walls: dict[str, list[float]] = defaultdict(list)
    inside: dict[str, list[float]] = defaultdict(list)
    calls: dict[str, dict[str, float]] = {}
    worker_seconds = 0.0
    for _ in range(repeats):  # interleaved, so slow spells of a shared machine hit every variant
        for name, make in (("nothing", NullSink), ("files only", FilesOnlyWriter), ("full reports", ReportWriter)):
            timed = TimedSink(make())
            with tempfile.TemporaryDirectory() as outdir:
                walls[name].append(one_run(kind, timed, Path(outdir), generations, render))
            inside[name].append(sum(timed.seconds.values()))
            calls[name] = dict(timed.seconds)
            worker_seconds = getattr(timed.inner, "worker_seconds", worker_seconds)
    shown = generations or "default"
    print(f"critical path ({kind} run, {shown} generations, best of {repeats}, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}):")
    for name in walls:
        wall, sink = min(walls[name]), min(inside[name])
        print(f"  {name:13s} wall {wall:7.2f} s   inside the sink {sink:6.2f} s = {100 * sink / wall:5.2f}% of wall")
    for name, seconds in sorted(calls["full reports"].items()):
        print(f"  full reports, {name:14s} {seconds * 1000:9.1f} ms (last run)")
    full, files = min(walls["full reports"]), min(walls["files only"])
    added_inside = min(inside["full reports"]) - min(inside["files only"])
    print(f"  plots, GIFs and index.html add {added_inside:.2f} s inside the sink = "
          f"{100 * added_inside / full:.2f}% of the run's wall time")
    print(f"  wall-time difference full - files only: {full - files:+.2f} s = {100 * (full - files) / full:+.2f}% "
          f"(noisy on shared cores)")
    print(f"  report process busy (off the critical path): {worker_seconds:.2f} s")


def sampled_run(sink_class, generations: int, population: int) -> tuple[list[tuple], float]:
    """A synthetic run through ``sink_class``; (individuals, run RSS, report RSS, Python heap) samples."""
    samples: list[tuple] = []

    class Sampling(sink_class):
        def on_generation(self, record, result):
            super().on_generation(record, result)
            if record.generation % max(1, generations // 5) == 0 or record.generation == generations:
                if hasattr(self, "flush"):
                    self.flush()
                gc.collect()
                child = getattr(getattr(self, "_worker", None), "pid", None)
                heap = tracemalloc.get_traced_memory()[0] / 2**20
                samples.append((1 + record.generation * population, rss_mib(),
                                rss_mib(child) if child else float("nan"), heap))

    tracemalloc.start()
    with tempfile.TemporaryDirectory() as outdir:
        started = time.perf_counter()
        synthetic_run(Path(outdir) / "run", Sampling(), generations=generations, population=population,
                      batch=8, side=64)
        elapsed = time.perf_counter() - started
    tracemalloc.stop()
    return samples, elapsed


def memory(individuals: int) -> None:
    population = 10
    generations = max(1, -(-(individuals - 1) // population))
    plain, _ = sampled_run(NullSink, generations, population)
    samples, elapsed = sampled_run(ReportWriter, generations, population)
    print(f"memory over a {1 + generations * population}-individual synthetic run ({elapsed:.1f} s):")
    for count, rss, child, heap in samples:
        print(f"  after {count:5d} individuals: run process RSS {rss:7.1f} MiB (Python heap {heap:6.2f} MiB), "
              f"report process RSS {child:6.1f} MiB")
    (_, first, first_child, first_heap), (_, last, last_child, last_heap) = samples[0], samples[-1]
    print(f"  Python heap growth in the run process: {last_heap - first_heap:+.2f} MiB "
          f"(the table of individuals the page lists)")
    print(f"  RSS growth, first sample to last: run process {last - first:+.1f} MiB "
          f"(the same run with a do-nothing sink: {plain[-1][1] - plain[0][1]:+.1f} MiB), "
          f"report process {last_child - first_child:+.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--individuals", type=int, default=500, help="individuals in the memory run")
    parser.add_argument("--generations", type=int, default=None,
                        help="generations in the critical-path runs (default: the run's own default)")
    parser.add_argument("--render-seconds", type=float, default=0.5,
                        help="per-individual render time of the synthetic stand-in")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant (the best counts)")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    critical_path(args.generations, args.render_seconds, args.repeats)
    if not args.skip_memory:
        memory(args.individuals)


if __name__ == "__main__":
    main()
