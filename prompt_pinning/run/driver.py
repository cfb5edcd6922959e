"""The pinning run: ask, render, score, tell, validate; then show the result on the user's seeds.

``run_pinning`` starts a run (a new numbered folder, or a ``MemoryStore``);
``resume_pinning`` continues one by replaying its journal (``run_setup``). The
plan (``plan``) fixes every render before the first; the state (``run_state``)
changes only through the journal's events, so a resumed run and an
uninterrupted one pass through the same states.

Generation 0 renders the unmodified prompt on the user's seeds (block 0): the
baseline, and the target when no target images are given. Generation g renders
its population on its training block (block 0, or block g with rotating
seeds), scored in chunks; with the fade guard on and no target images, the
unmodified prompt is rendered on that block first, unless it already was (its
statistics are the guard's reference there: ``RunState.references``, journaled
from every render of that prompt, so the loss never renders). After the last
generation the search mean is evaluated, and the selected candidate
(``RunState.selected``: chosen only by paired comparisons) is rendered on the
user's seeds.

Stopping: ``should_stop`` is checked before and inside every render call and
between scoring chunks. Whatever stops the run, every finished evaluation is
already logged, ``run_state.json`` says why, the sink is flushed and the
selection so far is returned. A renderer or loss error ends the run with
``stop_reason`` "error: ..."; with ``raise_errors=True`` (the default) it is
re-raised with the result attached as ``exc.pinning_result``.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .builders import Builders
from .checks import ResumeError
from .evaluation_log import EVALUATIONS_FILE
from ..config import PinningConfig
from .plan import stage_label
from ..prompt.units import MAX_PROMPT_WEIGHT
from .records import IndividualRecord, ReportSink, RunResult
from ..rendering import RenderInterrupted
from ..score.fade_guard import Reference
from ..score.tags import tag_extra
from .evaluator import on_device
from .rundir import individual_id
from .setup import Progress, Run, new_run, resumed_run
from .store import RunStore

log = logging.getLogger(__name__)


def run_pinning(config: PinningConfig, renderer, *, sink: Optional[ReportSink] = None,
                should_stop: Optional[Callable[[], bool]] = None, progress: Optional[Progress] = None,
                raise_errors: bool = True, store: Optional[RunStore] = None,
                builders: Builders = Builders()) -> RunResult:
    """Run a pinning job in ``<outdir>/prompt_pins/<next number>`` (or resume ``config.resume``).

    ``store``: where the run's files go (default: a new run folder; a
    ``MemoryStore()`` writes nothing and takes no sink). ``progress(stage, done,
    total)`` counts individual renders against the plan's total; it may also have
    ``plan(renders)``, called first with the render calls still to come as
    (individuals per call, calls) pairs.
    """
    if config.resume is not None:
        return resume_pinning(config.resume, renderer, sink=sink, should_stop=should_stop, progress=progress,
                              raise_errors=raise_errors, builders=builders)
    config.validate()
    if store is not None and store.run_dir is None and sink is not None:
        raise ValueError("sink: report writers write into a run folder; a MemoryStore run takes no sink")
    return _closing(new_run(config, renderer, builders, store, sink, should_stop, progress), raise_errors)


def resume_pinning(run_dir: Path | str, renderer, *, sink: Optional[ReportSink] = None,
                   should_stop: Optional[Callable[[], bool]] = None, progress: Optional[Progress] = None,
                   raise_errors: bool = True, builders: Builders = Builders()) -> RunResult:
    """Continue the run in ``run_dir`` with its saved settings (``ResumeError`` if it cannot be)."""
    return _closing(resumed_run(run_dir, renderer, builders, sink, should_stop, progress), raise_errors)


def _closing(run: Run, raise_errors: bool) -> RunResult:
    try:
        return execute(run, raise_errors)
    finally:
        run.journal.store.close()  # releases the run folder's lock


def execute(run: Run, raise_errors: bool) -> RunResult:
    error: Optional[BaseException] = None
    run.journal.write_state("running")
    try:
        _start_reports(run)
        drive(run)
        reason = "completed"
    except RenderInterrupted:
        reason = "interrupted"
    except KeyboardInterrupt as exc:
        reason, error = "interrupted", exc
    except Exception as exc:  # a render, loss or report failure ends the run
        reason, error = f"error: {type(exc).__name__}: {exc}", exc
        log.error("pinning run %s stopped: %s", run.run_dir, reason, exc_info=True)
    result = run.result(reason)
    run.journal.write_state(reason, result)
    _finish_reports(run, result, error)
    if error is not None and (raise_errors or isinstance(error, KeyboardInterrupt)):
        error.pinning_result = result  # type: ignore[attr-defined]
        raise error
    return result


def drive(run: Run) -> None:
    """The algorithm. Each step is skipped when the journal already holds its event (a resume):
    ``state.holds`` is the only "done?" question; ``run.next_generation`` is the journal's last checkpoint."""
    state, plan = run.state, run.plan
    if not state.holds("evaluated", (0, 0)):
        evaluate(run, 0, [(np.zeros(plan.units), 0.0, None)])
        run.journal.checkpoint(1, run.optimizer.state())
        run.next_generation = 1
    validate(run, state.baseline, 0)
    last = run.next_generation - 1
    if last >= 1 and not state.holds("closed", last):  # stopped between a generation's tell and its end
        finish_generation(run, last)
    references = set(plan.reference_generations())
    for g in range(run.next_generation, plan.generations + 1):
        if g in references:
            render_reference(run, g)
        population = run.optimizer.ask()
        items = [(*clipped(run, run.optimizer.rendered(c)[0]), c) for c in population]
        evaluate(run, g, items)
        run.optimizer.tell(population)
        run.next_generation = g + 1
        run.journal.checkpoint(g + 1, run.optimizer.state())
        finish_generation(run, g)
    if plan.with_centroid:
        if not state.holds("evaluated", (plan.generations, plan.population_size(plan.generations))):
            centroid = np.asarray(run.optimizer.distribution().centroid, dtype=np.float64)
            evaluate(run, plan.generations, [(*clipped(run, centroid), None)], centroid=True)
        validate(run, state.centroid, plan.generations + 1)
    if not state.holds("final"):
        render_result(run)


