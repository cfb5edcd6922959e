"""The run's outcome in one line, and the pinned prompt in its most readable exact form."""
from __future__ import annotations

import re
from typing import Any, Optional

from prompt_pinning.run.paired import seed_span

NO_IMPROVEMENT = "no improvement found: your prompt is kept"
RESULT_LABEL = "Prompt pinning result: "
# ")(" between two weighted groups: the renderer leaves the blank out (prompt.weights._render_items)
_JOINED_GROUPS = re.compile(r"(?<!\\)\)\(")


def _pair(a: float, b: float) -> tuple[str, str]:
    for digits in (2, 3, 4, 6):
        left, right = f"{a:.{digits}f}", f"{b:.{digits}f}"
        if left != right:
            return left, right
    return left, right


def result_line(result: Any) -> str:
    """"loss 0.63 -> 0.62 (-2%) on validation seeds 57-64", or that the user's prompt is kept."""
    best, baseline, paired = result.best, result.baseline, result.paired
    if best is None or baseline is None or best.individual_id == baseline.individual_id:
        return NO_IMPROVEMENT
    if paired is None:
        return "the search's pick is shown; it was not compared with your prompt on the same seeds"
    seeds = result.validation_seeds if paired.basis == "validation seeds" else best.seeds
    before, after = _pair(paired.baseline, paired.result)
    percent = ""
    if paired.improvement is not None:  # None: a baseline loss of 0 (or not finite)
        change = -paired.improvement * 100
        percent = f" ({change:+.0f}%)" if abs(change) >= 1 else f" ({change:+.1f}%)"
    line = f"loss {before} -> {after}{percent} on {paired.basis} {seed_span(seeds)}"
    return line if paired.result < paired.baseline else f"{line}: not better than your prompt"


def readable_prompt(text: str, same_tokens) -> str:
    """``text`` with a blank between weighted groups, if ``same_tokens(text, readable)`` says the host
    sees the same token ids and weights in both; else ``text`` as it is."""
    readable = _JOINED_GROUPS.sub(") (", text)
    if readable == text:
        return text
    try:
        return readable if same_tokens(text, readable) else text
    except Exception:  # no tokenizer at hand: the exact rendered text
        return text


def host_same_tokens():
    """A ``same_tokens`` check with the host's own tokenizer and chunking (the zero-offset check's)."""
    from prompt_pinning.prompt.tokenizers import host_encoding

    from .tokenizer import HostTokenizer

    tokenizer = HostTokenizer.from_model(load=False)
    options = dict(embeddings=tokenizer.embeddings(), comma_padding_backtrack=tokenizer.comma_padding_backtrack)

    def same(a: str, b: str) -> bool:
        return host_encoding(a, tokenizer, **options) == host_encoding(b, tokenizer, **options)

    return same


def pinned_lines(result: Any, same_tokens: Optional[Any] = None) -> list[str]:
    """The comments that lead the result: the outcome, then the pinned prompt when it changed."""
    lines = [RESULT_LABEL + result_line(result)]
    best = result.best
    if best is not None and result.baseline is not None and best.individual_id != result.baseline.individual_id:
        try:
            same = same_tokens or host_same_tokens()
        except Exception:
            same = None
        show = (lambda t: readable_prompt(t, same)) if same else (lambda t: t)
        lines.append(f"Pinned prompt: {show(best.positive)}")
        if best.negative:
            lines.append(f"Pinned negative prompt: {show(best.negative)}")
    return lines
