"""Putting a run together: new, or resumed by replaying its journal.

A resumed run is built exactly as a new one (same builders, plan and
optimizer), then its optimizer is restored from the checkpoint and its state
is rebuilt by applying the logged events in order (the fade guard's reference
statistics among them: the loss reads them from the state, ``recorded_reference``).
Every file is checked before anything is written; a folder that cannot be
continued exactly where it stopped is a ``checkpoint.ResumeError`` naming the
file and the problem.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from . import checkpoint as ckpt
from .builders import Builders
from ..config import PinningConfig
from .evaluator import Evaluator
from .journal import Journal
from ..search.optimizer import resolve_cma_seed, resolve_generations
from .plan import RunPlan, make_plan, same_seed_reference
from .rundir import public_run_dir
from .records import ReportSink, UnitRow
from ..rendering import Renderer
from .state import RunState
from .fingerprint import fingerprint_differences, render_fingerprint
from .store import FolderStore, RunStore
from .mask import apply_mask, load_run_mask, mask_record, new_run_mask, save_run_mask
from ..score.fade_guard import SUBJECT_FORMS, Reference
from ..score.subject import work_size
from ..score.tags import with_tags
from ..search.start_from import cluster_start, map_labels, saved_start

log = logging.getLogger(__name__)
Progress = Callable[[str, int, int], None]


@dataclass
class Run:
    """Everything a run works with; ``run.drive`` is the algorithm."""

    config: PinningConfig
    renderer: Renderer
    vector: Any
    optimizer: Any
    plan: RunPlan
    evaluator: Evaluator
    state: RunState
    journal: Journal
    progress: Optional[Progress]
    cma_seed: int
    exclude_same_seed: bool = True
    has_targets: bool = False  # explicit target images; else the baseline's batch is the target
    same_seed_reference: bool = False  # the fade guard compares with the baseline on each block (journaled)
    mask: Optional[torch.Tensor] = None  # the target mask (run/mask.py)
    next_generation: int = 0
    host: dict[str, Any] = field(default_factory=dict)
    recorded_inputs: dict[str, Any] = field(default_factory=dict)  # a resumed run's targets and mask, as recorded

    @property
    def run_dir(self) -> Optional[Path]:
        return self.journal.run_dir

    def validation_seeds(self) -> list[int]:
        return [s for k in self.plan.validation_blocks for s in self.evaluator.block(k).seeds()]

    def resolved(self) -> dict[str, Any]:
        plan = self.plan
        return {"N": plan.units, "cma_seed": self.cma_seed, "generations": plan.generations,
                "total_evaluations": plan.total, **self.optimizer.resolved,
                "validation_batches": plan.validation_batches, "seed_schedule": plan.schedule,
                "loss_variant": self.config.loss_variant, "validation_seeds": self.validation_seeds(),
                "validation_generations": list(plan.validation_points), "centroid_evaluated": plan.with_centroid,
                "same_seed_pairs": "excluded" if self.exclude_same_seed else "kept",
                "plan": plan.to_dict(), "host": dict(self.host), **mask_record(self.mask)}

    def config_dict(self) -> dict[str, Any]:
        # A renderer may describe itself for the report (the WebUI API renderer: instances, faults).
        about = getattr(self.renderer, "report_info", None)
        shown = {**self.config.to_dict(), **self.recorded_inputs}
        return {**shown, "resolved": self.resolved(),
                "run_dir": public_run_dir(self.run_dir) if self.run_dir else None,
                **({"renderer": about()} if callable(about) else {})}

    def units(self, offsets: Optional[np.ndarray] = None, tightness: Optional[np.ndarray] = None) -> list[UnitRow]:
        rows = self.vector.unit_rows(np.zeros(self.vector.size) if offsets is None else offsets)
        for row, value in zip(rows, tightness if tightness is not None else []):
            row.tightness = float(value)
        return rows

    def result(self, reason: str):
        best = self.state.selected()
        tightness = self.optimizer.distribution().diag_std if self.state.generation_records else None
        return self.state.result(reason, config=self.config_dict(),
                                 units=self.units(best.offsets if best is not None else None, tightness),
                                 validation_seeds=self.validation_seeds())


def host_settings(renderer: Renderer) -> dict[str, Any]:
    """What a resume must match: the renderer's fingerprint (``fingerprint``)."""
    return render_fingerprint(renderer)


