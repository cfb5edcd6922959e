"""Cost of ``RunState.apply`` as a run grows: time per event and memory per evaluation.

Feeds a ``RunState`` the events of a synthetic run (evaluations with a batch's
pair losses, validations at the plan's points, generation ends) without rendering,
and prints, for each stretch of the run, the mean time of an evaluation event and
the memory the state holds per evaluation (``tracemalloc``). Constant figures down
the table mean a long run costs no more per event than a short one. Measured
(batch 64, population 16, rotating seeds, 1 validation batch, 2 shared x86_64
cores, 2026-12-07): before, 222 us per event at 1.6k evaluations and 1508 us at
8k, 22.4 kB per evaluation; after, 75 to 85 us at 1.6k to 20k, 1.4 kB.

usage: PYTHONPATH=. python benchmarks/bench_run_state.py [--records 20000] [--batch 64] [--population 16]
       [--schedule fixed|rotating] [--validation 1]
"""
from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from types import SimpleNamespace

import numpy as np

from prompt_pinning.run.plan import RunPlan
from prompt_pinning.run.rundir import individual_id
from prompt_pinning.run.state import RunState
from prompt_pinning.search.seed_blocks import validation_blocks, validation_points


def evaluation(g: int, i: int, rng: np.random.Generator, batch: int, units: int, seed: int) -> dict:
    offsets = rng.normal(size=units)
    return {"generation": g, "index": i, "id": individual_id(offsets), "folder": None, "offsets": offsets.tolist(),
            "positive": f"p{g}-{i}", "negative": "", "seeds": list(range(seed, seed + batch)),
            "loss": float(rng.random()), "pair_losses": rng.random(batch * (batch - 1) // 2),
            "size": float(np.linalg.norm(offsets)), "render_seconds": 0.1, "loss_seconds": 0.01,
            "extra": {"penalty": 0.0, "fitness": None, "image_losses": rng.random(batch).tolist(),
                      "level_values": rng.random(4).tolist(), "prompt_seconds": 0.0, "host_prompt_seconds": None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--units", type=int, default=8)
    parser.add_argument("--schedule", choices=("fixed", "rotating"), default="rotating")
    parser.add_argument("--validation", type=int, default=1, help="validation batches (0: none)")
    parser.add_argument("--stretches", type=int, default=5)
    args = parser.parse_args()
    lam, batch = args.population, args.batch
    generations = args.records // lam
    points = tuple(validation_points(generations, lam, args.validation))
    plan = RunPlan(units=args.units, generations=generations, schedule=args.schedule, first_population=lam,
                   population=lam, validation_batches=args.validation,
                   validation_blocks=tuple(validation_blocks(args.schedule, generations, args.validation)),
                   validation_points=points, with_centroid=False)
    settings = SimpleNamespace(seed=0, batch_size=batch, height=8, width=8)
    state, rng = RunState(plan, settings), np.random.default_rng(0)
    rows, stretch = [], max(1, generations // args.stretches)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    state.apply(evaluation(0, 0, rng, batch, args.units, 0))
    spent, events = 0.0, 0
    for g in range(1, generations + 1):
        block = plan.training_block(g)
        for i in range(lam):
            entry = evaluation(g, i, rng, batch, args.units, block * batch)
            started = time.perf_counter()
            state.apply(entry)
            spent += time.perf_counter() - started
            events += 1
        if g in points:
            leader = state.validation_candidate(g)
            state.apply({"validation": True, "generation": g, "id": leader.individual_id,
                         "of": [leader.generation, leader.index], "loss": float(rng.random()),
                         "losses": [float(rng.random())] * args.validation})
        state.apply({"closed": True, "generation": g, "sigma": 0.1, "axis_ratio": 1.0,
                     "centroid": [0.0] * args.units, "diag_std": [1.0] * args.units,
                     "eigenvalues": [1.0] * args.units})
        if g % stretch == 0 or g == generations:
            memory = tracemalloc.get_traced_memory()[0] - base
            rows.append((len(state.by_slot), spent / events * 1e6, memory / len(state.by_slot)))
            spent, events = 0.0, 0
    tracemalloc.stop()
    print(f"batch {batch}, population {lam}, {args.schedule} seeds, validation batches {args.validation}")
    print(f"{'evaluations':>12} {'us per event':>13} {'bytes per evaluation':>21}")
    for count, micros, per in rows:
        print(f"{count:>12} {micros:>13.1f} {per:>21.0f}")


if __name__ == "__main__":
    main()
