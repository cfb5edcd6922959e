"""Does a pinned prompt hold on seeds the search never saw?

For every prompt x CMA seed x configuration (seed schedule, validation batches,
loss variant) it runs a real pinning run on the built-in model with the CLI's
default generation settings, then renders the unmodified prompt, the run's
result and a random search's result on held-out seed blocks (disjoint from
every training and validation seed) and scores each against the run's target
(the unmodified prompt's first batch) with the run's own loss.

The random search gets the same number of training evaluations as the CMA run
(offsets drawn from U(-RANDOM_RADIUS, RANDOM_RADIUS)^N on the training seeds)
and, when validation is on, validates as many of its best as the run did and
picks by validation loss, as the run does.

Printed per configuration, with the issue's targets:

* mean improvement on the run's own seeds (the result rendered there, paired with the baseline)
  and held-out improvement over the baseline (held-out >= half of the own-seeds gain);
* prompts whose held-out improvement is positive by more than 2 standard errors (>= 6 of 8);
* runs where CMA's result beats random search's on held-out seeds (>= 75%);
* validation renders as a share of the training renders (<= 15% with defaults);
* the baseline's own-batch score against its held-out mean, with and without
  same-seed pairs (the self-comparison check: near 0 means unbiased);
* per prompt, next to the held-out loss change: the held-out images' change of
  contrast and colourfulness and the same-seed "subject kept" measure
  (``subject_measures.py``), and how many prompts lose more than 10% of either
  (the fade guard's target: none).

Held-out and own-seed losses are the FLIP objective without the fade guard,
whatever the configuration, so that configurations compare on one scale; the runs and the
random search optimise their configuration's own loss (guard included).

    python benchmarks/bench_quality.py [--prompts 8] [--cma-seeds 3] [--heldout-batches 8]
        [--generations 0] [--configs fixed:1:union,rotating:1:union:guard=0,fixed:0:union]
        [--quick] [--json PATH] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.options import OPTION
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run import run_pinning
from prompt_pinning.search.seed_blocks import block_settings
from prompt_pinning.run.builders import Builders, build_loss, build_targets, build_vector
from prompt_pinning.score.fade_guard import attach_fade_reference

import subject_measures

# Prompts the built-in model can draw; each leaves something open for the weights to pin.
PROMPTS = (
    ("a red circle, on a blue background", "green"),
    ("a large yellow square", ""),
    ("a small green triangle, left", "red"),
    ("a purple ring on a white background", ""),
    ("a big orange diamond, top", "blue"),
    ("a blue cross, right, on a grey background", ""),
    ("a pink circle, bottom", "large"),
    ("stripes on a black background", "white"),
)
# Prompts no default was tuned on: the check that a setting chosen on PROMPTS holds elsewhere.
HELDOUT_PROMPTS = (
    ("a green square on a pink background", ""),
    ("a small brown diamond, right", "yellow"),
    ("a white cross on a black background", ""),
    ("a large red ring, top", "small"),
    ("blue stripes on a yellow background", ""),
    ("a purple triangle, bottom, on a grey background", "green"),
    ("an orange circle, left", "white"),
    ("a small yellow disc, center, on a brown background", ""),
)
PROMPT_SETS = {"tuning": PROMPTS, "heldout": HELDOUT_PROMPTS}
DEFAULT_CONFIGS = "fixed:1:union,rotating:1:union,fixed:0:union"
HELDOUT_FIRST_BLOCK = 10_000  # seed + block * batch_size: far beyond any training or validation block
RANDOM_RADIUS = 0.5  # twice the initial centroid radius: where CMA's results lie
IMAGE_SEED = 1  # the CLI's default seed
TARGETS = {
    "heldout_over_own_seeds": 0.5, "prompts_significant": 6 / 8, "beats_random": 0.85, "validation_cost": 0.15,
    "heldout_improvement": 0.02, "subject_kept": subject_measures.SUBJECT_TARGET,
}


@dataclass(frozen=True)
class RunSpec:
    schedule: str
    validation_batches: int
    loss_variant: str
    same_seed_pairs: str = "excluded"  # "kept": the objective as it was, for comparison
    fade_guard: Optional[float] = None  # None: the option's default

    @property
    def name(self) -> str:
        tail = ":kept" if self.same_seed_pairs == "kept" else ""
        guard = "" if self.fade_guard is None else f":guard={self.fade_guard:g}"
        return f"{self.schedule}:{self.validation_batches}:{self.loss_variant}{tail}{guard}"


def parse_configs(text: str) -> list[RunSpec]:
    """``schedule:validation_batches:loss_variant[:kept][:guard=W]`` items; ``kept`` scores same-seed
    target/image pairs as the objective did before they were left out; ``guard=W`` sets the fade
    guard's weight (default: the option's default)."""
    specs = []
    for item in text.split(","):
        parts = item.strip().split(":")
        tail = parts[3:]
        guard = [t for t in tail if t.startswith("guard=")]
        rest = [t for t in tail if not t.startswith("guard=")]
        try:
            weight = float(guard[0][6:]) if guard else None
        except ValueError:
            weight = float("nan")
        if len(parts) < 3 or not parts[1].isdigit() or rest not in ([], ["kept"]) or len(guard) > 1 \
                or (weight is not None and not weight >= 0):
            raise SystemExit(f"--configs: expected schedule:validation_batches:loss_variant[:kept][:guard=W] "
                             f"items (like {DEFAULT_CONFIGS}), got {item!r}")
        specs.append(RunSpec(parts[0], int(parts[1]), parts[2], "kept" if rest else "excluded", weight))
    return specs


def loss_builder(spec: RunSpec):
    """The run's loss builder; with ``kept`` the loss is given no target seeds, so nothing is left out."""
    if spec.same_seed_pairs != "kept":
        return build_loss

    def build(config, targets):
        loss = build_loss(config, targets)
        plain = loss.set_targets
        loss.set_targets = lambda images, seeds=None: plain(images)
        return loss
    return build