def _assemble(config: PinningConfig, renderer: Renderer, builders: Builders, open_store: Callable[[], RunStore],
              sink: Optional[ReportSink], should_stop, progress, has_targets: bool,
              resolved: Optional[dict[str, Any]] = None) -> Run:
    """The run's parts; the store is opened only once the prompt, start and optimizer are sound.
    ``has_targets``: the run pins to target images; ``resolved``: a resumed run's saved settings
    (its start point among them)."""
    vector = builders.vector(config, renderer)
    cma_seed = resolve_cma_seed(config)
    generations = resolve_generations(config, vector.size)
    start = (cluster_start(config.start_from, map_labels(vector.unit_rows(np.zeros(vector.size))))
             if resolved is None else saved_start(resolved, vector.size))
    optimizer = builders.optimizer(config, vector.size, cma_seed, start)
    plan = make_plan(config, vector.size, optimizer, generations, has_targets)
    host = host_settings(renderer)  # before the folder: a renderer that cannot say leaves none behind
    store = open_store()
    state = RunState(plan, config.generation, store.run_dir)
    evaluator = Evaluator(renderer, None, config.generation, should_stop)
    journal = Journal(store, sink, state)
    journal.cma_logging = bool(config.cma_logging)
    journal.expected = host
    evaluator.before_render = lambda: journal.rendering(host_settings(renderer))  # every call's fingerprint
    return Run(config, renderer, vector, optimizer, plan, evaluator, state, journal,
               progress, cma_seed, has_targets=has_targets,
               same_seed_reference=same_seed_reference(config, has_targets), host=host)


def new_run(config: PinningConfig, renderer: Renderer, builders: Builders, store: Optional[RunStore],
            sink, should_stop, progress) -> Run:
    targets = builders.targets(config)  # bad target or mask files are refused before the run folder exists
    mask = new_run_mask(config)
    run = _assemble(config, renderer, builders,
                    (lambda: store) if store is not None else (lambda: FolderStore.create(config.outdir)),
                    sink, should_stop, progress, bool(config.targets))
    try:
        if (targets is not None) != run.has_targets:  # the plan counted on the config's targets
            raise ValueError(f"targets: the targets builder returned {'none' if targets is None else 'images'} "
                             f"for a config with {len(config.targets)} target images")
        run.mask = mask
        run.journal.store.save_config(config, run.resolved())
        if targets is not None:
            run.journal.store.save_images("targets", targets)
        save_run_mask(run.journal.store, run.mask)
        run.evaluator.use_loss(_loss(builders, config, targets, run))
        run.journal.checkpoint(0, run.optimizer.state())  # a run stopped before its first generation resumes too
    except BaseException:
        if store is None:  # the folder made above holds nothing evaluated: no orphan left behind
            run.journal.store.discard()
        else:
            run.journal.store.close()  # the run folder's lock
        raise
    return run


def resumed_run(run_dir: Path | str, renderer: Renderer, builders: Builders, sink, should_stop, progress) -> Run:
    store = FolderStore.open(run_dir)  # locked: a second resume of the folder is refused
    try:
        return _replayed(store, renderer, builders, sink, should_stop, progress)
    except BaseException:
        store.close()
        raise


def _replayed(store: FolderStore, renderer: Renderer, builders: Builders, sink, should_stop, progress) -> Run:
    folder = store.run_dir
    config, resolved, recorded = ckpt.load_saved_run(folder)
    target_names = recorded["targets"]
    run = _assemble(config, renderer, builders, lambda: store, sink, should_stop, progress, bool(target_names),
                    resolved)
    run.recorded_inputs = {k: v for k, v in recorded.items() if v}
    check = getattr(renderer, "check", None)  # a fan-out renderer's canary: every instance renders alike
    if callable(check):
        check(config.generation)
    config_file = folder / ckpt.CONFIG_FILE
    if resolved.get("N") != run.plan.units:
        raise ckpt.ResumeError(
            f"{config_file}: the run had {resolved.get('N')!r} prompt units, the prompt now splits into "
            f"{run.plan.units} (another tokenizer or model?); it cannot be continued here")
    _check_same(config_file, "its plan", run.plan.differences(resolved.get("plan")))
    saved_host = resolved.get("host") if isinstance(resolved.get("host"), dict) else {}
    _check_same(config_file, "the renderer's settings", fingerprint_differences(saved_host, run.host))
    run.exclude_same_seed = resolved.get("same_seed_pairs") == "excluded"
    events = store.read_events(_entry_check(run))
    _check_fingerprints(folder / ckpt.EVALUATIONS_FILE, events, saved_host)
    named = next((e for e in reversed(events) if e.get("checkpoint") is True), None)  # the journal's word
    checkpoint = ckpt.load_checkpoint(folder, run.optimizer, run.plan.units, run.plan.generations, named)
    beyond = next((i for i, e in enumerate(events)
                   if ckpt.is_evaluation(e) and e["generation"] > max(checkpoint.generation, 0)), None)
    if beyond is not None:  # one event per line: its number is its place
        raise ckpt.ResumeError(f"{folder / ckpt.EVALUATIONS_FILE}, line {beyond + 1}: generation "
                               f"{events[beyond]['generation']} is beyond the checkpoint's {checkpoint.generation}")
    targets = _load_targets(store, config, bool(target_names))
    run.mask = load_run_mask(folder, resolved, config.generation)
    run.evaluator.use_loss(_loss(builders, config, targets, run))
    _check_events(folder / ckpt.EVALUATIONS_FILE, events, run, checkpoint.generation)
    images = _saved_images(store, config, events)
    run.journal.replay(events, images, set(store.kept_ids()))
    _check_references(folder / ckpt.EVALUATIONS_FILE, run)
    if run.state.baseline is not None:
        if targets is None:
            run.evaluator.set_targets(images[run.state.baseline.individual_id][0], run.exclude_same_seed)
        run.next_generation = max(1, checkpoint.generation)
    ckpt.drop_torn_tail(folder)  # everything checked: new lines start on a line of their own
    log.info("resuming %s at generation %d (%d renders on disk)", folder, run.next_generation, run.state.done)
    return run


