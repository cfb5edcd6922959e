"""The run: its plan, evaluator, state and journal, the driver loop, and the files it keeps.

``plan`` (what will be rendered), ``evaluator`` (render and score one seed block),
``state`` (what the run knows, changed only by events), ``journal`` (the run store
and report sink, in commit order), ``setup`` (new or resumed by replay) and
``driver`` (the algorithm). ``store``, ``checkpoint``, ``evaluation_log``, ``files``,
``rundir`` and ``checks`` are the run folder; ``records`` what reports read.
"""
from .driver import execute, resume_pinning, run_pinning

__all__ = ["execute", "resume_pinning", "run_pinning"]
