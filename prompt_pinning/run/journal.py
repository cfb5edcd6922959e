"""The run's journal: the run store plus the report sink, in the order that keeps a run resumable.

Each event is handed to ``RunState.apply`` and written to the store's append-only
log (``evaluations.jsonl``); images and reports come first, so a logged line is
the commit point: the images of every candidate the state keeps (the selected
one, the next to validate) are on disk before the line that needs them, and
removed after the line that no longer does. ``replay`` reads the log back for a resume.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from . import checkpoint as ckpt
from .evaluation_log import evaluation_entry
from .fingerprint import changed_during_run, fingerprint_hash
from .records import GenerationRecord, IndividualRecord, ReportSink, RunResult
from .state import RESULT_FOLDER, RunState
from .store import RunStore

log = logging.getLogger(__name__)


class Journal:
    def __init__(self, store: RunStore, sink: Optional[ReportSink], state: RunState):
        self.store = store
        self.sink = sink
        self.state = state
        self.cma_logging = False  # the logbook line at INFO (the cma_logging option), else DEBUG
        self._on_disk: set[str] = set()  # ids whose images the store keeps
        self.expected: dict[str, Any] = {}  # the run's fingerprint: every render call must match it
        self._current: Optional[tuple[str, dict[str, Any]]] = None  # (hash, parts) of the last render call

    @property
    def run_dir(self) -> Optional[Path]:
        return self.store.run_dir

    def rendering(self, parts: dict[str, Any]) -> None:
        """A render call is about to be made with fingerprint ``parts``: refused if it differs from the
        run's (``FingerprintChanged``, before any image), else named by the lines it leads to."""
        changed_during_run(self.expected, parts)
        self._current = (fingerprint_hash(parts), parts)

    def _stamp(self) -> dict[str, Any]:
        """``{"fingerprint": hash}`` of the last render call; its parts are journaled first when new."""
        if self._current is None:
            return {}
        ident, parts = self._current
        if ident != self.state.fingerprint:
            entry = {"fingerprint": True, "hash": ident, "parts": parts}
            self.store.append_event(entry)
            self.state.apply(entry)
        return {"fingerprint": ident}

    def evaluated(self, record: IndividualRecord) -> None:
        if record.generation == 0:
            self.store.save_images("baseline", record.images, traces=record.traces)
        if self.sink is not None:  # images and stats first: the log line is the commit point
            self.sink.on_individual(record)
        self.state.apply(evaluation_entry(record, self.run_dir), record.images, record.traces)
        self._keep_images()
        self.store.append_evaluation(record, **self._stamp())
        self._drop_images()

    def validated(self, record: IndividualRecord, point: int, losses: list[float], shown=None) -> None:
        """``shown``: (images, seeds) of the first validation block, for the report's side-by-side view."""
        entry = {"validation": True, "generation": point, "id": record.individual_id,
                 "of": [record.generation, record.index], "loss": float(np.mean(losses)),
                 "losses": [float(x) for x in losses], **self._stamp()}
        if shown is not None and self.sink is not None and hasattr(self.sink, "on_validation_images"):
            self.sink.on_validation_images(record, shown[0], list(shown[1]), float(losses[0]))
        self.state.apply(entry)
        self.store.append_event(entry)
        self._drop_images()

    def closed(self, generation: int, distribution, result_now) -> None:
        entry = {"closed": True, "generation": generation, "sigma": float(distribution.sigma),
                 "axis_ratio": float(distribution.axis_ratio),
                 "centroid": np.asarray(distribution.centroid, dtype=np.float64).tolist(),
                 "diag_std": np.asarray(distribution.diag_std, dtype=np.float64).tolist(),
                 "eigenvalues": np.asarray(distribution.eigenvalues, dtype=np.float64).tolist()}
        self.store.append_event(entry)
        self.state.apply(entry)
        record: GenerationRecord = self.state.generation_records[-1]
        line = self.state.logbook[-1]
        log.log(logging.INFO if self.cma_logging else logging.DEBUG, "gen %d  min %.6g  best on its seeds %.6g  "
                "sigma %.4g", generation, line["min"], line["best"], line["sigma"])
        if self.sink is not None:
            self.sink.on_generation(record, result_now())

    def final(self, record: IndividualRecord, images: torch.Tensor, traces, seeds: list[int], loss: float,
              infotexts: list[str]) -> None:
        """The result rendered (or, for the baseline, already rendered) on the user's seeds."""
        self.store.save_images("result", images, record.individual_id, traces)
        entry = {"final": True, "generation": None, "id": record.individual_id,
                 "of": [record.generation, record.index], "seeds": [int(s) for s in seeds], "loss": float(loss),
                 **(self._stamp() if record.generation else {})}  # the baseline's result is not rendered again
        if self.sink is not None and hasattr(self.sink, "on_result"):
            folder = Path(self.run_dir) / RESULT_FOLDER if self.run_dir is not None else None
            shown = IndividualRecord(**{**record.__dict__, "images": images, "traces": traces, "seeds": list(seeds),
                                        "loss": float(loss), "folder": folder,
                                        "extra": {**record.extra, "infotexts": list(infotexts)}})
            self.sink.on_result(shown)
        self.store.append_event(entry)
        self.state.apply(entry, images, traces)

    def reference(self, block: int, reference, source: str, generation: int = 0,
                  loss: Optional[float] = None) -> None:
        """The unmodified prompt's ``fade_guard.Reference`` on seed block ``block`` (``source``: which
        render), and its loss there when the render was scored for it (a reference render)."""
        entry = {"reference": True, "generation": int(generation), "block": int(block), "source": source,
                 "stats": [float(x) for x in reference.stats]}
        if reference.subject is not None:
            entry["subject"] = reference.subject.to_json()
        if loss is not None:
            entry["loss"] = float(loss)
        entry.update(self._stamp())
        self.store.append_event(entry)
        self.state.apply(entry)

    def checkpoint(self, generation: int, optimizer_state) -> None:
        """The optimizer's state: its file first, then the line naming it by hash (the commit point)."""
        entry = self.store.save_checkpoint(ckpt.Checkpoint(generation, optimizer_state), self.state.plan.units)
        if entry is None:
            return
        self.state.apply(entry)
        self.store.append_event(entry)
        self.store.drop_old_checkpoints(entry["arrays"])

    def _keep_images(self) -> None:
        """Store the images of every candidate the state keeps (before the line that makes it keep them)."""
        baseline = self.state.baseline.individual_id if self.state.baseline is not None else None
        for ident, (images, traces, _) in self.state.images.items():
            if ident not in ("final", baseline) and ident not in self._on_disk:
                self.store.keep_images(ident, images, traces)
                self._on_disk.add(ident)

    def _drop_images(self) -> None:
        """Remove the stored images the state no longer keeps (after the line that made it so)."""
        for ident in sorted(self._on_disk - set(self.state.images)):
            self.store.drop_images(ident)
            self._on_disk.discard(ident)

    def replay(self, events: list[dict[str, Any]], images: dict[str, Any], on_disk: set[str]) -> None:
        """Apply logged events in order; ``images`` maps ids (and "final") to saved (images, id, traces),
        ``on_disk``: the ids whose images the store keeps."""
        for entry in events:
            key = "final" if entry.get("final") is True else entry.get("id")
            kept = images.get(key) if not any(entry.get(k) is True for k in ("validation", "closed", "reference",
                                                                             "checkpoint", "fingerprint")) \
                else None
            if entry.get("final") is True and kept is not None and kept[1] != entry["id"]:
                kept = None
            self.state.apply(entry, *((None, None) if kept is None else (kept[0], kept[2])))
        self._on_disk = set(on_disk)

    def write_state(self, status: str, result: Optional[RunResult] = None) -> None:
        info: dict[str, Any] = {"generation": self.state.closed + 1, "evaluations": self.state.done}
        if result is not None:
            info.update(best_id=result.best.individual_id if result.best else None,
                        paired=result.paired.to_dict() if result.paired else None)
        self.store.write_state(status, **info)