def _loss(builders: Builders, config: PinningConfig, targets, run: Run):
    """The run's loss: the builder's, weighted by the target mask, with the fade guard's same-seed
    reference (read from the run's state) and the tag target when there are."""
    loss = builders.loss(config, targets)
    apply_mask(loss, run.mask)
    if run.same_seed_reference:
        loss.seed_reference = recorded_reference(run.state)
    return with_tags(loss, config, run.renderer)


def recorded_reference(state: RunState) -> Callable[[Any], Reference]:
    """Noise keys of a seed block -> the unmodified prompt's fade guard reference there, as journaled.
    The run records it before it scores on a block; a block without it is a defect, not a render."""
    def reference(keys) -> Reference:
        stats = state.reference(keys)
        if stats is None:
            raise RuntimeError(f"fade guard: no recorded reference for the seed block starting at {list(keys)[:1]}")
        return stats
    return reference


def _check_same(path: Path, what: str, differences: list[str]) -> None:
    if differences:
        raise ckpt.ResumeError(f"{path}: {what} differ from the run's, so it cannot be continued here: "
                               + "; ".join(differences))


def _load_targets(store: FolderStore, config: PinningConfig, had_targets: bool):
    if not had_targets:
        return None
    path = store.image_path("targets")
    if not path.exists() and not path.is_symlink():
        raise ckpt.ResumeError(f"{path}: missing, but the run was pinned to explicit target images; "
                               "without them it cannot be continued")
    return ckpt.load_images(path, config.generation)[0]


