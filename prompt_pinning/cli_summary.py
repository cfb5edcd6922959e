"""The command line's closing summary: prompts, pinned strengths and the paired scores."""
from __future__ import annotations

from pathlib import Path


def format_result(result, unfinished: bool = False) -> str:
    from .run.paired import seed_ranges

    lines = [
        "",
        f"stopped:         {result.stop_reason}",
        f"original prompt: {result.original_positive}",
        f"original neg.:   {result.original_negative}",
    ]
    if result.best is not None:
        lines += [
            f"pinned prompt:   {result.best.positive}",
            f"pinned neg.:     {result.best.negative}",
        ]
    lines += _strength_lines(result.units)
    lines += [f"{score.basis + ':':<18}unmodified {score.baseline:.6f}, pinned {score.result:.6f}, "
              f"improvement {_percent(score.improvement)} on {seed_ranges(score.seeds) if score.seeds else 'them'}"
              + ("  (headline)" if score is result.paired else "")
              for score in result.scores()]
    if result.paired is None:
        lines.append("improvement:     not measured (the run stopped before its result was scored on common seeds)")
    lines.append(f"report:          {Path(result.run_dir) / 'index.html'}")
    if unfinished:
        lines.append(f"                 unfinished (stopped with Ctrl-C); to draw it all: "
                     f"python -m prompt_pinning report {result.run_dir}")
    lines.append("")
    return "\n".join(lines)


def _strength_lines(units) -> list[str]:
    """One line per pinned extra-network strength: "lora te palette: 0.8 -> 1.05 (positive)"."""
    from .prompt.weights import DEFAULT_DECIMALS, format_weight

    return [f"{'strength:' if i == 0 else '':<17}{u.kind} {u.text}: {format_weight(u.base_weight)} -> "
            f"{format_weight(round(u.pinned_weight, DEFAULT_DECIMALS))} ({u.prompt})"
            for i, u in enumerate(u for u in units if u.kind != "word")]


def _percent(value) -> str:
    return "n/a" if value is None else f"{value * 100:+.1f}%"
