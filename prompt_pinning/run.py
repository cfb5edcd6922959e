"""The pinning run: prompt weights, renderer and loss joined by CMA-ES.

``run_pinning`` starts a run in a new numbered folder; ``resume_pinning``
continues one from its folder. Generation 0 renders the unmodified prompt once:
it is the baseline loss, and the target when no target images are given. Each
later generation renders all its individuals in one ``renderer.render`` call
(same seeds for everyone: common random numbers), scores them in one
``loss.evaluate_many`` call (FLIP's per-image work batched) and records them
one by one.

Storage: a ``runstore.FolderStore`` (the default: a new numbered run folder)
or a ``runstore.MemoryStore`` (nothing written), chosen by the caller.
Resuming never starts a run over: a folder that cannot be continued is a
``checkpoint.ResumeError`` naming the file and the problem.

Stopping: ``should_stop`` is checked before each generation, inside the
render call (through its progress callback, which raises ``RenderInterrupted``),
before the generation is scored and before each individual is recorded.
Whatever stops the run, every finished evaluation is already on disk (see
``checkpoint``), ``run_state.json`` says why it stopped, the sink is flushed,
and the best individual so far is returned. A renderer or loss error ends the
run with ``stop_reason`` "error: ..."; with ``raise_errors=True`` (the default)
the exception is then re-raised with the result attached as
``exc.pinning_result``, otherwise the result is returned.

Seeds. Seeds come in blocks of ``batch_size``: block k starts at
``seed + k * batch_size``. Generation g trains on block 0 (``fixed``) or block g
(``rotating``: every individual of a generation shares the fresh seeds, so
comparisons within it stay paired). The ``validation_batches`` validation blocks
follow the last training block, so they are disjoint from every training seed
and fixed for the run.

Validation. The baseline is rendered on the validation blocks right after its
own batch. At the end of every k-th generation and of the last one, so is the
individual with the lowest training loss since the previous such point (every
new best is one); k is the smallest step that keeps these renders near
VALIDATION_SHARE of the generations' renders, so the run's total is known
before it starts. When the run
ends, the final search mean (centroid, plain CMA only) is rendered on the last
generation's seeds and validated. The result is the validated candidate with
the lowest validation loss; with ``validation_batches = 0`` it is the lowest
training loss and nothing extra is rendered. Every validation is one line of
``evaluations.jsonl`` (``"validation": true``), so a resumed run reuses it.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import PinningConfig
from .optimizer import make_optimizer, resolve_cma_seed, resolve_generations
from .records import GenerationRecord, IndividualRecord, ReportSink, RunResult, UnitRow
from .rendering import RenderedBatch, Renderer, RenderInterrupted
from .rundir import individual_id
from .runstore import FolderStore, RunStore
from .seed_blocks import block_settings, training_block, validation_blocks, validation_points  # noqa: F401
from .run_parts import attach_fade_reference, build_loss, build_targets, build_vector, loss_device, on_device

log = logging.getLogger(__name__)

HALL_OF_FAME_SIZE = 10
# Images scored per loss call: a stop request is seen between two calls, so on a CPU
# (about 0.1 s per 512x512 image) a stop waits at most a few seconds for scoring.
SCORE_CHUNK_IMAGES = 32
Progress = Callable[[str, int, int], None]


def run_pinning(config: PinningConfig, renderer: Renderer, *, sink: Optional[ReportSink] = None,
                should_stop: Optional[Callable[[], bool]] = None, progress: Optional[Progress] = None,
                raise_errors: bool = True, store: Optional[RunStore] = None) -> RunResult:
    """Run a pinning job in ``<outdir>/prompt_pins/<next number>`` (or resume ``config.resume``).

    ``store`` keeps what the run produces: by default a new run folder; pass a
    ``runstore.MemoryStore()`` to write nothing (then ``result.run_dir`` is None
    and no ``sink`` may be given).

    ``progress(stage, done, total)`` counts evaluated individuals (the baseline
    included) against the run's total. It is called once before the first render
    ("starting", or "resumed" for a resumed run), then after every evaluation
    ("baseline", "generation g/G"). A progress object may also have ``plan(runs)``:
    it is called first with the render calls still to come, as (individuals per
    call, number of such calls) pairs.
    """
    if config.resume is not None:
        return resume_pinning(config.resume, renderer, sink=sink, should_stop=should_stop,
                              progress=progress, raise_errors=raise_errors)
    config.validate()
    if store is not None and store.run_dir is None and sink is not None:
        raise ValueError("sink: report writers write into a run folder; a MemoryStore run takes no sink")
    run = _Run(config, renderer, sink, should_stop, progress)
    run.start_new(store)
    return run.execute(raise_errors)


def resume_pinning(run_dir: Path | str, renderer: Renderer, *, sink: Optional[ReportSink] = None,
                   should_stop: Optional[Callable[[], bool]] = None, progress: Optional[Progress] = None,
                   raise_errors: bool = True) -> RunResult:
    """Continue the run in ``run_dir`` from its last checkpoint, with its saved settings.

    Only a folder the project made (its marker file) is continued; every file
    read is checked, and anything that stops the run from continuing exactly
    where it stopped raises ``checkpoint.ResumeError`` before anything is written.
    """
    store = FolderStore.open(run_dir)
    config, resolved, target_names = ckpt.load_saved_run(store.run_dir)
    if "validation_batches" not in resolved:  # a run from before validation existed
        config.validation_batches, config.seed_schedule, config.loss_variant = 0, "fixed", "union"
    run = _Run(config, renderer, sink, should_stop, progress)
    run.start_resumed(store, resolved, bool(target_names))
    return run.execute(raise_errors)


class _Run:
    def __init__(self, config, renderer, sink, should_stop, progress):
        self.config = config
        self.renderer = renderer
        self.sink = sink
        self.should_stop = should_stop or (lambda: False)
        self.progress = progress
        self.settings = config.generation
        self.loss_device = loss_device(renderer)
        self.baseline: Optional[IndividualRecord] = None
        self.hall_of_fame: list[IndividualRecord] = []
        self.generation_records: list[GenerationRecord] = []
        self.logbook: list[dict[str, Any]] = []
        self.done = 0
        self.next_generation = 0
        self.reusable: dict[tuple[int, int], dict[str, Any]] = {}
        self.best_saved: dict[str, Any] = {}
        self.baseline_images: Optional[torch.Tensor] = None
        self.store: RunStore
        self.run_dir: Optional[Path] = None
        self.prompt_seconds = 0.0  # writing the prompts of the current render, per individual
        # validation: id -> record carrying its validation loss (without images)
        self.validated: dict[str, IndividualRecord] = {}
        self.reusable_validations: dict[tuple[int, str], dict[str, Any]] = {}
        self.last_validated: Optional[tuple[int, str, float]] = None  # (point, id, loss)
        self.centroid_record: Optional[IndividualRecord] = None
        self.best_images: dict[str, tuple[torch.Tensor, Any]] = {}  # the selected candidate's, by id
        self.recent_best: Optional[IndividualRecord] = None  # lowest training loss since the last point
        self.exclude_same_seed = True

    # -- setting up -------------------------------------------------------
    def _prepare(self) -> None:
        self.vector = build_vector(self.config, self.renderer)
        n = self.vector.size
        self.cma_seed = resolve_cma_seed(self.config)
        self.generations = resolve_generations(self.config, n)
        self.validation_count = int(self.config.validation_batches)
        self.validation_blocks = validation_blocks(self.config.seed_schedule, self.generations,
                                                   self.validation_count)

    def _plan_validation(self) -> None:
        """Which generations validate, and whether the centroid is evaluated (needs the optimizer)."""
        self.points = set(validation_points(self.generations, self.optimizer.population_size(self.generations),
                                            self.validation_count))
        self.with_centroid = self.validation_count > 0 and not self.optimizer.multi_objective

    def _resolved(self) -> dict[str, Any]:
        return {"N": self.vector.size, "cma_seed": self.cma_seed, "generations": self.generations,
                "total_evaluations": self.total, **self.optimizer.resolved,
                "validation_batches": self.validation_count, "seed_schedule": self.config.seed_schedule,
                "loss_variant": self.config.loss_variant, "validation_seeds": self._validation_seeds(),
                "validation_generations": sorted(self.points), "centroid_evaluated": self.with_centroid,
                "same_seed_pairs": "excluded" if self.exclude_same_seed else "kept"}

    def _validation_seeds(self) -> list[int]:
        return [seed for k in self.validation_blocks for seed in block_settings(self.settings, k).seeds()]

    def _training_settings(self, g: int):
        return block_settings(self.settings, training_block(self.config.seed_schedule, g))

    def _renders_to_come(self) -> list[tuple[int, int]]:
        """(individuals per render call, calls) still to make, run-length encoded: the baseline,
        then each generation with its validation calls (one individual each), then the centroid.
        Its length grows with the validation points only (generations are capped)."""
        calls: list[tuple[int, int]] = []

        def add(size: int, count: int = 1) -> None:
            if count <= 0:
                return
            if calls and calls[-1][0] == size:
                calls[-1] = (size, calls[-1][1] + count)
            else:
                calls.append((size, count))

        validation = self.validation_count
        if self.baseline is None:
            add(1, 1 + validation)
        first = max(1, self.next_generation)
        done_to = first - 1
        for point in sorted(p for p in self.points if p >= first):
            for size, count in self.optimizer.population_runs(done_to + 1, point):
                add(size, count)
            add(1, validation)
            done_to = point
        for size, count in self.optimizer.population_runs(done_to + 1, self.generations):
            add(size, count)
        if self.with_centroid and self.centroid_record is None:
            add(1, 1 + validation)
        return calls

    def _total(self) -> int:
        """Individual renders of a whole run: training batches plus validation batches."""
        validations = (1 + len(self.points) + int(self.with_centroid)) * self.validation_count
        training = sum(size * count for size, count in self.optimizer.population_runs(1, self.generations))
        return 1 + training + int(self.with_centroid) + validations

    def start_new(self, store: Optional[RunStore] = None) -> None:
        self._prepare()
        self.optimizer = make_optimizer(self.config, self.vector.size, self.cma_seed)
        self._plan_validation()
        self.total = self._total()
        self.targets = build_targets(self.config)
        self.store = store if store is not None else FolderStore.create(self.config.outdir)
        self.run_dir = self.store.run_dir
        self.store.save_config(self.config, self._resolved())
        if self.targets is not None:
            self.store.save_images("targets", self.targets)
        self.loss = build_loss(self.config, self.targets)
        attach_fade_reference(self.loss, self.config, self.renderer, self.vector, self.settings, self.targets)
        self._checkpoint()  # a run stopped before its first generation resumes too

    def start_resumed(self, store: FolderStore, resolved: dict[str, Any], had_targets: bool) -> None:
        """Restore the run from ``store``'s files, all checked before anything is written."""
        self._prepare()
        self.store, self.run_dir = store, store.run_dir
        config_file = store.run_dir / ckpt.CONFIG_FILE
        if resolved.get("N") != self.vector.size:
            raise ckpt.ResumeError(
                f"{config_file}: the run had {resolved.get('N')!r} prompt units, the prompt now splits into "
                f"{self.vector.size} (another tokenizer or model?); it cannot be continued here")
        self.optimizer = make_optimizer(self.config, self.vector.size, self.cma_seed)
        saved = ckpt.load_checkpoint(store.run_dir, self.optimizer, self.vector.size, self.generations,
                                     store.generation_folder)
        self.exclude_same_seed = resolved.get("same_seed_pairs") == "excluded"
        self._plan_validation()
        self.total = self._total()
        self.targets = self._load_targets(had_targets)
        self.loss = build_loss(self.config, self.targets)
        attach_fade_reference(self.loss, self.config, self.renderer, self.vector, self.settings, self.targets)
        logged = ckpt.read_evaluations(store.run_dir, self._entry_check(saved.generation))
        entries = [e for e in logged if not e.get("validation")]
        validations = [e for e in logged if e.get("validation")]
        for entry in validations:
            if len(entry["losses"]) != self.validation_count:
                raise ckpt.ResumeError(
                    f"{store.run_dir / ckpt.EVALUATIONS_FILE}: a validation of {entry['id']} has "
                    f"{len(entry['losses'])} losses; the run validates on {self.validation_count} batches")
        if entries and (entries[0]["generation"], entries[0]["index"]) != (0, 0):
            raise ckpt.ResumeError(f"{store.run_dir / ckpt.EVALUATIONS_FILE}: the first line must be the baseline")
        if not entries and saved.generation > 0:
            raise ckpt.ResumeError(f"{store.run_dir / ckpt.EVALUATIONS_FILE}: missing or empty, but "
                                   f"{ckpt.CHECKPOINT_FILE} is at generation {saved.generation}")
        self.next_generation = saved.generation
        self.logbook, self.generation_records = list(saved.logbook), list(saved.generations)
        if entries:  # the baseline is done (its images were saved before its log line)
            self.baseline_images, _ = ckpt.load_images(store.image_path("baseline"), self.settings,
                                                       count=self.settings.batch_size)
            best = store.image_path("best")
            if best.exists() or best.is_symlink():
                images, ident = ckpt.load_images(best, self.settings, count=self.settings.batch_size, with_id=True)
                self.best_saved = {"id": ident, "images": images}
            self.baseline = self._record_from_entry(entries[0])
            if self.targets is None:
                self.loss.set_targets(on_device(self.baseline_images, self.loss_device),
                                      seeds=self._target_seeds(self.baseline.seeds))
            self._enter_hall_of_fame(self.baseline)
            self.next_generation = max(1, saved.generation)
        by_id = {self.baseline.individual_id: self.baseline} if self.baseline is not None else {}
        for entry in entries[1:]:
            if entry["generation"] < saved.generation:
                record = self._record_from_entry(entry)
                by_id.setdefault(record.individual_id, record)
                self._enter_hall_of_fame(record)
                if record.extra.get("centroid"):
                    self.centroid_record = record
            else:
                self.reusable[(entry["generation"], entry["index"])] = entry
        last_point = max((p for p in self.points if p < saved.generation), default=0)
        for entry in entries[1:]:
            if last_point < entry["generation"] < saved.generation and not entry.get("extra", {}).get("centroid"):
                self._note_recent(by_id.get(entry["id"]) or self._record_from_entry(entry))
        for entry in validations:
            if entry["generation"] < saved.generation and entry["id"] in by_id:
                self._apply_validation(by_id[entry["id"]], entry)
            else:
                self.reusable_validations[(entry["generation"], entry["id"])] = entry
        self.done = len(entries) + sum(len(e["losses"]) for e in validations)
        ckpt.drop_torn_tail(store.run_dir)  # everything checked: new lines start on a line of their own
        log.info("resuming %s at generation %d (%d evaluations on disk)", store.run_dir, saved.generation, self.done)

    def _load_targets(self, had_targets: bool) -> Optional[torch.Tensor]:
        path = self.store.image_path("targets")
        if not had_targets:
            return None
        if not path.exists() and not path.is_symlink():
            raise ckpt.ResumeError(f"{path}: missing, but the run was pinned to explicit target images; "
                                   "without them it cannot be continued")
        return ckpt.load_images(path, self.settings)[0]

    def _entry_check(self, generation: int):
        """The run's own checks of a log line: its size, its generation and its prompts."""
        n, batch = self.vector.size, self.settings.batch_size

        def check(entry: dict[str, Any]) -> Optional[str]:
            if len(entry["offsets"]) != n:
                return f"{len(entry['offsets'])} offsets for {n} prompt units"
            if entry["generation"] > generation:
                return f"generation {entry['generation']} is beyond the checkpoint's {generation}"
            if len(entry["seeds"]) != batch:
                return f"{len(entry['seeds'])} seeds for a batch of {batch}"
            prompt = self.vector.render(np.array(entry["offsets"], dtype=np.float64))
            if (entry["positive"], entry["negative"]) != tuple(prompt):
                return "its prompts are not the ones its offsets give"
            return None
        return check

    # -- running ----------------------------------------------------------
    def execute(self, raise_errors: bool) -> RunResult:
        error: Optional[BaseException] = None
        self.store.write_state("running", generation=self.next_generation, evaluations=self.done)
        try:
            if self.sink is not None:
                self.sink.on_run_start(self.run_dir, self._config_dict(), self._units())
            if self.progress is not None:  # the total is known before the first render
                plan = getattr(self.progress, "plan", None)
                if plan is not None:  # optional: the renders still to come, in individuals
                    plan(self._renders_to_come())
                self.progress("resumed" if self.done else "starting", self.done, self.total)
            self._run_generations()
            reason = "completed"
        except RenderInterrupted:
            reason = "interrupted"
        except KeyboardInterrupt as exc:
            reason, error = "interrupted", exc
        except Exception as exc:  # a render, loss or report failure ends the run
            reason, error = f"error: {type(exc).__name__}: {exc}", exc
            log.error("pinning run %s stopped: %s", self.run_dir, reason, exc_info=True)
        self._ensure_best_images(reason)
        result = self._result(reason)
        self.store.write_state(reason, generation=self.next_generation, evaluations=self.done,
                             best_id=result.best.individual_id if result.best else None,
                             best_loss=result.best_loss, baseline_loss=result.baseline_loss)
        self._finish_sink(result, error)
        if error is not None and (raise_errors or isinstance(error, KeyboardInterrupt)):
            error.pinning_result = result  # type: ignore[attr-defined]
            raise error
        return result

    def _finish_sink(self, result: RunResult, error: Optional[BaseException]) -> None:
        if self.sink is None:
            return
        try:
            self.sink.on_finish(result)
        except Exception:
            if error is None:
                raise
            log.error("report writer failed while finishing a stopped run", exc_info=True)

    def _run_generations(self) -> None:
        if self.next_generation == 0:
            self._run_baseline()
            self.next_generation = 1
            self._checkpoint()
        elif self.validation_count and self.baseline.individual_id not in self.validated:
            self._validate([self.baseline], 0)  # a resume of a run stopped before the baseline's validation
        while self.next_generation <= self.generations:
            self._run_generation(self.next_generation)
            self.next_generation += 1
            self._checkpoint()
        centroid = self.centroid_record
        if self.with_centroid and (centroid is None or centroid.individual_id not in self.validated):
            self._run_centroid()

    def _checkpoint(self) -> None:
        self.store.save_checkpoint(ckpt.Checkpoint(
            self.next_generation, self.optimizer.state(), self.logbook, self.generation_records), self.vector.size)

    def _check_stop(self, *_: Any) -> None:
        if self.should_stop():
            raise RenderInterrupted("stop requested")

    def _render(self, prompts: list[tuple[str, str]], settings=None) -> tuple[list[RenderedBatch], float]:
        started = time.perf_counter()
        batches = self.renderer.render(prompts, settings or self.settings, self._check_stop)
        if len(batches) != len(prompts):
            raise RuntimeError(f"renderer {self.renderer.name!r} returned {len(batches)} batches for {len(prompts)} prompts")
        return batches, (time.perf_counter() - started) / max(1, len(prompts))

    def _run_baseline(self) -> None:
        self._check_stop()
        zeros = np.zeros(self.vector.size)
        started = time.perf_counter()
        prompt = self.vector.render(zeros)
        self.prompt_seconds = time.perf_counter() - started
        (batch,), seconds = self._render([prompt], self._training_settings(0))
        self.store.save_images("baseline", batch.images)
        if self.targets is None:
            self.loss.set_targets(on_device(batch.images, self.loss_device), seeds=self._target_seeds(batch.seeds))
        self.baseline = self._evaluate(0, 0, zeros, prompt, batch, seconds, penalty=0.0, fitness=None)
        self._validate([self.baseline], 0)

    def _target_seeds(self, seeds: list[int]) -> Optional[list[int]]:
        """The baseline's seeds, for the loss to leave same-seed pairs out (see loss.py)."""
        return list(seeds) if self.exclude_same_seed else None

    def _run_generation(self, g: int) -> None:
        self._check_stop()
        population = self.optimizer.ask()
        rendered = [self.optimizer.rendered(c) for c in population]
        started = time.perf_counter()
        prompts = [self.vector.render(offsets) for offsets, _ in rendered]
        self.prompt_seconds = (time.perf_counter() - started) / max(1, len(prompts))
        records: list[Optional[IndividualRecord]] = [None] * len(population)
        for i, (offsets, _) in enumerate(rendered):
            entry = self.reusable.pop((g, i), None)
            if entry is not None and entry["id"] == individual_id(offsets):
                records[i] = self._record_from_entry(entry)
                self._enter_hall_of_fame(records[i])
        pending = [i for i, r in enumerate(records) if r is None]
        if pending:
            batches, seconds = self._render([prompts[i] for i in pending], self._training_settings(g))
            losses = self._score_in_chunks(batches)
            for i, batch, loss in zip(pending, batches, losses, strict=True):
                self._check_stop()  # every evaluation recorded so far is complete on disk
                offsets, penalty = rendered[i]
                self.optimizer.assign(population[i], loss.value)
                records[i] = self._evaluate(g, i, offsets, prompts[i], batch, seconds, penalty,
                                            population[i].fitness.values, loss)
        for candidate, record in zip(population, records):
            self.optimizer.assign(candidate, record.loss)
        self.optimizer.tell(population)
        if self.validation_count:
            for record in records:
                self._note_recent(record)
        if g in self.points and self.recent_best is not None:
            self._validate([self.recent_best], g)
            self.recent_best = None
        self._close_generation(g, records)

    # -- validation -------------------------------------------------------
    def _note_recent(self, record: IndividualRecord) -> None:
        """Track the lowest training loss since the last validation point (with its images)."""
        if self.recent_best is None or record.loss < self.recent_best.loss:
            self.recent_best = record

    def _validate(self, records: list[IndividualRecord], point: int) -> None:
        """Render ``records`` on every validation block, score them, log one line each."""
        if not self.validation_count:
            return
        todo = []
        for record in records:
            entry = self.reusable_validations.pop((point, record.individual_id), None)
            if entry is not None:
                self._apply_validation(record, entry, point)
            else:
                todo.append(record)
        if not todo:
            return
        prompts = [(r.positive, r.negative) for r in todo]
        per_block = []
        for block in self.validation_blocks:
            self._check_stop()
            batches, _ = self._render(prompts, block_settings(self.settings, block))
            self._check_stop()
            per_block.append([float(loss.value) for loss in self._score_many(batches)])
        for j, record in enumerate(todo):
            losses = [values[j] for values in per_block]
            entry = {"validation": True, "generation": point, "id": record.individual_id,
                     "of": [record.generation, record.index], "loss": float(np.mean(losses)), "losses": losses}
            self.store.append_validation(entry)
            self.done += len(losses)
            self._apply_validation(record, entry, point)
            if self.progress is not None:
                self.progress(f"validation {point}/{self.generations}", self.done, self.total)

    def _apply_validation(self, record: IndividualRecord, entry: dict[str, Any], point: Optional[int] = None) -> None:
        key = (float(entry["loss"]), record.loss)  # the order _selected() uses
        if not self.validated or key < min((r.validation_loss, r.loss) for r in self.validated.values()):
            images = record.images if record.images.numel() else self._saved_images(record.individual_id)
            self.best_images = {} if images is None else {record.individual_id: (images, record.traces)}
            if images is not None and point is not None and record.generation > 0:
                self.store.save_images("best", images, record.individual_id)
        self.validated[record.individual_id] = dataclasses.replace(
            _without_images(record), validation_loss=float(entry["loss"]),
            validation_losses=[float(x) for x in entry["losses"]])
        if point is not None:
            self.last_validated = (point, record.individual_id, float(entry["loss"]))

    def _run_centroid(self) -> None:
        """Evaluate the final search mean on the last generation's seeds, then validate it."""
        g = self.generations
        record = self.centroid_record
        if record is None:
            self._check_stop()
            offsets = np.asarray(self.optimizer.distribution().centroid, dtype=np.float64)
            prompt = self.vector.render(offsets)
            (batch,), seconds = self._render([prompt], self._training_settings(g))
            self._check_stop()
            (loss,) = self._score_many([batch])
            record = self._evaluate(g, self.optimizer.population_size(g), offsets, prompt, batch, seconds,
                                    0.0, None, loss, centroid=True)
            self.centroid_record = record
        self._validate([record], g + 1)
        self._checkpoint()

    def _validation_view(self, record: Optional[IndividualRecord]) -> Optional[IndividualRecord]:
        """``record`` with its validation loss, when it has one."""
        if record is None or record.individual_id not in self.validated:
            return record
        known = self.validated[record.individual_id]
        return dataclasses.replace(record, validation_loss=known.validation_loss,
                                   validation_losses=list(known.validation_losses))

    def _saved_images(self, ident: str) -> Optional[torch.Tensor]:
        """Images of ``ident`` still at hand after a resume (the baseline's or best.pt's)."""
        if self.baseline is not None and self.baseline.individual_id == ident and self.baseline_images is not None:
            return self.baseline_images
        return self.best_saved.get("images") if self.best_saved.get("id") == ident else None

    def _selected(self) -> Optional[IndividualRecord]:
        """The result: lowest validation loss among the validated, else lowest training loss."""
        if not self.validated:
            return self.hall_of_fame[0] if self.hall_of_fame else self.baseline
        chosen = min(self.validated.values(), key=lambda r: (r.validation_loss, r.loss))
        leader = self.hall_of_fame[0] if self.hall_of_fame else None
        if chosen.individual_id in self.best_images:
            images, traces = self.best_images[chosen.individual_id]
        elif leader is not None and leader.individual_id == chosen.individual_id and leader.images.numel():
            images, traces = leader.images, leader.traces
        else:
            images, traces = chosen.images, chosen.traces
        return dataclasses.replace(chosen, images=images, traces=traces)

    def _score(self, batch: RenderedBatch):
        # FLIP is ~50x cheaper on a GPU than on the CPU: score where the renderer's model runs.
        return self.loss.evaluate(on_device(batch.images, self.loss_device), batch.traces, seeds=list(batch.seeds))

    def _score_many(self, batches: list[RenderedBatch]) -> list:
        """Score a generation in one call: the loss batches the per-image FLIP work."""
        return self.loss.evaluate_many([on_device(b.images, self.loss_device) for b in batches],
                                       [b.traces for b in batches], seeds_list=[list(b.seeds) for b in batches])

    def _score_in_chunks(self, batches: list[RenderedBatch]) -> list:
        """Score a generation a few dozen images at a time, checking for a stop before each call."""
        per_call = max(1, SCORE_CHUNK_IMAGES // max(1, self.settings.batch_size))
        losses: list = []
        for start in range(0, len(batches), per_call):
            self._check_stop()
            losses += self._score_many(batches[start:start + per_call])
        return losses

    def _evaluate(self, g, index, offsets, prompt, batch, render_seconds, penalty, fitness, loss=None,
                  centroid=False):
        loss = loss if loss is not None else self._score(batch)
        ident = individual_id(offsets)
        folder = self.store.individual_folder(g, ident)
        record = IndividualRecord(
            generation=g, index=index, individual_id=ident, offsets=np.array(offsets, dtype=np.float64),
            positive=prompt[0], negative=prompt[1], images=batch.images, seeds=list(batch.seeds),
            loss=float(loss.value), pair_losses=np.asarray(loss.pair_losses, dtype=np.float64),
            traces=batch.traces, size=float(np.linalg.norm(offsets)), render_seconds=render_seconds,
            loss_seconds=float(loss.seconds), folder=folder,
            extra={"penalty": penalty, "fitness": list(fitness) if fitness else None,
                   # prompt handling: writing the prompt here, and the host's parsing and
                   # text encoding (inside render_seconds) where the renderer measures it
                   "prompt_seconds": self.prompt_seconds, "host_prompt_seconds": batch.prompt_seconds,
                   "image_losses": _listed(loss.image_losses), "level_values": _listed(loss.level_values),
                   "infotexts": list(batch.infotexts), **({"centroid": True} if centroid else {})})
        if self.sink is not None:  # images and stats first: the log entry is the commit point
            self.sink.on_individual(record)
        self.store.append_evaluation(record)
        self.done += 1
        self._enter_hall_of_fame(record, persist=g > 0)
        if self.progress is not None:
            stage = "baseline" if g == 0 else "centroid" if centroid else f"generation {g}/{self.generations}"
            self.progress(stage, self.done, self.total)
        return record

    def _enter_hall_of_fame(self, record: IndividualRecord, persist: bool = False) -> None:
        fame = self.hall_of_fame
        new_best = not fame or record.loss < fame[0].loss
        if new_best and fame:
            fame[0] = _without_images(fame[0])
        elif not new_best:
            record = _without_images(record)
        position = next((k for k, r in enumerate(fame) if record.loss < r.loss), len(fame))
        fame.insert(position, record)
        del fame[HALL_OF_FAME_SIZE:]
        if new_best and persist and not self.validation_count:  # with validation, "best" is the selected one
            self.store.save_images("best", record.images, record.individual_id)

    def _ensure_best_images(self, reason: str) -> None:
        """Re-render the result on its own seeds when its images are not in memory: a crash
        lost them, or validation chose a candidate other than the training leader."""
        best = self._selected()
        if best is None or best.images.numel() > 0 or reason.startswith("error"):
            return
        try:
            (batch,), _ = self._render([(best.positive, best.negative)], self.settings.with_(seed=best.seeds[0]))
        except RenderInterrupted:
            return
        self.total += 1
        self.done += 1
        if self.progress is not None:
            self.progress("result images", self.done, self.total)
        if self.hall_of_fame and self.hall_of_fame[0].individual_id == best.individual_id:
            self.hall_of_fame[0] = dataclasses.replace(self.hall_of_fame[0], images=batch.images, traces=batch.traces)
        self.best_images[best.individual_id] = (batch.images, batch.traces)

    def _close_generation(self, g: int, records: list[IndividualRecord]) -> None:
        dist = self.optimizer.distribution()
        losses = [r.loss for r in records]
        validated = self.last_validated if self.last_validated and self.last_validated[0] == g else None
        best_validation = min((r.validation_loss for r in self.validated.values()), default=None)
        record = GenerationRecord(
            generation=g, losses=losses, individual_ids=[r.individual_id for r in records],
            sigma=dist.sigma, centroid=dist.centroid, diag_std=dist.diag_std, axis_ratio=dist.axis_ratio,
            eigenvalues=dist.eigenvalues, best_loss=float(min(losses)), folder=self.store.generation_folder(g),
            validation_loss=best_validation, validated_id=validated[1] if validated else None,
            validated_loss=validated[2] if validated else None, training_seed=self._training_settings(g).seed)
        self.generation_records.append(record)
        line = {"gen": g, "nevals": len(records), "min": float(np.min(losses)), "avg": float(np.mean(losses)),
                "max": float(np.max(losses)), "std": float(np.std(losses)),
                "best": self.hall_of_fame[0].loss, "sigma": dist.sigma, "axis_ratio": dist.axis_ratio,
                **_stage_seconds(records)}
        if self.validation_count:
            line["val"] = best_validation
        self.logbook.append(line)
        level = logging.INFO if self.config.cma_logging else logging.DEBUG
        log.log(level, "gen %d/%d  nevals %d  min %.6g  avg %.6g  max %.6g  std %.4g  best %.6g  sigma %.4g  axis %.3g"
                "  render %.3gs (host prompts %.3gs)  loss %.3gs  prompts %.3gs%s",
                g, self.generations, line["nevals"], line["min"], line["avg"], line["max"], line["std"],
                line["best"], line["sigma"], line["axis_ratio"], line["render_seconds"],
                line["host_prompt_seconds"], line["loss_seconds"], line["prompt_seconds"],
                f"  val {best_validation:.6g}" if best_validation is not None else "")
        if self.sink is not None:
            self.sink.on_generation(record, self._result("running"))

    # -- results ----------------------------------------------------------
    def _units(self, offsets: Optional[np.ndarray] = None, tightness: Optional[np.ndarray] = None) -> list[UnitRow]:
        offsets = np.zeros(self.vector.size) if offsets is None else offsets
        rows = self.vector.unit_rows(offsets)
        if tightness is not None:
            for row, value in zip(rows, tightness):
                row.tightness = float(value)
        return rows

    def _config_dict(self) -> dict[str, Any]:
        return {**self.config.to_dict(), "resolved": self._resolved(), "run_dir": str(self.run_dir) if self.run_dir else None}

    def _result(self, reason: str) -> RunResult:
        best = self._validation_view(self._selected())
        offsets = best.offsets if best is not None else None
        tightness = self.optimizer.distribution().diag_std if self.generation_records else None
        return RunResult(
            run_dir=self.run_dir, original_positive=self.config.positive, original_negative=self.config.negative,
            baseline=self._validation_view(self.baseline), best=best,
            hall_of_fame=[self._validation_view(r) for r in self.hall_of_fame],
            units=self._units(offsets, tightness), generations=list(self.generation_records),
            stop_reason=reason, config=self._config_dict(), logbook=list(self.logbook),
            selected_by="validation" if self.validated else "training",
            validation_seeds=self._validation_seeds(), centroid=self._validation_view(self.centroid_record))

    def _record_from_entry(self, entry: dict[str, Any]) -> IndividualRecord:
        if entry["generation"] == 0:
            images = self.baseline_images
        elif self.best_saved.get("id") == entry["id"]:
            images = self.best_saved["images"]
        else:
            images = torch.empty(0, 3, self.settings.height, self.settings.width)
        return ckpt.record_from_entry(entry, self.run_dir, images)

def _stage_seconds(records: list[IndividualRecord]) -> dict[str, float]:
    """A generation's seconds per stage, summed over its individuals."""
    def total(values) -> float:
        return float(sum(v for v in values if v is not None))

    return {"render_seconds": total(r.render_seconds for r in records),
            "host_prompt_seconds": total(r.extra.get("host_prompt_seconds") for r in records),
            "loss_seconds": total(r.loss_seconds for r in records),
            "prompt_seconds": total(r.extra.get("prompt_seconds") for r in records)}


def _listed(value: Any) -> Any:
    if value is None:
        return None
    return np.asarray(value, dtype=np.float64).tolist()


def _without_images(record: IndividualRecord) -> IndividualRecord:
    if record.images.numel() == 0:
        return record
    return dataclasses.replace(record, images=record.images.new_empty((0, *record.images.shape[1:])), traces=None)
