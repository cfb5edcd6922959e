"""ReportWriter: the report sink a run talks to.

On the run's path it writes only what the run may need back (images and
batch_stats.json) and small JSON files; plots, GIFs and index.html go to a
background worker (a low-priority child process, or a thread if no process can
be started). ``on_finish`` waits for the worker, so when it returns every report
is complete.
"""
from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Optional, Union

import numpy as np
import torch

from ..run.records import GenerationRecord, IndividualRecord, RunResult, UnitRow
from ..run.checks import ResumeError
from ..run.evaluation_log import read_individuals, record_from_entry
from ..search.start_from import map_labels
from .files import dump_json, jsonable
from .generation import generation_folder_name, generation_summary, write_generation_plot, write_generation_summary
from .individual import batch_stats, image_file_names, image_infotext, write_batch_stats, write_images
from .individual import write_loss_plot, write_summary_gif
from .influence import Member
from .jobs import INDEX_HTML, write_run_reports
from .maps_job import add_generation
from .mask_view import write_mask_view
from .page_data import VALIDATION_FOLDER, batch_entry, individual_row, page_data, relative_url
from .process_worker import ProcessWorker, WorkerDied
from .plot_data import RunPlotData, cma_records, optional_float, plain_generation, unit_labels
from .run_plots import CMA_MO_PLOT, CMA_PLOT, LOSS_HISTORY_PLOT
from .worker import ReportWorker

__all__ = ["FINAL_JSON", "INDEX_HTML", "ReportWriter"]

logger = logging.getLogger(__name__)

FINAL_JSON = "final_result.json"
Worker = Union[ProcessWorker, ReportWorker]