def finish_generation(run: Run, g: int) -> None:
    if g in run.plan.validation_points:
        validate(run, run.state.validation_candidate(g), g)
    run.journal.closed(g, run.optimizer.distribution(), lambda: run.result("running"))


def offset_bounds(vector) -> tuple[np.ndarray, np.ndarray]:
    """The vector's own bounds (network strengths have narrower ones), else the weight limit."""
    if hasattr(vector, "offset_bounds"):
        return vector.offset_bounds()
    base = np.asarray(vector.base_weights, dtype=np.float64)
    return -MAX_PROMPT_WEIGHT - base, MAX_PROMPT_WEIGHT - base


def clipped(run: Run, offsets: np.ndarray) -> tuple[np.ndarray, float]:
    """Offsets that keep every weight within the prompt's bound, and the penalty for the cut
    (a CMA sample beyond it is moved to the bound, as the size limiter does). The optimizer
    adds its own penalty (the size limiter's) in ``assign``; the log records both."""
    inside = np.clip(offsets, *offset_bounds(run.vector))
    return inside, float(np.linalg.norm(offsets - inside))


def evaluate(run: Run, g: int, items: list[tuple[np.ndarray, float, object]],
             centroid: bool = False) -> list[IndividualRecord]:
    """Render and score generation ``g``'s individuals that the journal does not hold yet, log
    each, and give every candidate its fitness. ``items``: (offsets, the bound's penalty, candidate or None)."""
    first = run.plan.population_size(g) if centroid else 0
    known = {first + i: run.state.by_slot.get((g, first + i)) for i in range(len(items))}
    for i, (offsets, _, _) in enumerate(items):
        logged = known[first + i]
        if logged is not None and logged.individual_id != individual_id(offsets):
            raise ResumeError(f"{EVALUATIONS_FILE}: generation {g}, individual {first + i} is logged as "
                              f"{logged.individual_id}, but the search's state gives {individual_id(offsets)} "
                              "there; the log and the checkpoint are not one run's")
    pending = [(first + i, item) for i, item in enumerate(items) if known[first + i] is None]
    for i, (_, penalty, candidate) in enumerate(items):
        if candidate is not None and (first + i) not in dict(pending):
            run.optimizer.assign(candidate, known[first + i].loss + penalty)
    if pending:
        started = time.perf_counter()
        prompts = [run.vector.render(offsets) for _, (offsets, _, _) in pending]
        prompt_seconds = (time.perf_counter() - started) / len(prompts)
        target = None if g else (lambda batches: baseline_rendered(run, batches[0].images))
        evaluations = run.evaluator.evaluate(prompts, run.plan.training_block(g), target)
        stage = "baseline" if g == 0 else "centroid" if centroid else stage_label("generation", g, run.plan)
        for (i, (offsets, penalty, candidate)), prompt, evaluation in zip(pending, prompts, evaluations):
            run.evaluator.check_stop()  # every evaluation logged so far is complete on disk
            fitness = None
            if candidate is not None:
                run.optimizer.assign(candidate, float(evaluation.loss.value) + penalty)
                fitness = list(candidate.fitness.values)
            own = run.optimizer.rendered(candidate)[1] if candidate is not None else 0.0
            known[i] = make_record(run, g, i, offsets, prompt, evaluation, prompt_seconds, centroid,
                                   penalty + own, fitness)
            run.journal.evaluated(known[i])
            report(run, stage)
    return [known[first + i] for i in range(len(items))]


