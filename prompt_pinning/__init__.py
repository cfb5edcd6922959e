"""Prompt pinning: find the prompt weights that pin a prompt to a visual target.

For scripts: ``PinningLoss.from_config(config, targets)`` scores images as a run
of ``config`` would, and ``run_target(config, renderer)`` gives the images a run
pins to (its target images, or the unmodified prompt's batch).
``run_pinning(config, renderer, store=MemoryStore())`` runs without writing a
run folder.
"""

from .score.loss import PinningLoss
from .run.builders import run_target
from .run.store import MemoryStore

__version__ = "0.1.0"

__all__ = ["MemoryStore", "PinningLoss", "run_target"]
