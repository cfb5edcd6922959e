"""Small checks of values read from run files (user input on a resume), and the resume error."""
from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ..options import is_int  # noqa: F401 (one whole-number check for options and run files)
from .rundir import ID_LENGTH

MAX_LIST = 10**6  # longest list a run file may hold


class ResumeError(ValueError):
    """A run folder that cannot be continued; the message names the file and the problem."""


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_id(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"[0-9a-f]{%d}" % ID_LENGTH, value) is not None


def number_list(values: Any, finite: bool) -> bool:
    if not isinstance(values, list) or len(values) > MAX_LIST:
        return False
    return all(is_finite(v) or (not finite and v is None) for v in values)


def float_array(values: list | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray):
        return values.astype(np.float64, copy=False)
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
