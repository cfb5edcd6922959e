"""Selecting the active rows of full-batch conditioning (``extra_args``).

A hyperbatch runs a subset of the batch's rows at every step, so every
per-row value a host passes to the model must be cut down to those rows.
``select_rows`` does that for tensors and lists; hosts with their own
conditioning types add a selector with ``register_row_selector``.
Selectors build new objects and never change the value they are given.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch

# fn(value, rows, batch_size) -> the value restricted to ``rows``
RowSelector = Callable[[Any, Sequence[int], Optional[int]], Any]

_SELECTORS: dict[type, RowSelector] = {}


def register_row_selector(kind: type, selector: RowSelector) -> None:
    """Teach ``select_rows`` how to subset values of type ``kind`` (and subclasses)."""
    if not isinstance(kind, type):
        raise TypeError(f"kind must be a type, got {kind!r}")
    if not callable(selector):
        raise TypeError(f"selector must be callable as fn(value, rows, batch_size), got {selector!r}")
    _SELECTORS[kind] = selector


def unregister_row_selector(kind: type) -> None:
    """Remove a selector added with ``register_row_selector`` (no error if absent)."""
    _SELECTORS.pop(kind, None)


def _registered_selector(value) -> Optional[RowSelector]:
    for kind in type(value).__mro__:
        if kind in _SELECTORS:
            return _SELECTORS[kind]
    return None


def _is_per_row(length: int, batch_size: Optional[int]) -> bool:
    return batch_size is None or length == batch_size


def select_rows(value: Any, rows: Sequence[int], batch_size: Optional[int] = None) -> Any:
    """Restrict a per-row value to ``rows`` (indices into the full batch).

    - registered types: their selector decides;
    - dicts: every entry is selected (a new dict);
    - tensors whose first dimension is ``batch_size``: indexed (a new tensor);
    - lists/tuples of ``batch_size`` items: the items at ``rows`` (same type);
    - anything else (scalars, shared tensors, None): returned unchanged.
    With ``batch_size=None`` every tensor and list is treated as per-row.
    """
    selector = _registered_selector(value)
    if selector is not None:
        return selector(value, rows, batch_size)
    if isinstance(value, dict):
        return {key: select_rows(item, rows, batch_size) for key, item in value.items()}
    if isinstance(value, torch.Tensor):
        if value.ndim >= 1 and _is_per_row(value.shape[0], batch_size):
            return value[torch.as_tensor(list(rows), dtype=torch.long, device=value.device)]
        return value
    if isinstance(value, (list, tuple)) and _is_per_row(len(value), batch_size):
        picked = [value[r] for r in rows]
        return picked if isinstance(value, list) else tuple(picked)
    return value