class ReportWriter:
    """Implements ``records.ReportSink``; one writer serves one run.

    ``worker="process"`` (default) runs plots in a niced child process and falls back
    to a thread when that fails; ``worker="thread"`` always uses a thread.
    """

    def __init__(self, worker: str = "process"):
        if worker not in ("process", "thread"):
            raise ValueError(f"worker: must be 'process' or 'thread', got {worker!r}")
        self._worker_kind = worker
        self._worker: Optional[Worker] = None
        self.run_dir: Optional[Path] = None
        self.config: dict[str, Any] = {}
        self.units: list[UnitRow] = []
        self._rows: dict[tuple[int, int], dict[str, Any]] = {}
        # per generation: each individual's per-image losses (its pair losses if it has none)
        self._image_losses: dict[int, list[np.ndarray]] = defaultdict(list)
        self._generation_folders: dict[int, Path] = {}
        # per generation: its individuals for the maps (read back from their PNGs by the worker)
        self._map_members: dict[int, list[Member]] = defaultdict(list)
        self._baseline_member: Optional[Member] = None
        self.errors: list[str] = []
        self.worker_seconds = 0.0  # time the worker spent on this run's reports
        self._mask_view: Optional[str] = None  # target_mask.png once drawn

    # ---- ReportSink ---------------------------------------------------------------------
    def on_run_start(self, run_dir: Path, config: dict[str, Any], units: list[UnitRow]) -> None:
        self.run_dir = Path(run_dir).absolute()  # the worker process must find the same files
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.config = dict(config or {})
        self.units = list(units or [])
        self._rows = load_rows(self.run_dir)  # a resumed run keeps the individuals it had
        self._ensure_worker()

    def on_individual(self, record: IndividualRecord) -> None:
        run_dir = self._require_started("on_individual")
        folder = Path(record.folder).absolute() if record.folder is not None else self._default_folder(record)
        folder.mkdir(parents=True, exist_ok=True)
        if record.folder is None:
            record.folder = folder
        settings = self.settings
        texts = [image_infotext(record, k, settings) for k in range(len(record.seeds))] if len(record.images) else []
        names = write_images(record, folder, settings, texts)
        write_batch_stats(folder, batch_stats(record, settings, self.units, names, texts))
        self._rows[(record.generation, record.index)] = individual_row(record, run_dir)
        self._generation_folders.setdefault(record.generation, folder.parent)
        pair_losses = np.array(record.pair_losses, dtype=np.float64).ravel()
        image_losses = record.extra.get("image_losses")
        image_level = pair_losses if image_losses is None else np.array(image_losses, dtype=np.float64).ravel()
        self._image_losses[record.generation].append(image_level)
        if names:
            member = map_member(record, folder, names)
            self._map_members[record.generation].append(member)
            if record.generation == 0:
                self._baseline_member = member
        title = f"generation {record.generation}, individual {record.index} ({record.individual_id})"
        self._submit(write_loss_plot, folder, pair_losses, float(record.loss), title)
        if names:
            self._submit(write_summary_gif, folder, names)

    def on_result(self, record: IndividualRecord) -> None:
        """The result rendered on the user's seeds: its images go to ``<run>/result/``."""
        self._require_started("on_result")
        folder = Path(record.folder).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        texts = record.extra.get("infotexts") or None
        if texts is not None and len(texts) != len(record.seeds):
            texts = None
        write_images(record, folder, self.settings, texts)

    def on_validation_images(self, record: IndividualRecord, images, seeds: list[int], loss: float) -> None:
        """A candidate's images on the first validation block: ``<run>/validation/<id>/``, shown on
        the page beside the unmodified prompt's on the same seeds."""
        run_dir = self._require_started("on_validation_images")
        folder = run_dir / VALIDATION_FOLDER / record.individual_id
        folder.mkdir(parents=True, exist_ok=True)
        shown = dataclasses.replace(record, images=images, seeds=list(seeds), loss=loss, folder=folder, extra={})
        write_images(shown, folder, self.settings)

    def on_generation(self, record: GenerationRecord, result: RunResult) -> None:
        self._require_started("on_generation")
        folder = self._generation_folder(record)
        members = [row for (g, _), row in sorted(self._rows.items()) if g == record.generation]
        write_generation_summary(folder, generation_summary(record, members))
        image_losses = self._image_losses.pop(record.generation, [])
        self._submit(write_generation_plot, folder, record.generation, image_losses, list(record.losses))
        self._submit_map_members()
        self._submit_run_reports(result, status="running", final=False)

    def on_finish(self, result: RunResult) -> None:
        if self.run_dir is None:
            self.on_run_start(result.run_dir, result.config, result.units)
        self._submit_map_members()  # the final centroid's, after the last generation
        self._submit_run_reports(result, status=status_of(result.stop_reason), final=True)
        self._guarded(lambda worker: worker.close(), rerun=True)
        worker, self._worker = self._worker, None
        self.errors.extend(worker.errors)
        self.worker_seconds += worker.busy_seconds
        dump_json(self.run_dir / FINAL_JSON, final_summary(self.run_dir, result, self.errors))

    # ---- helpers ------------------------------------------------------------------------
    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.config.get("generation") or {})

    def flush(self) -> None:
        """Wait for every queued report (tests and benchmarks use this)."""
        if self._worker is not None:
            self._guarded(lambda worker: worker.flush(), rerun=True)

    def _require_started(self, method: str) -> Path:
        if self.run_dir is None:
            raise RuntimeError(f"ReportWriter.{method}: call on_run_start(run_dir, config, units) first")
        return self.run_dir

    def _ensure_worker(self) -> Worker:
        if self._worker is None:
            self._worker = self._start_worker()
        return self._worker

    def _start_worker(self) -> Worker:
        if self._worker_kind == "process":
            try:
                return ProcessWorker()
            except OSError as error:
                logger.warning("report process could not start (%s); using a thread", error)
        return ReportWorker()

    def _submit(self, job, *args, coalesce: Optional[str] = None) -> None:
        # a job that could not be sent is among the dead worker's pending jobs: no rerun
        self._guarded(lambda worker: worker.submit(job, *args, coalesce=coalesce), rerun=False)

    def _guarded(self, action: Callable[[Worker], None], rerun: bool) -> None:
        """Run ``action`` on the worker. If the report process died, its unconfirmed jobs
        move to a thread worker (and ``action`` runs again there when ``rerun``)."""
        try:
            action(self._ensure_worker())
        except WorkerDied as died:
            logger.warning("%s; running reports in a thread", died)
            self.errors.append(str(died))
            self._worker = ReportWorker()
            for job, args, kwargs, coalesce in died.pending:
                self._worker.submit(job, *args, coalesce=coalesce, **kwargs)
            if rerun:
                action(self._worker)

    def _default_folder(self, record: IndividualRecord) -> Path:
        return self.run_dir / generation_folder_name(record.generation) / record.individual_id

    def _generation_folder(self, record: GenerationRecord) -> Path:
        folder = record.folder or self._generation_folders.get(record.generation)
        folder = Path(folder).absolute() if folder else self.run_dir / generation_folder_name(record.generation)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _submit_map_members(self) -> None:
        for generation in sorted(self._map_members):
            members = self._map_members.pop(generation)
            self._submit(add_generation, self.run_dir, len(self.units), generation, members)

    def _submit_run_reports(self, result: RunResult, status: str, final: bool) -> None:
        """Queue cma_plot, cma_mo_plot and index.html from plain data. While the worker is
        behind, a newer request replaces an older one that has not started."""
        rows = [row for _, row in sorted(self._rows.items())]
        units = list(result.units) or list(self.units)
        size_limit = float(self.config.get("size_limit") or result.config.get("size_limit") or 0.0)
        generations = [plain_generation(r) for r in cma_records(result.generations)]
        plots = {"history": LOSS_HISTORY_PLOT if generations else None, "cma": CMA_PLOT if generations else None,
                 "mo": CMA_MO_PLOT if size_limit > 0 else None, "mask": self._target_mask_view()}
        updated = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        page = page_data(self.run_dir, result, rows, units, status, plots, updated)
        plot_data = RunPlotData(
            generations=generations, unit_labels=unit_labels(units), rows=rows if size_limit > 0 else None,
            size_limit=size_limit)
        maps = (map_labels(units), self._baseline_member) if units else None
        self._submit(write_run_reports, self.run_dir, plot_data, page, final, maps, coalesce="run")

    def _target_mask_view(self) -> Optional[str]:
        if self._mask_view is None:
            self._mask_view = write_mask_view(self.run_dir)
        return self._mask_view