def base_settings(args: argparse.Namespace) -> GenerationSettings:
    return GenerationSettings(seed=IMAGE_SEED, batch_size=args.batch_size, steps=args.steps, cfg_scale=3.0,
                              width=args.size, height=args.size, sampler="DPM++ 2M", scheduler="karras")


def make_config(prompt: tuple[str, str], cma_seed: int, spec: RunSpec, args, outdir: Path) -> PinningConfig:
    guard = {} if spec.fade_guard is None else {"fade_guard": spec.fade_guard}
    return PinningConfig(positive=prompt[0], negative=prompt[1], generation=base_settings(args), cma_seed=cma_seed,
                         generations=args.generations or None, validation_batches=spec.validation_batches,
                         seed_schedule=spec.schedule, loss_variant=spec.loss_variant, outdir=outdir,
                         cma_logging=False, **{**dict(args.set), **guard}).validate()


def plain_loss(config: PinningConfig):
    """The FLIP objective without the fade guard: held-out losses compare configurations on it."""
    if hasattr(config, "fade_guard"):
        config = replace(config, fade_guard=0.0)
    return build_loss(config, None)


class CountingRenderer:
    """The built-in renderer, counting rendered individuals."""

    def __init__(self, inner: BuiltinRenderer):
        self.inner, self.name, self.tokenizer, self.individuals = inner, inner.name, inner.tokenizer, 0

    def render(self, prompts, settings, progress=None):
        self.individuals += len(prompts)
        return self.inner.render(prompts, settings, progress)


def scores(loss, renderer, prompts: list[tuple[str, str]], settings: GenerationSettings,
           batches_out: Optional[list] = None) -> list[float]:
    batches = renderer.render(prompts, settings)
    if batches_out is not None:
        batches_out[:] = batches
    results = loss.evaluate_many([b.images for b in batches], [b.traces for b in batches],
                                 seeds_list=[list(b.seeds) for b in batches])
    return [float(r.value) for r in results]


