"""File helpers for reports: the project's one atomic writer and JSON rule (``prompt_pinning.run.files``).

Report files are views a run can draw again, so they skip the fsync (see ``prompt_pinning.run.files``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..run.files import jsonable, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["atomic_write_bytes", "atomic_write_text", "dump_json", "jsonable"]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    write_bytes_atomic(path, data, durable=False)


def atomic_write_text(path: Path, text: str) -> None:
    write_text_atomic(path, text, durable=False)


def dump_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (NaN and infinities become null)."""
    write_json_atomic(path, value, durable=False)
