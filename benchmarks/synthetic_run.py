"""A made-up run that drives a report sink the way the real run does.

Used by the report tests and benchmark, and handy for looking at a report
without rendering anything. Images are smooth random colour fields.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from prompt_pinning.run.records import (GenerationRecord, IndividualRecord, PairedScore, ReportSink, RunResult,
                                        UnitRow)
from prompt_pinning.reports.generation import generation_folder_name

DEFAULT_PROMPT = "a red circle, large, on a blue background"


def default_units(prompt: str = DEFAULT_PROMPT, negative: str = "blurry") -> list[UnitRow]:
    words = [w.strip(",") for w in prompt.split() if w.strip(",")]
    units = [UnitRow(text=w, prompt="positive", base_weight=1.0) for w in words]
    units += [UnitRow(text=w, prompt="negative", base_weight=1.0) for w in negative.split()]
    return units


def random_images(rng: np.random.Generator, batch: int, side: int) -> torch.Tensor:
    """(batch, 3, side, side) smooth colour fields in [0, 1]."""
    coarse = rng.random((batch, 3, 4, 4), dtype=np.float32)
    images = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(side, side), mode="bilinear")
    return images.clamp(0, 1)


def individual_id(offsets: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(offsets, dtype=np.float64).tobytes()).hexdigest()[:16]


def weighted_prompt(units: list[UnitRow], offsets: np.ndarray, which: str) -> str:
    return " ".join(
        f"({u.text}:{abs(u.base_weight + o):.3f})" for u, o in zip(units, offsets) if u.prompt == which
    )


def synthetic_run(
    run_dir: Path,
    sink: ReportSink,
    generations: int = 3,
    population: int = 6,
    batch: int = 4,
    side: int = 32,
    size_limit: float = 0.0,
    positive: str = DEFAULT_PROMPT,
    negative: str = "blurry",
    units: Optional[list[UnitRow]] = None,
    seed: int = 0,
    render: Optional[Callable[[], None]] = None,
    stop_reason: str = "completed",
) -> RunResult:
    """Run ``generations`` made-up generations of ``population`` individuals through ``sink``.

    ``render`` (if given) is called once per individual to stand in for image generation.
    """
    rng = np.random.default_rng(seed)
    run_dir = Path(run_dir)
    units = units if units is not None else default_units(positive, negative)
    n = len(units)
    config = {
        "positive": positive,
        "negative": negative,
        "size_limit": size_limit,
        "generation": {"seed": 1000, "batch_size": batch, "steps": 20, "cfg_scale": 7.0, "width": side,
                       "height": side, "sampler": "DPM++ 2M", "scheduler": "karras", "subseed": 0,
                       "subseed_strength": 0.0, "denoising_strength": 1.0},
    }
    seeds = [1000 + i for i in range(batch)]
    result = RunResult(run_dir=run_dir, original_positive=positive, original_negative=negative, baseline=None,
                       best=None, hall_of_fame=[], units=units, generations=[], stop_reason="running",
                       config=config)
    sink.on_run_start(run_dir, config, units)

    def evaluate(generation: int, index: int, offsets: np.ndarray) -> IndividualRecord:
        started = time.perf_counter()
        if render is not None:
            render()
        images = random_images(rng, batch, side)
        rendered = time.perf_counter()
        pairs = rng.random(batch * (batch - 1) // 2) * 0.2 + 0.3 * np.exp(-0.15 * generation)
        ident = individual_id(offsets)
        record = IndividualRecord(
            generation=generation, index=index, individual_id=ident, offsets=offsets,
            positive=weighted_prompt(units, offsets, "positive") if generation else positive,
            negative=weighted_prompt(units, offsets, "negative") if generation else negative,
            images=images, seeds=list(seeds), loss=float(pairs.mean() + pairs.std()), pair_losses=pairs,
            size=float(np.linalg.norm(offsets)), render_seconds=rendered - started,
            loss_seconds=time.perf_counter() - rendered,
            folder=run_dir / generation_folder_name(generation) / ident,
        )
        record.folder.mkdir(parents=True, exist_ok=True)
        sink.on_individual(record)
        if result.best is None or record.loss < result.best.loss:
            result.best = record
            result.hall_of_fame = [record] + result.hall_of_fame[:4]
        return record

    result.baseline = evaluate(0, 0, np.zeros(n))
    centroid, sigma = rng.uniform(-0.25, 0.25, n), 0.05
    for generation in range(1, generations + 1):
        offsets = [centroid + sigma * rng.standard_normal(n) for _ in range(population)]
        records = [evaluate(generation, i, o) for i, o in enumerate(offsets)]
        losses = [r.loss for r in records]
        centroid = np.mean([r.offsets for r in sorted(records, key=lambda r: r.loss)[: population // 2]], axis=0)
        sigma *= 0.93
        eigen = np.sort(rng.uniform(0.5, 2.0, n)) * sigma**2
        record = GenerationRecord(
            generation=generation, losses=losses, individual_ids=[r.individual_id for r in records],
            sigma=sigma, centroid=centroid.copy(), diag_std=sigma * rng.uniform(0.5, 1.5, n),
            axis_ratio=float(np.sqrt(eigen.max() / eigen.min())), eigenvalues=eigen, best_loss=min(losses),
            training_seed=seeds[0], block=0,  # one seed block throughout: the unmodified prompt's loss pairs
            unmodified_loss=result.baseline.loss if result.baseline is not None else None,
        )
        result.generations.append(record)
        result.logbook.append({"gen": generation, "min": min(losses), "avg": float(np.mean(losses))})
        sink.on_generation(record, result)
    if result.best is not None:
        result.units = [UnitRow(u.text, u.prompt, u.base_weight, float(o), float(t))
                        for u, o, t in zip(units, result.best.offsets, result.generations[-1].diag_std
                                           if result.generations else np.zeros(n))]
    if result.best is not None:  # every synthetic batch has the same seeds: the losses are paired
        result.paired = result.user_seeds = PairedScore("your seeds", result.baseline.loss, result.best.loss,
                                                        tuple(seeds))
    result.stop_reason = stop_reason
    sink.on_finish(result)
    return result
