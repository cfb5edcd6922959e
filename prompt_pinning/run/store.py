"""Where a run keeps what it produces: a run folder, or memory only.

The run loop talks to a store, chosen by the caller of ``run_pinning``:

* ``FolderStore`` (the default) writes the run folder described in
  ``checkpoint``; it is what reports, resume and the WebUI use.
* ``MemoryStore`` writes nothing: for scripts and benchmarks that only want the
  ``RunResult``. Its run has no folder (``run_dir`` is None), takes no report
  sink and cannot be resumed from disk.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional, Protocol

import torch

from . import checkpoint as ckpt
from ..config import PinningConfig
from .records import IndividualRecord
from .rundir import create_individual_dir, create_run_dir, generation_dir
from .lock import RunLock


class RunStore(Protocol):
    run_dir: Optional[Path]

    def save_config(self, config: PinningConfig, resolved: dict[str, Any]) -> None: ...

    def save_images(self, name: str, images: torch.Tensor, ident: Optional[str] = None, traces=None) -> None: ...

    def save_checkpoint(self, checkpoint: ckpt.Checkpoint, n: int) -> Optional[dict[str, Any]]: ...

    def drop_old_checkpoints(self, keep: str) -> None: ...

    def keep_images(self, ident: str, images: torch.Tensor, traces=None) -> None: ...

    def drop_images(self, ident: str) -> None: ...

    def individual_folder(self, generation: int, ident: str) -> Optional[Path]: ...

    def generation_folder(self, generation: int) -> Optional[Path]: ...

    def append_evaluation(self, record: IndividualRecord, **marks: Any) -> None: ...

    def append_event(self, entry: dict[str, Any]) -> None: ...

    def read_events(self, check=None) -> list[dict[str, Any]]: ...

    def write_state(self, status: str, **info: Any) -> None: ...

    def close(self) -> None: ...


IMAGE_FILES = {"baseline": ckpt.BASELINE_FILE, "targets": ckpt.TARGETS_FILE, "best": ckpt.BEST_FILE,
               "result": ckpt.RESULT_FILE}


class FolderStore:
    """A run folder: ``<outdir>/prompt_pins/<run>/`` with the files of ``checkpoint``.

    It holds the folder's ``lock.RunLock`` until ``close``.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.lock = RunLock(self.run_dir)
        self.logged_folders: set[str] = set()  # the individual folders the log names

    @classmethod
    def create(cls, outdir: Path | str) -> "FolderStore":
        """A new numbered run folder, locked, then marked as the project's."""
        store = cls(create_run_dir(outdir))
        ckpt.write_marker(store.run_dir)
        return store

    @classmethod
    def open(cls, run_dir: Path | str) -> "FolderStore":
        """An existing run folder to continue, locked; a ResumeError if it is not one or is in use."""
        return cls(ckpt.check_run_folder(Path(run_dir)))

    def close(self) -> None:
        """Release the folder's lock (the run is over)."""
        self.lock.release()

    def discard(self) -> None:
        """Remove a folder that ``create`` made for a run that failed before its first render."""
        self.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def save_config(self, config: PinningConfig, resolved: dict[str, Any]) -> None:
        ckpt.save_run_config(self.run_dir, config, resolved)

    def save_images(self, name: str, images: torch.Tensor, ident: Optional[str] = None, traces=None) -> None:
        ckpt.save_images(self.run_dir / IMAGE_FILES[name], images, ident, traces)

    def image_path(self, name: str) -> Path:
        return self.run_dir / IMAGE_FILES[name]

    def save_checkpoint(self, checkpoint: ckpt.Checkpoint, n: int) -> Optional[dict[str, Any]]:
        return ckpt.save_checkpoint(self.run_dir, checkpoint, n)

    def drop_old_checkpoints(self, keep: str) -> None:
        ckpt.drop_old_arrays(self.run_dir, keep)

    def keep_images(self, ident: str, images: torch.Tensor, traces=None) -> None:
        ckpt.save_images(ckpt.kept_path(self.run_dir, ident), images, ident, traces)

    def drop_images(self, ident: str) -> None:
        ckpt.kept_path(self.run_dir, ident).unlink(missing_ok=True)

    def kept_ids(self) -> list[str]:
        return ckpt.kept_ids(self.run_dir)

    def individual_folder(self, generation: int, ident: str) -> Optional[Path]:
        return create_individual_dir(self.run_dir, generation, ident, self.logged_folders)

    def generation_folder(self, generation: int) -> Optional[Path]:
        return generation_dir(self.run_dir, generation)

    def append_evaluation(self, record: IndividualRecord, **marks: Any) -> None:
        entry = {**ckpt.evaluation_entry(record, self.run_dir), **marks}
        ckpt.append_evaluation(self.run_dir, entry)
        if entry["folder"]:
            self.logged_folders.add(entry["folder"])

    def append_event(self, entry: dict[str, Any]) -> None:
        ckpt.append_evaluation(self.run_dir, entry)

    def read_events(self, check=None) -> list[dict[str, Any]]:
        events = ckpt.read_evaluations(self.run_dir, check, compact=True)
        self.logged_folders.update(e["folder"] for e in events if ckpt.is_evaluation(e) and e["folder"])
        return events

    def write_state(self, status: str, **info: Any) -> None:
        ckpt.write_run_state(self.run_dir, status, **info)


class MemoryStore:
    """Keeps the run's files as values in memory; nothing touches the disk."""

    run_dir: Optional[Path] = None

    def __init__(self) -> None:
        self.config: Optional[dict[str, Any]] = None
        self.images: dict[str, tuple[torch.Tensor, Optional[str]]] = {}
        self.checkpoint: Optional[ckpt.Checkpoint] = None
        self.evaluations: list[dict[str, Any]] = []
        self.state: dict[str, Any] = {}

    def save_config(self, config: PinningConfig, resolved: dict[str, Any]) -> None:
        self.config = {"config": config.to_dict(), "resolved": resolved}

    def save_images(self, name: str, images: torch.Tensor, ident: Optional[str] = None, traces=None) -> None:
        self.images[name] = (images, ident)

    def save_checkpoint(self, checkpoint: ckpt.Checkpoint, n: int) -> Optional[dict[str, Any]]:
        self.checkpoint = checkpoint
        return None  # a memory run is never resumed: its journal needs no checkpoint lines

    def drop_old_checkpoints(self, keep: str) -> None:
        pass

    def keep_images(self, ident: str, images: torch.Tensor, traces=None) -> None:
        pass  # the run's state holds them; a memory run is never resumed

    def drop_images(self, ident: str) -> None:
        pass

    def individual_folder(self, generation: int, ident: str) -> Optional[Path]:
        return None

    def generation_folder(self, generation: int) -> Optional[Path]:
        return None

    def append_evaluation(self, record: IndividualRecord, **marks: Any) -> None:
        self.evaluations.append({**ckpt.evaluation_entry(record, None), **marks})

    def append_event(self, entry: dict[str, Any]) -> None:
        self.evaluations.append(dict(entry))

    def read_events(self, check=None) -> list[dict[str, Any]]:
        return [dict(entry) for entry in self.evaluations]

    def write_state(self, status: str, **info: Any) -> None:
        self.state = {"stop_reason": status, **info}

    def close(self) -> None:
        pass