def _saved_images(store: FolderStore, config: PinningConfig, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The batches a resumed run may show again: the baseline's, the kept ones' and the result's."""
    settings, batch = config.generation, config.generation.batch_size
    images: dict[str, Any] = {}
    first = next((e for e in events if ckpt.is_evaluation(e)), None)  # the baseline (_check_events)
    if first is not None:
        baseline, _, traces = ckpt.load_batch(store.image_path("baseline"), settings, count=batch)
        images[first["id"]] = (baseline, first["id"], traces)
    logged = {e["id"] for e in events if ckpt.is_evaluation(e)}
    paths = [store.image_path("best"), *(ckpt.kept_path(store.run_dir, i) for i in store.kept_ids() if i in logged)]
    for path, key in [*((p, None) for p in paths), (store.image_path("result"), "final")]:
        if path.exists() or path.is_symlink():
            kept, ident, traces = ckpt.load_batch(path, settings, count=batch, with_id=True)
            if key is None and path.parent.name == ckpt.KEPT_FOLDER and ident != path.stem:
                raise ckpt.ResumeError(f"{path}: holds the images of {ident}, not of {path.stem}")
            images[key or ident] = (kept, ident, traces)
    return images


def _entry_check(run: Run):
    """The run's own checks of an evaluation line: its size and its prompts."""
    n, batch = run.plan.units, run.config.generation.batch_size

    def check(entry: dict[str, Any]) -> Optional[str]:
        if len(entry["offsets"]) != n:
            return f"{len(entry['offsets'])} offsets for {n} prompt units"
        if len(entry["seeds"]) != batch:
            return f"{len(entry['seeds'])} seeds for a batch of {batch}"
        prompt = run.vector.render(np.array(entry["offsets"], dtype=np.float64))
        if (entry["positive"], entry["negative"]) != tuple(prompt):
            return "its prompts are not the ones its offsets give"
        return None
    return check


def _check_events(path: Path, events: list[dict[str, Any]], run: Run, generation: int) -> None:
    """The log's order and counts, as this run's plan needs them."""
    plan = run.plan
    references = set(plan.reference_generations())
    evaluations = [e for e in events if ckpt.is_evaluation(e)]
    if evaluations and (evaluations[0]["generation"], evaluations[0]["index"]) != (0, 0):
        raise ckpt.ResumeError(f"{path}: the first line must be the baseline")
    if not evaluations and generation > 0:
        raise ckpt.ResumeError(f"{path}: missing or empty, but {ckpt.CHECKPOINT_FILE} is at generation {generation}")
    closed = 0
    for entry in events:
        if entry.get("validation") is True and len(entry["losses"]) != plan.validation_batches:
            raise ckpt.ResumeError(f"{path}: a validation of {entry['id']} has {len(entry['losses'])} losses; "
                                   f"the run validates on {plan.validation_batches} batches")
        if entry.get("closed") is True:
            if entry["generation"] != closed + 1 or entry["generation"] >= max(generation, 1) \
                    or len(entry["centroid"]) != plan.units:
                raise ckpt.ResumeError(f"{path}: generation end {entry['generation']} is out of order "
                                       f"or does not fit the run")
            closed += 1
        if entry.get("reference") is True:
            problem = _reference_problem(entry, run, references, generation)
            if problem:
                raise ckpt.ResumeError(f"{path}: the reference of seed block {entry['block']} {problem}")


def _check_fingerprints(path: Path, events: list[dict[str, Any]], saved: dict[str, Any]) -> None:
    """Every journaled render fingerprint is the run's, and each line names one journaled before it
    (a log written before fingerprints were journaled has none: nothing to check)."""
    known: set[str] = set()
    for number, entry in enumerate(events, 1):  # one event per line: its number is its place
        if entry.get("fingerprint") is True:
            differences = fingerprint_differences(saved, entry["parts"])
            if differences:
                raise ckpt.ResumeError(f"{path}, line {number}: the renderer's settings changed during the run "
                                       "(its images do not pair with the earlier ones): " + "; ".join(differences))
            known.add(entry["hash"])
        elif "fingerprint" in entry and entry["fingerprint"] not in known:
            raise ckpt.ResumeError(f"{path}, line {number}: names render fingerprint {entry['fingerprint']}, "
                                   "which no earlier line records")


def _reference_problem(entry: dict[str, Any], run: Run, references: set[int], generation: int) -> Optional[str]:
    """What does not fit the run in a fade guard reference line (None when it fits)."""
    if not run.same_seed_reference:
        return "is logged, but this run's fade guard does not compare with the unmodified prompt"
    source, block, g = entry["source"], entry["block"], entry["generation"]
    form = run.config.fade_guard_form
    if (form in SUBJECT_FORMS) != ("subject" in entry):
        return (f"does not fit the fade guard's form {form!r} (it holds " + ("a" if "subject" in entry else "no")
                + " subject profile); a run saved before the subject forms resumes only with the batch form")
    if "subject" in entry:
        size = list(work_size(run.config.generation.height, run.config.generation.width))
        if entry["subject"]["size"] != size or len(entry["subject"]["masks"]) != run.config.generation.batch_size:
            return "holds a subject profile of another size or batch than the run's"
    fits = {"baseline": block == 0 and g == 0, "validation": block in run.plan.validation_blocks and g == 0,
            "reference": g in references and block == run.plan.training_block(g)
            and g <= generation}[source]
    return None if fits else f"does not fit the run's plan (source {source!r}, generation {g})"


def _check_references(path: Path, run: Run) -> None:
    """A guarded run's log holds the reference of every block its baseline was rendered on."""
    if not run.same_seed_reference or run.state.baseline is None:
        return
    rendered = [0, *(run.plan.validation_blocks if 0 in run.state.validated_at else ())]
    missing = [k for k in rendered if k not in run.state.references]
    if missing:
        raise ckpt.ResumeError(
            f"{path}: the run has the fade guard on but holds no reference statistics of the unmodified prompt "
            f"for seed block {missing[0]} (it was written before they were journaled); it cannot be continued "
            "exactly: start it again")