def map_member(record: IndividualRecord, folder: Path, names: list[str]) -> Member:
    """What the maps need of an individual: plain values (its images stay on disk)."""
    return Member(generation=record.generation, index=record.index,
                  offsets=[float(v) for v in np.asarray(record.offsets, dtype=np.float64).ravel()],
                  seeds=[int(s) for s in record.seeds], folder=str(folder), images=list(names),
                  loss=float(record.loss), individual_id=record.individual_id)


def status_of(stop_reason: str) -> str:
    reason = (stop_reason or "").strip()
    if reason.startswith("error"):
        return "stopped by an error"
    return reason or "finished"


def individual_summary(record: Optional[IndividualRecord], run_dir: Path) -> Optional[dict[str, Any]]:
    if record is None:
        return None
    entry = batch_entry(record, run_dir) or {}
    entry.update(
        {
            "index": record.index,
            "offsets": jsonable(record.offsets),
            "seeds": list(record.seeds),
            "image_files": image_file_names(record.seeds),
            "folder": relative_url(record.folder, run_dir),
        }
    )
    return jsonable(entry)


def final_summary(run_dir: Path, result: RunResult, errors: list[str]) -> dict[str, Any]:
    return jsonable(
        {
            "run": Path(run_dir).name,
            "stop_reason": result.stop_reason,
            "original_prompt": result.original_positive,
            "original_negative_prompt": result.original_negative,
            # paired comparisons only: "improvement" is the headline (validation seeds when the
            # result was chosen by them, else the user's seeds); "your_seeds" is on seed .. seed+B-1
            "improvement": result.paired.to_dict() if result.paired else None,
            "your_seeds": result.user_seeds.to_dict() if result.user_seeds else None,
            # on the seeds of the images shown for the result (its training seeds before its final render)
            "shown_seeds": result.shown.to_dict() if getattr(result, "shown", None) else None,
            # training losses, each on its own seeds (named): not comparable with each other
            "baseline_training_loss": result.baseline_loss,
            "baseline_training_seeds": list(result.baseline.seeds) if result.baseline is not None else None,
            "best_training_loss": result.best_loss,
            "best_training_seeds": _training_seeds(result),
            "selected_by": result.selected_by,
            "baseline_validation_loss": result.baseline_validation_loss,
            "best_validation_loss": result.best_validation_loss,
            "validation_seeds": list(result.validation_seeds),
            "centroid": individual_summary(result.centroid, run_dir),
            "best": individual_summary(result.best, run_dir),
            "baseline": individual_summary(result.baseline, run_dir),
            "hall_of_fame": [individual_summary(r, run_dir) for r in result.hall_of_fame],
            "units": [{**jsonable(u), "pinned_weight": u.pinned_weight} for u in result.units],
            "logbook": result.logbook,
            "generations": [
                {"generation": g.generation, "best_loss": g.best_loss, "sigma": g.sigma, "axis_ratio": g.axis_ratio,
                 "validation_loss": g.validation_loss, "validated_id": g.validated_id,
                 "validated_loss": g.validated_loss, "training_seed": g.training_seed,
                 # paired: the unmodified prompt on the same seeds, and the improvement over it
                 "unmodified_loss": getattr(g, "unmodified_loss", None), "gain": getattr(g, "gain", None),
                 "unmodified_validation_loss": getattr(g, "unmodified_validation_loss", None),
                 "validation_gain": getattr(g, "validation_gain", None)}
                for g in result.generations
            ],
            "config": result.config,
            "report_errors": errors,
        }
    )


def _training_seeds(result: RunResult) -> Optional[list[int]]:
    """The seeds the result's training loss was measured on (its generation's block)."""
    best = result.best
    if best is None:
        return None
    start = next((g.training_seed for g in result.generations if g.generation == best.generation), None)
    if best.generation == 0 or start is None:
        start = result.baseline.seeds[0] if result.baseline is not None and result.baseline.seeds else None
    return None if start is None else list(range(int(start), int(start) + len(result.baseline.seeds)))


def load_rows(run_dir: Path) -> dict[tuple[int, int], dict[str, Any]]:
    """Table rows for the individuals a resumed run's journal holds (the one record of what was evaluated:
    an individual's folder left by a crash before its journal line is not in the table)."""
    empty = torch.empty(0)
    try:
        entries = read_individuals(run_dir)
    except ResumeError as error:
        logger.warning("no table rows from %s: %s", run_dir, error)
        return {}
    return {(e["generation"], e["index"]): individual_row(record_from_entry(e, Path(run_dir), empty), run_dir)
            for e in entries}
