"""A1111 (v1.10.1) prompt attention syntax, parsed with character positions.

Semantics, as the WebUI applies them:

- ``(x)`` multiplies the weight of x by 1.1, ``[x]`` divides it by 1.1,
  ``(x:1.5)`` multiplies it by 1.5; nesting multiplies. Brackets still open at
  the end of the prompt apply to everything after them; a closing bracket with
  nothing open is literal text.
- ``\\(``, ``\\)``, ``\\[``, ``\\]`` and ``\\\\`` are literal characters; any other
  backslash is dropped.
- ``BREAK`` (a whole word, outside brackets) starts a new 75-token chunk; the
  parser marks it with weight -1.
- Runs of pieces with equal weights are joined into one piece, which the host
  tokenizes as one text.
- Extra-network tags ``<name:args>`` are removed by the host before any of
  this; ``AND`` (positive prompt only), ``[from:to:when]`` and ``[a|b]`` are
  handled before it too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK_WEIGHT = -1.0

# One syntax token of the attention grammar, tried in this order.
_ATTENTION_TOKEN = re.compile(
    r"""
    (?P<escape>\\[()\[\]\\])              # escaped bracket or backslash
    | (?P<backslash>\\)                   # any other backslash: dropped
    | (?P<open>[(\[])
    | :\s*(?P<weight>[+-]?[.\d]+)\s*\)    # ":1.5)" closes a round bracket
    | (?P<close>[)\]])
    | (?P<text>[^\\()\[\]:]+ | :)
    """,
    re.X,
)
BREAK_PATTERN = re.compile(r"\s*\bBREAK\b\s*", re.S)
EXTRA_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")
AND_PATTERN = re.compile(r"\bAND\b")
# A prompt-editing "[a:b:when]" or "[b:when]" ends in ":" NUMBER.
_SCHEDULE_TAIL = re.compile(
    r":\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*$"
)


class PromptError(ValueError):
    """A prompt that cannot be pinned as written. The message says where and why."""

    def __init__(self, message: str, position: Optional[int] = None):
        super().__init__(message)
        self.position = position


@dataclass
class Piece:
    """Literal text with one weight, as the host tokenizes it.

    ``positions[i]`` is the index in the parsed text of ``text[i]``'s source.
    """

    text: str
    weight: float
    start: int
    positions: list[int]

    @property
    def is_break(self) -> bool:
        return self.text == "BREAK" and self.weight == BREAK_WEIGHT


def _text_pieces(text: str, start: int) -> list[Piece]:
    """Split plain text on BREAK; each BREAK becomes a marker piece."""
    pieces = []
    cursor = 0
    for match in BREAK_PATTERN.finditer(text):
        pieces.append(_plain(text[cursor:match.start()], start + cursor))
        word_at = start + match.start() + match.group(0).index("BREAK")
        pieces.append(Piece("BREAK", BREAK_WEIGHT, word_at, list(range(word_at, word_at + 5))))
        cursor = match.end()
    pieces.append(_plain(text[cursor:], start + cursor))
    return pieces


def _plain(text: str, start: int) -> Piece:
    return Piece(text, 1.0, start, list(range(start, start + len(text))))


def _parse_weight(literal: str, position: int) -> float:
    try:
        return float(literal)
    except ValueError:
        raise PromptError(
            f"attention weight {literal!r} at character {position} is not a number "
            "(write it like (word:1.2))",
            position,
        ) from None


def scan_attention(text: str) -> list[Piece]:
    """The weighted pieces of ``text`` before equal neighbours are joined."""
    pieces: list[Piece] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def multiply_from(first: int, factor: float) -> None:
        for piece in pieces[first:]:
            piece.weight *= factor

    for match in _ATTENTION_TOKEN.finditer(text):
        kind = match.lastgroup
        at = match.start()
        if kind == "escape":
            pieces.append(Piece(match.group(0)[1], 1.0, at, [at]))
        elif kind == "backslash":  # A1111 keeps an empty piece here, which splits neighbours
            pieces.append(Piece("", 1.0, at, []))
        elif kind == "open":
            (round_open if match.group(0) == "(" else square_open).append(len(pieces))
        elif kind == "weight" and round_open:
            multiply_from(round_open.pop(), _parse_weight(match.group("weight"), at))
        elif kind == "close" and match.group(0) == ")" and round_open:
            multiply_from(round_open.pop(), ROUND_MULTIPLIER)
        elif kind == "close" and match.group(0) == "]" and square_open:
            multiply_from(square_open.pop(), SQUARE_MULTIPLIER)
        else:  # plain text, a lone ":", or a closing bracket with nothing open
            pieces.extend(_text_pieces(match.group(0), at))

    for first in round_open:
        multiply_from(first, ROUND_MULTIPLIER)
    for first in square_open:
        multiply_from(first, SQUARE_MULTIPLIER)
    return pieces


def join_equal_weights(pieces: list[Piece]) -> list[Piece]:
    """Join neighbours whose weights are equal, as the host does before tokenizing."""
    if not pieces:
        return [Piece("", 1.0, 0, [])]
    joined = [Piece(pieces[0].text, pieces[0].weight, pieces[0].start, list(pieces[0].positions))]
    for piece in pieces[1:]:
        last = joined[-1]
        if last.weight == piece.weight:
            last.text += piece.text
            last.positions.extend(piece.positions)
        else:
            joined.append(Piece(piece.text, piece.weight, piece.start, list(piece.positions)))
    return joined


def parse_pieces(text: str) -> list[Piece]:
    """Weighted pieces with positions, equal neighbours joined."""
    return join_equal_weights(scan_attention(text))


def parse_prompt_attention(text: str) -> list[tuple[str, float]]:
    """(text, weight) pairs exactly as A1111's attention parser gives them.

    BREAK appears as ``("BREAK", -1.0)``. An empty prompt gives ``[("", 1.0)]``.
    """
    if not isinstance(text, str):
        raise PromptError(f"prompt must be a string, got {type(text).__name__}")
    return [(piece.text, piece.weight) for piece in parse_pieces(text)]


def strip_extra_networks(text: str) -> tuple[str, list[int], list[tuple[int, str]]]:
    """Remove ``<name:args>`` tags as the host does.

    Returns the remaining text, the original index of each remaining character
    and the (original index, tag text) of each removed tag.
    """
    kept: list[str] = []
    index_map: list[int] = []
    tags: list[tuple[int, str]] = []
    cursor = 0
    for match in EXTRA_NETWORK_TAG.finditer(text):
        kept.append(text[cursor:match.start()])
        index_map.extend(range(cursor, match.start()))
        tags.append((match.start(), match.group(0)))
        cursor = match.end()
    kept.append(text[cursor:])
    index_map.extend(range(cursor, len(text)))
    return "".join(kept), index_map, tags


def find_and(text: str) -> Optional[int]:
    """Index of the first ``AND`` (composable prompt separator), or None."""
    match = AND_PATTERN.search(text)
    return match.start() if match else None


def _unescaped(text: str) -> list[tuple[int, str]]:
    """(index, char) of each character that is not part of a backslash escape."""
    chars = []
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        chars.append((i, text[i]))
        i += 1
    return chars


def find_schedule(text: str) -> Optional[tuple[int, str]]:
    """First ``[a|b]`` or ``[from:to:when]`` in ``text``: (index, construct name).

    Conservative: a bracket that the host might read as prompt editing or
    alternation is reported, even where the host would fall back to reading
    the whole prompt as plain attention syntax.
    """
    chars = _unescaped(text)
    for k, (start, char) in enumerate(chars):
        if char == "[":
            found = _bracket_construct(chars, k)
            if found is not None:
                return start, found
    return None


def _bracket_construct(chars: list[tuple[int, str]], k: int) -> Optional[str]:
    """What the ``[`` at ``chars[k]`` opens, if it changes the prompt while sampling.

    One pass up to its closing ``]``; the text at its own nesting level (outside
    any inner bracket of either kind) is collected on the way.
    """
    depth_square, depth_round, depth_any, bar_at = 0, 0, 0, None
    content: list[str] = []
    for end, inner in chars[k + 1:]:
        if inner == "]" and not depth_square:
            if bar_at is not None:
                return "alternation [a|b]"
            joined = "".join(content)
            if _SCHEDULE_TAIL.search(joined) and ":" in joined:
                return "prompt editing [from:to:when]"
            return None
        if depth_any == 0:
            content.append(inner)
        if inner in "([":
            depth_any += 1
        elif inner in ")]" and depth_any:
            depth_any -= 1
        if inner == "[":
            depth_square += 1
        elif inner == "]":
            depth_square -= 1
        elif inner == "(":
            depth_round += 1
        elif inner == ")" and depth_round:
            depth_round -= 1
        elif inner == "|" and not depth_square and not depth_round and bar_at is None:
            bar_at = end
    return None