def random_training(config, renderer, loss, count: int, seed: int) -> tuple[np.ndarray, list[float], list]:
    """``count`` random offsets scored on the training seeds: offsets, losses, prompts."""
    vector = build_vector(config, renderer)
    offsets = np.random.default_rng(seed).uniform(-RANDOM_RADIUS, RANDOM_RADIUS, (count, vector.size))
    prompts = [vector.render(o) for o in offsets]
    return offsets, scores(loss, renderer, prompts, block_settings(config.generation, 0)), prompts


def run_one(prompt, cma_seed, spec, args, renderer, random_cache) -> dict[str, Any]:
    """One pinning run and its held-out, random-search and self-comparison figures."""
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(prompt, cma_seed, spec, args, Path(tmp))
        counting = CountingRenderer(renderer)
        started = time.perf_counter()
        result = run_pinning(config, counting, builders=Builders(loss=loss_builder(spec)))
        run_seconds = time.perf_counter() - started
        logged = ckpt.read_evaluations(result.run_dir)
    if result.stop_reason != "completed":
        raise RuntimeError(f"{prompt[0]!r}: run stopped: {result.stop_reason}")
    resolved = result.config["resolved"]
    evaluations = [e for e in logged if ckpt.is_evaluation(e)]
    validations = [e for e in logged if e.get("validation")]
    centroids = sum(1 for e in evaluations if e["extra"].get("centroid"))
    tied = tied_share([e for e in evaluations if e["generation"] > 0 and not e["extra"].get("centroid")])
    training_renders = len(evaluations) - centroids
    # choosing the result: the search mean and validation (validated runs), and the result's
    # render on the user's seeds (counted in the plan even when the result is the baseline)
    validation_renders = (centroids if validations else 0) + sum(len(e["losses"]) for e in validations)
    result_renders = (0 if validations else centroids) + 1
    # the fade guard's renders of the unmodified prompt on training blocks (part of the run's plan)
    reference_renders = sum(1 for e in logged if e.get("reference") is True and e.get("source") == "reference")

    settings = config.generation
    loss = build_loss(config, None)  # held-out and random search: same-seed pairs never arise there
    loss.set_targets(result.baseline.images, seeds=list(result.baseline.seeds))
    attach_fade_reference(loss, config, renderer, build_vector(config, renderer), settings, build_targets(config))

    # Random search: the same number of training evaluations (the generations' individuals).
    key = (prompt, cma_seed, spec.fade_guard)
    if key not in random_cache:
        random_cache[key] = random_training(config, renderer, loss, training_renders - 1, cma_seed)
    offsets, random_losses, random_prompts = random_cache[key]
    order = np.argsort(random_losses, kind="stable")
    random_pick = int(order[0])
    if spec.validation_batches:
        validated = len(validations) - 1 - (1 if centroids else 0)  # the run's own candidates, baseline aside
        candidates = [int(i) for i in order[:max(1, validated)]]
        values = np.zeros(len(candidates))
        for block in resolved["validation_seeds"][::settings.batch_size]:
            values += scores(loss, renderer, [random_prompts[i] for i in candidates], settings.with_(seed=block))
        values /= len(resolved["validation_seeds"]) // settings.batch_size
        best = int(np.argmin(values))
        random_pick = candidates[best] if values[best] < result.baseline_validation_loss else -1
    random_prompt = (result.original_positive, result.original_negative) if random_pick < 0 \
        else random_prompts[random_pick]

    heldout = {"baseline": [], "result": [], "random": []}
    images = subject_measures.HeldoutImages()
    flip_only = plain_loss(config)
    flip_only.set_targets(result.baseline.images, seeds=list(result.baseline.seeds))
    for h in range(args.heldout_batches):
        block = block_settings(settings, HELDOUT_FIRST_BLOCK + h)
        batches: list = []
        values = scores(flip_only, renderer, [(result.original_positive, result.original_negative),
                                              (result.best.positive, result.best.negative), random_prompt], block,
                        batches)
        images.add(batches[0].images, batches[1].images)
        for name, value in zip(heldout, values):
            heldout[name].append(value)

    # Self-comparison: the baseline's own-batch score with same-seed pairs kept and left out.
    own = result.baseline
    copies = plain_loss(config)
    copies.set_targets(own.images)
    with_copies = copies.evaluate(own.images, own.traces).value
    left_out = flip_only.evaluate(own.images, own.traces, seeds=list(own.seeds)).value
    # The result on the run's own seeds, scored as the held-out seeds are (the FLIP objective alone;
    # the run's own paired numbers include its fade guard's term).
    (own_result,) = scores(flip_only, renderer, [(result.best.positive, result.best.negative)], block_settings(settings, 0))
    return {
        "prompt": prompt[0], "negative": prompt[1], "cma_seed": cma_seed, "config": spec.name,
        "N": resolved["N"], "generations": resolved["generations"], "lambda_": resolved["lambda_"],
        "selected_by": result.selected_by, "result_generation": result.best.generation,
        "result_is_centroid": bool(result.best.extra.get("centroid")),
        # the result against the unmodified prompt on the run's own seeds (block 0): paired, FLIP alone
        "own_seeds_baseline": float(left_out), "own_seeds_result": float(own_result),
        "own_seeds_run_loss": [result.user_seeds.baseline, result.user_seeds.result],
        "validation_baseline": _nan_none(result.baseline_validation_loss),
        "validation_result": _nan_none(result.best_validation_loss),
        "heldout_baseline": heldout["baseline"], "heldout_result": heldout["result"],
        "heldout_random": heldout["random"], "baseline_own_batch_with_copies": float(with_copies),
        "baseline_own_batch_left_out": float(left_out),
        "training_renders": training_renders, "validation_renders": validation_renders,
        "result_renders": result_renders, "reference_renders": reference_renders,
        "renders_counted": counting.individuals, "progress_total": resolved["total_evaluations"],
        "run_seconds": run_seconds, "tied_losses": tied, "result_offsets_max": float(np.max(np.abs(result.best.offsets))),
        **images.record(),
    }