def validate(run: Run, record: Optional[IndividualRecord], point: int) -> None:
    """Render ``record`` on every validation block; log its losses (once per point)."""
    if not run.plan.validation_batches or record is None or run.state.holds("validation", point):
        return
    def rendered(block: int):  # the baseline's validation renders are the guard's reference there
        return None if record.generation else (
            lambda batches: record_reference(run, block, batches[0].images, "validation"))

    evaluations = [e for k in run.plan.validation_blocks
                   for e in run.evaluator.evaluate([(record.positive, record.negative)], k, rendered(k))]
    first = evaluations[0].batch
    run.journal.validated(record, point, [float(e.loss.value) for e in evaluations],
                          shown=(first.images, list(first.seeds)))
    where = None if point > run.plan.generations else point
    report(run, stage_label("validation", where, run.plan))


def baseline_rendered(run: Run, images) -> None:
    """The baseline's batch (block 0), before it is scored: the target without target images,
    and the fade guard's reference on the user's seeds."""
    if not run.has_targets:
        run.evaluator.set_targets(images, run.exclude_same_seed)
    record_reference(run, 0, images, "baseline")


def record_reference(run: Run, block: int, images, source: str, generation: int = 0) -> None:
    """Journal the unmodified prompt's fade guard reference on ``block`` (once; only when the guard uses it)."""
    if run.same_seed_reference and not run.state.holds("reference", block):
        reference = Reference.of(on_device(images, run.evaluator.device), run.mask, run.config.fade_guard_form)
        run.journal.reference(block, reference, source, generation)


def render_reference(run: Run, g: int) -> None:
    """The unmodified prompt on generation ``g``'s block, for the fade guard (a render the plan counts),
    scored too: its loss is what the report compares that block's candidates with."""
    block = run.plan.training_block(g)
    if run.state.holds("reference", block):
        return
    baseline = run.state.baseline
    staged = []

    def stage(batches) -> None:  # the guard reads this reference while the render is scored
        staged.append(Reference.of(on_device(batches[0].images, run.evaluator.device), run.mask,
                                   run.config.fade_guard_form))
        run.state.stage_reference(block, staged[0])

    (evaluation,) = run.evaluator.evaluate([(baseline.positive, baseline.negative)], block, stage)
    run.journal.reference(block, staged[0], "reference", g, loss=float(evaluation.loss.value))
    report(run, stage_label("reference", g, run.plan))


