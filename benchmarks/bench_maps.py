"""What the maps cost: influence maps and the map of the explored weights at 30 units and
2,000 individuals, all in the report process.

A made-up run: 100 generations of 20 individuals, 8 images each (64x64 by default, the
built-in model's size), with random offsets and images that answer them linearly.
The PNGs are written once per individual slot of a generation and shared by every
generation (reading a file costs the same each time). Prints CPU time (the cost; wall
time grows when other work shares the cores):

- the run's side: building the plain values handed to the report process, per individual;
- the report process: reading and accumulating one generation's PNGs; solving and writing
  the maps (influence_maps.npz/.json/.png, weight_map.json/.png) at the end.

    OMP_NUM_THREADS=1 python benchmarks/bench_maps.py [--units 30] [--individuals 2000] [--side 64]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from prompt_pinning.run.records import IndividualRecord  # noqa: E402
from prompt_pinning.reports import maps_job  # noqa: E402
from prompt_pinning.reports.influence import Member  # noqa: E402
from prompt_pinning.reports.individual import image_file_names  # noqa: E402
from prompt_pinning.reports.weight_map import hdbscan_clusterer  # noqa: E402
from prompt_pinning.reports.writer import map_member  # noqa: E402


def cpu(fn, *args):
    started = time.process_time()
    out = fn(*args)
    return time.process_time() - started, out


def run_side_seconds(units: int, batch: int, repeats: int = 2000) -> float:
    """CPU time per individual of what the run adds for the maps (``writer.map_member``)."""
    record = IndividualRecord(generation=1, index=0, individual_id="x", offsets=np.zeros(units), positive="",
                              negative="", images=torch.zeros(batch, 3, 8, 8), seeds=list(range(batch)),
                              loss=0.5, pair_losses=np.zeros(1))
    names = image_file_names(record.seeds)
    started = time.process_time()
    for _ in range(repeats):
        map_member(record, Path("."), names)
    return (time.process_time() - started) / repeats


def make_pictures(folder: Path, population: int, batch: int, side: int, rng) -> list[list[str]]:
    names = image_file_names([1000 + k for k in range(batch)])
    for i in range(population):
        target = folder / f"slot{i:03d}"
        target.mkdir(parents=True)
        for name in names:
            pixels = (rng.random((side, side, 3)) * 255).astype(np.uint8)
            Image.fromarray(pixels).save(target / name, compress_level=1)
    return [names] * population


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, default=30)
    parser.add_argument("--individuals", type=int, default=2000)
    parser.add_argument("--population", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--side", type=int, default=64)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    generations = args.individuals // args.population
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        make_pictures(run_dir, args.population, args.batch, args.side, rng)
        seeds = [1000 + k for k in range(args.batch)]
        names = image_file_names(seeds)
        labels = [f"word{u}" for u in range(args.units)]
        baseline = Member(0, 0, [0.0] * args.units, seeds, str(run_dir / "slot000"), names, 0.5, "base")
        maps_job.add_generation(run_dir, args.units, 0, [baseline])
        add_seconds = []
        for g in range(1, generations + 1):
            members = []
            for i in range(args.population):
                offsets = rng.normal(0, 0.1, args.units)
                members.append(Member(g, i, [float(v) for v in offsets], list(seeds), str(run_dir / f"slot{i:03d}"),
                                      list(names), float(rng.random()), f"{g}-{i}"))
            seconds, _ = cpu(maps_job.add_generation, run_dir, args.units, g, members)
            add_seconds.append(seconds)
        first_seconds, _ = cpu(maps_job.write_maps, run_dir, labels, baseline, False)  # the first drawing
        write_seconds, page = cpu(maps_job.write_maps, run_dir, labels, baseline, True)
        total_add = sum(add_seconds)
        sizes = {name: os.path.getsize(run_dir / name) for name in
                 (maps_job.INFLUENCE_NPZ, maps_job.INFLUENCE_JSON, maps_job.INFLUENCE_PNG,
                  maps_job.WEIGHT_MAP_JSON, maps_job.WEIGHT_MAP_PNG)}
    individuals = generations * args.population
    print(f"bench_maps: {args.units} units, {individuals} individuals ({generations} generations of "
          f"{args.population}), {args.batch} images of {args.side}x{args.side} each; "
          f"{platform.machine()}, {os.cpu_count()} cores, {date.today()}")
    print(f"  weight map: {page['weights']['method']}, clusters: "
          f"{'HDBSCAN' if hdbscan_clusterer() else 'none (HDBSCAN not installed)'}")
    print(f"  run side, plain values per individual:   {run_side_seconds(args.units, args.batch) * 1e6:8.1f} us CPU")
    print(f"  report process, one generation's PNGs:    {np.median(add_seconds) * 1e3:8.1f} ms CPU (median)"
          f" = {total_add / individuals * 1e3:.2f} ms per individual")
    print(f"  report process, all {generations} generations:     {total_add:8.2f} s CPU")
    print(f"  report process, solve and write the maps: {write_seconds:8.2f} s CPU (the process's first "
          f"drawing: {first_seconds:.2f} s; UMAP compiles its numba code then)")
    print("  files: " + ", ".join(f"{name} {size / 1e6:.2f} MB" for name, size in sizes.items()))


if __name__ == "__main__":
    main()