def self_comparison(prompt, args, renderer, blocks: int) -> dict[str, list[float]]:
    """The unmodified prompt scored on its own batch, against the same targets' other batches.

    Each of ``blocks`` held-out batches is the target in turn: its own-batch score (same-seed
    copies kept, then left out) minus its mean score on the other batches, in standard
    deviations of those scores. Unbiased scoring gives differences centred on 0.
    """
    config = make_config(prompt, 1, RunSpec("fixed", 0, "union"), args, Path("."))
    settings = config.generation
    batches = [renderer.render([prompt], block_settings(settings, HELDOUT_FIRST_BLOCK + k))[0]
               for k in range(blocks)]
    kept, left_out = [], []
    for k, own in enumerate(batches):
        loss, copies = plain_loss(config), plain_loss(config)
        loss.set_targets(own.images, seeds=list(own.seeds))
        copies.set_targets(own.images)
        others = [loss.evaluate(b.images, b.traces, seeds=list(b.seeds)).value for j, b in enumerate(batches) if j != k]
        spread = float(np.std(others, ddof=1))
        kept.append((copies.evaluate(own.images, own.traces).value - np.mean(others)) / spread)
        left_out.append((loss.evaluate(own.images, own.traces, seeds=list(own.seeds)).value - np.mean(others)) / spread)
    return {"kept": kept, "left_out": left_out}


def tied_share(evaluations: list[dict[str, Any]]) -> float:
    """Share of individuals whose loss another individual of their generation has exactly:
    different weights, same images. Near 0 when the model answers weights continuously."""
    tied = 0
    for g in {e["generation"] for e in evaluations}:
        losses = [e["loss"] for e in evaluations if e["generation"] == g]
        tied += sum(losses.count(x) > 1 for x in losses)
    return tied / max(1, len(evaluations))