def render_result(run: Run) -> None:
    """The selected candidate on the user's seeds, next to the baseline's batch on the same seeds."""
    chosen = run.state.selected()
    if chosen is None:
        return
    if chosen.generation == 0:
        images, traces, seeds = run.state.images[chosen.individual_id]
        loss, texts = chosen.loss, []
    else:
        (evaluation,) = run.evaluator.evaluate([(chosen.positive, chosen.negative)], 0)
        batch = evaluation.batch
        images, traces, seeds = batch.images, batch.traces, list(batch.seeds)
        loss, texts = float(evaluation.loss.value), list(batch.infotexts)
    run.journal.final(chosen, images, traces, seeds, loss, texts)
    report(run, "result on your seeds")


def make_record(run: Run, g: int, index: int, offsets: np.ndarray, prompt: tuple[str, str], evaluation,
                prompt_seconds: float, centroid: bool, penalty: float, fitness) -> IndividualRecord:
    batch, loss = evaluation.batch, evaluation.loss
    ident = individual_id(offsets)
    return IndividualRecord(
        generation=g, index=index, individual_id=ident, offsets=np.array(offsets, dtype=np.float64),
        positive=prompt[0], negative=prompt[1], images=batch.images, seeds=list(batch.seeds),
        loss=float(loss.value), pair_losses=np.asarray(loss.pair_losses, dtype=np.float64), traces=batch.traces,
        size=float(np.linalg.norm(offsets)), render_seconds=evaluation.render_seconds,
        loss_seconds=float(loss.seconds), folder=run.journal.store.individual_folder(g, ident),
        extra={"penalty": penalty, "fitness": fitness,
               # prompt handling: writing the prompt here, and the host's parsing and text
               # encoding (inside render_seconds) where the renderer measures it
               "prompt_seconds": prompt_seconds, "host_prompt_seconds": batch.prompt_seconds,
               "image_losses": _listed(loss.image_losses), "level_values": _listed(loss.level_values),
               "infotexts": list(batch.infotexts), **({"centroid": True} if centroid else {}),
               # the fade guard's share of the loss, when it charged anything
               **({"fade_penalty": float(loss.fade_penalty)} if getattr(loss, "fade_penalty", 0.0) else {}),
               **tag_extra(loss)})


def report(run: Run, stage: str) -> None:
    if run.progress is not None:
        run.progress(stage, run.state.done, run.plan.total)


def _start_reports(run: Run) -> None:
    sink = run.journal.sink
    if sink is not None:
        sink.on_run_start(run.run_dir, run.config_dict(), run.units())
    if run.progress is None:
        return
    plan = getattr(run.progress, "plan", None)
    if plan is not None:  # optional: the renders still to come, in individuals
        s = run.state
        plan(run.plan.renders_to_come(
            baseline=s.baseline is not None, baseline_validated=0 in s.validated_at,
            next_generation=run.next_generation, centroid=s.centroid is not None,
            centroid_validated=run.plan.generations + 1 in s.validated_at, result=s.final is not None,
            references_done=s.references_rendered))
    run.progress("resumed" if run.state.done else "starting", run.state.done, run.plan.total)


def _finish_reports(run: Run, result: RunResult, error: Optional[BaseException]) -> None:
    sink = run.journal.sink
    if sink is None:
        return
    try:
        sink.on_finish(result)
    except Exception:
        if error is None:
            raise
        log.error("report writer failed while finishing a stopped run", exc_info=True)


def _listed(value):
    return None if value is None else np.asarray(value, dtype=np.float64).tolist()