def _nan_none(value: float) -> Optional[float]:
    return None if value is None or math.isnan(value) else float(value)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's four measures (and a few more) over one configuration's runs."""
    own_gain = np.array([(r["own_seeds_baseline"] - r["own_seeds_result"]) / r["own_seeds_baseline"] for r in runs])
    held_gain = np.array([(np.mean(r["heldout_baseline"]) - np.mean(r["heldout_result"])) / np.mean(r["heldout_baseline"])
                          for r in runs])
    beats = [np.mean(r["heldout_result"]) < np.mean(r["heldout_random"]) for r in runs]
    ties = [r["heldout_result"] == r["heldout_random"] for r in runs]
    prompts = sorted({r["prompt"] for r in runs}, key=[r["prompt"] for r in runs].index)
    per_prompt = {}
    for prompt in prompts:
        diffs = np.concatenate([np.subtract(r["heldout_baseline"], r["heldout_result"]) for r in runs
                                if r["prompt"] == prompt])
        se = diffs.std(ddof=1) / math.sqrt(diffs.size) if diffs.size > 1 else float("nan")
        per_prompt[prompt] = {"mean": float(diffs.mean()), "se": float(se),
                              "t": float(diffs.mean() / se) if se and se > 0 else (0.0 if diffs.mean() == 0 else
                                                                                    math.copysign(math.inf, diffs.mean()))}
    significant = sum(1 for p in per_prompt.values() if p["t"] > 2)
    bias_kept, bias_left_out = [], []
    for r in runs:  # baseline's own-batch score against its held-out spread, per run
        spread = np.std(r["heldout_baseline"], ddof=1) if len(r["heldout_baseline"]) > 1 else float("nan")
        bias_kept.append((r["baseline_own_batch_with_copies"] - np.mean(r["heldout_baseline"])) / spread)
        bias_left_out.append((r["baseline_own_batch_left_out"] - np.mean(r["heldout_baseline"])) / spread)
    training = sum(r["training_renders"] for r in runs)
    validation = sum(r["validation_renders"] for r in runs)
    correlation = float(np.corrcoef(own_gain, held_gain)[0, 1]) if len(runs) > 2 and np.std(own_gain) > 0 \
        and np.std(held_gain) > 0 else None
    summary = {
        "runs": len(runs), "prompts": len(prompts),
        "mean_own_seeds_improvement": float(own_gain.mean()),
        "mean_heldout_improvement": float(held_gain.mean()),
        "heldout_over_own_seeds": float(held_gain.mean() / own_gain.mean()) if own_gain.mean() > 0 else None,
        "gain_correlation": correlation,
        "prompts_significant": significant, "prompts_significant_share": significant / len(prompts),
        "beats_random": float(np.mean(beats)), "ties_with_random": int(sum(ties)),
        "validation_cost": validation / training,
        "self_comparison_z_with_copies": float(np.nanmean(bias_kept)),
        "self_comparison_z_left_out": float(np.nanmean(bias_left_out)),
        "self_comparison_median_z_with_copies": float(np.nanmedian(bias_kept)),
        "self_comparison_median_z_left_out": float(np.nanmedian(bias_left_out)),
        "results_chosen_by_validation": sum(r["selected_by"] == "validation" for r in runs),
        "results_that_are_the_baseline": sum(r["result_generation"] == 0 for r in runs),
        "results_that_are_the_centroid": sum(r["result_is_centroid"] for r in runs),
        "mean_run_seconds": float(np.mean([r["run_seconds"] for r in runs])),
        "tied_losses": float(np.mean([r.get("tied_losses", float("nan")) for r in runs])),
        "per_prompt": per_prompt,
        **subject_measures.summary(runs),
    }
    summary["targets_met"] = {
        "heldout_over_own_seeds": summary["heldout_over_own_seeds"] is not None
        and summary["heldout_over_own_seeds"] >= TARGETS["heldout_over_own_seeds"],
        "prompts_significant": summary["prompts_significant_share"] >= TARGETS["prompts_significant"],
        "beats_random": summary["beats_random"] >= TARGETS["beats_random"],
        "validation_cost": summary["validation_cost"] <= TARGETS["validation_cost"],
        "heldout_improvement": summary["mean_heldout_improvement"] >= TARGETS["heldout_improvement"],
        "subject_kept": summary["prompts_losing_subject"] == 0,
    }
    return summary


def table(summaries: dict[str, dict[str, Any]]) -> str:
    def pct(x):
        return "n/a" if x is None else f"{100 * x:.1f}%"

    def ratio(x):
        return "n/a" if x is None else f"{x:.2f}"

    rows = [
        ("runs", lambda s: str(s["runs"])),
        ("mean improvement on the run's seeds (paired)", lambda s: pct(s["mean_own_seeds_improvement"])),
        ("mean held-out improvement (>= 2.0%)", lambda s: pct(s["mean_heldout_improvement"])),
        ("held-out / own seeds (>= 0.5)", lambda s: ratio(s["heldout_over_own_seeds"])),
        ("own-seeds/held-out gain correlation", lambda s: ratio(s["gain_correlation"])),
        ("prompts held-out > 2 SE (>= 6/8)", lambda s: f"{s['prompts_significant']}/{s['prompts']}"),
        ("CMA beats random, held-out (>= 85%)", lambda s: pct(s["beats_random"])),
        ("validation renders / training (<= 15%)", lambda s: pct(s["validation_cost"])),
        ("baseline own batch - held-out, z (median), kept", lambda s: f"{s['self_comparison_z_with_copies']:.2f} "
                                                                   f"({s['self_comparison_median_z_with_copies']:.2f})"),
        ("baseline own batch - held-out, z (median), left out", lambda s: f"{s['self_comparison_z_left_out']:.2f} "
                                                                f"({s['self_comparison_median_z_left_out']:.2f})"),
        ("results: baseline / centroid", lambda s: f"{s['results_that_are_the_baseline']} / "
                                                  f"{s['results_that_are_the_centroid']}"),
        ("individuals tied with another of their generation", lambda s: pct(s["tied_losses"])),
        ("prompts losing > 10% contrast or colour", lambda s: f"{s['prompts_faded']}/{s['prompts']}"),
        ("worst prompt's contrast / colourfulness change", lambda s: f"{pct(s['worst_contrast_change'])} / "
                                                                    f"{pct(s['worst_colour_change'])}"),
        ("subject kept, same seeds (mean, worst prompt)", lambda s: f"{s['mean_subject_kept']:.2f}, "
                                                                   f"{s['worst_subject_kept']:.2f}"),
        ("worst prompt's subject separation / colour kept (>= 0.90)",
         lambda s: f"{ratio(s['worst_subject_separation'])} / {ratio(s['worst_subject_colour'])}"),
        ("prompts keeping < 90% of their subject", lambda s: f"{s['prompts_losing_subject']}/{s['prompts']}"),
        ("seconds per run", lambda s: f"{s['mean_run_seconds']:.1f}"),
    ]
    names = list(summaries)
    width = max(len(r[0]) for r in rows)
    lines = [f"| {'configuration':<{width}} | " + " | ".join(names) + " |",
             f"|{'-' * (width + 2)}|" + "|".join("-" * (len(n) + 2) for n in names) + "|"]
    for label, cell in rows:
        lines.append(f"| {label:<{width}} | " + " | ".join(f"{cell(summaries[n]):>{len(n)}}" for n in names) + " |")
    return "\n".join(lines)


def _option(item: str, parser: argparse.ArgumentParser) -> tuple[str, Any]:
    name, sep, text = item.partition("=")
    fields = {f for f in PinningConfig.__dataclass_fields__} - {"positive", "negative", "generation", "outdir"}
    if not sep or name not in fields:
        parser.error(f"--set: expected NAME=VALUE with NAME a PinningConfig option, got {item!r}")
    for kind in (int, float):
        try:
            return name, kind(text)
        except ValueError:
            pass
    return name, text


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prompts", type=int, default=8, help="how many of the built-in prompts (1-8)")
    p.add_argument("--prompt-set", choices=sorted(PROMPT_SETS), default="tuning",
                   help="tuning: the prompts the defaults were chosen on; heldout: 8 others, to check them")
    p.add_argument("--cma-seeds", type=int, default=3, help="CMA seeds per prompt")
    p.add_argument("--heldout-batches", type=int, default=8, help="held-out batches (of batch size seeds) per run")
    p.add_argument("--generations", type=int, default=0, help="generations per run; 0 = the run's default")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help="schedule:validation_batches:loss_variant, comma-separated")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--size", type=int, default=64, help="image width and height")
    p.add_argument("--quick", action="store_true",
                   help="a small smoke-size run: 2 prompts, 1 CMA seed, 2 held-out batches, 3 generations, "
                        "batch 4, 6 steps, 32x32 (explicit options still override)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override a PinningConfig option for every run (a number or a word), repeatable")
    p.add_argument("--json", type=Path, default=None, help="write every run and the summaries here")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    args = p.parse_args(argv)
    if args.quick:
        explicit = {a.split("=")[0] for a in (argv if argv is not None else sys.argv[1:]) if a.startswith("--")}
        for name, value in (("prompts", 2), ("cma_seeds", 1), ("heldout_batches", 2), ("generations", 3),
                            ("batch_size", 4), ("steps", 6), ("size", 32)):
            if f"--{name.replace('_', '-')}" not in explicit:
                setattr(args, name, value)
    args.set = [_option(item, p) for item in args.set]
    if not 1 <= args.prompts <= len(PROMPTS):
        p.error(f"--prompts: from 1 to {len(PROMPTS)}, got {args.prompts}")
    for name in ("cma_seeds", "heldout_batches", "batch_size", "steps"):
        if getattr(args, name) < (2 if name in ("heldout_batches", "batch_size") else 1):
            p.error(f"--{name.replace('_', '-')}: too small ({getattr(args, name)})")
    return args


def main(argv=None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = parse_configs(args.configs)
    renderer = BuiltinRenderer()
    runs: list[dict[str, Any]] = []
    random_cache: dict = {}
    started = time.perf_counter()
    prompts = PROMPT_SETS[args.prompt_set]
    for spec in specs:
        for prompt in prompts[:args.prompts]:
            for cma_seed in range(1, args.cma_seeds + 1):
                run = run_one(prompt, cma_seed, spec, args, renderer, random_cache)
                runs.append(run)
                print(f"{spec.name:<22} {prompt[0][:34]:<34} seed {cma_seed}: own seeds "
                      f"{run['own_seeds_baseline']:.4f} -> {run['own_seeds_result']:.4f}, held-out "
                      f"{np.mean(run['heldout_baseline']):.4f} -> {np.mean(run['heldout_result']):.4f} "
                      f"(random {np.mean(run['heldout_random']):.4f}), {run['run_seconds']:.0f} s", flush=True)
    summaries = {spec.name: summarise([r for r in runs if r["config"] == spec.name]) for spec in specs}
    # Self-comparison over many targets: every held-out batch is the target once.
    own = [self_comparison(prompt, args, renderer, max(3, args.heldout_batches)) for prompt in prompts[:args.prompts]]
    z = {name: np.concatenate([o[name] for o in own]) for name in ("kept", "left_out")}
    self_check = {name: {"mean_z": float(v.mean()), "se": float(v.std(ddof=1) / math.sqrt(v.size)), "n": int(v.size)}
                  for name, v in z.items()}
    seconds = time.perf_counter() - started
    print()
    for name, summary in summaries.items():
        print(subject_measures.prompt_table(name, summary) + "\n")
    print(table(summaries))
    print("\nbaseline on its own batch minus on other batches, in SDs of a batch (mean +- SE, "
          f"{self_check['kept']['n']} targets): copies kept {self_check['kept']['mean_z']:+.2f} "
          f"+- {self_check['kept']['se']:.2f}, left out {self_check['left_out']['mean_z']:+.2f} "
          f"+- {self_check['left_out']['se']:.2f}")
    print(f"\n{len(runs)} runs in {seconds:.0f} s, torch threads {args.threads}, "
          f"{platform.machine()}, {datetime.now(timezone.utc):%Y-%m-%d}")
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.machine(),
        "torch": torch.__version__, "threads": args.threads, "seconds": seconds,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "options": {**{name: OPTION[name].default for name in ("fade_guard", "fade_tolerance", "fade_guard_form",
                                                                "initial_std")},
                    **dict(args.set)},  # what the runs used, unless their configuration names a guard
        "targets": TARGETS, "summaries": summaries, "self_comparison": self_check, "runs": runs,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1, allow_nan=True) + "\n", encoding="utf-8")
    return out


if __name__ == "__main__":
    main()
