"""Split a prompt into pinnable units and the fixed parts around them.

A prompt becomes a list of items in order: units (a word or punctuation run,
or a comma-separated phrase), fixed text that keeps its weight (commas in
phrase mode, text the tokenizer drops), and raw text rendered verbatim
(BREAK and extra-network tags). Each item remembers the whitespace before it.

A word stays whole when the tokenizer splits it into several pieces, and two
neighbours are joined into one unit when tokenizing them apart would give
other token ids than tokenizing them together: the host tokenizes every
differently weighted piece on its own.

Cost. A prompt is refused before any parsing when it has more than
MAX_PROMPT_CHARS characters or MAX_PROMPT_TOKENS tokens, and a unit that
joining would make longer than MAX_UNIT_CHARS is refused, so every text
encoded while splitting is short: the splitting is linear in the prompt's
length, and its cache of encodings is bounded.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, Optional

from .attention import (
    Piece,
    PromptError,
    find_and,
    find_schedule,
    parse_pieces,
    strip_extra_networks,
)
from ..rendering import Tokenizer

UNIT, FIXED, RAW = "unit", "fixed", "raw"
# The largest weight ever written into a prompt. Sensible weights lie within a few units
# of 1; past this the conditioning is noise, and far past it float32 turns it into inf.
MAX_PROMPT_WEIGHT = 100.0
POSITIVE, NEGATIVE = "positive", "negative"
# Prompt size limits, checked before any parsing. The host re-parses the prompt for every render,
# and prompt pinning allows at most 150 units anyway. Tokens are counted on the text as written
# (attention syntax included: "(word:1.25)" is 8 tokens), so 150 weighted words still fit.
MAX_PROMPT_CHARS = 4_000
MAX_PROMPT_TOKENS = 2_000
# A unit is a word or a few inseparable neighbours: past this it is not something to pin.
MAX_UNIT_CHARS = 200
ENCODE_CACHE_SIZE = 4_096


@dataclass
class Item:
    kind: str  # UNIT, FIXED or RAW
    text: str  # literal text (RAW: exactly as written)
    weight: float  # base weight (1.0 for RAW)
    sep: str  # whitespace before the item
    piece: int  # index of the weighted piece it came from (-1 for RAW)
    position: int  # character index in the user's prompt
    is_break: bool = False


@dataclass
class _Atom:
    text: str
    sep: str
    start: int  # index in the piece text


def _atom_pattern(embedding_names: Iterable[str]) -> re.Pattern:
    names = sorted({n for n in embedding_names if n}, key=len, reverse=True)
    whole = "".join(rf"(?<!\w){re.escape(n)}(?!\w)|" for n in names)
    # An HTML entity (&amp;) is one atom: the host's text cleaning turns it into one token.
    entity = r"&#?\w+;"
    return re.compile(rf"(?P<space>\s+)|(?P<atom>{whole}{entity}|\w+(?:[-'’.]\w+)*"
                      rf"|[^\w\s]+?(?={entity})|[^\w\s]+)")


def _atoms(text: str, pattern: re.Pattern) -> list[_Atom]:
    atoms: list[_Atom] = []
    sep = ""
    for match in pattern.finditer(text):
        if match.lastgroup == "space":
            sep += match.group(0)
        else:
            atoms.append(_Atom(match.group(0), sep, match.start()))
            sep = ""
    return atoms


def _join_inseparable(atoms: list[_Atom], encode: Callable[[str], tuple], where: Callable[[int], str],
                      ) -> list[_Atom]:
    """Join neighbours whose token ids change when tokenized apart (units of at most MAX_UNIT_CHARS)."""
    joined: list[_Atom] = []
    for atom in atoms:
        if len(atom.text) > MAX_UNIT_CHARS:
            _unit_too_long(atom, where)
        if joined:
            last = joined[-1]
            together = last.text + atom.sep + atom.text
            if encode(together) != encode(last.text) + encode(atom.text):
                if len(together) > MAX_UNIT_CHARS:
                    _unit_too_long(last, where)
                last.text = together
                continue
        joined.append(_Atom(atom.text, atom.sep, atom.start))
    return joined


def _unit_too_long(atom: _Atom, where: Callable[[int], str]) -> None:
    position, which = where(atom.start)
    raise PromptError(f"{which} prompt: the word at character {position} ({atom.text[:20]!r}...) is longer "
                      f"than {MAX_UNIT_CHARS} characters as the tokenizer reads it; a unit must be shorter. "
                      "Put spaces in it or shorten it", position)


def check_prompt_size(text: str, which: str, tokenizer: Tokenizer) -> None:
    """Refuse a prompt too long to parse in reasonable time, before any parsing."""
    if len(text) > MAX_PROMPT_CHARS:
        raise PromptError(f"{which} prompt: {len(text):,} characters; at most {MAX_PROMPT_CHARS:,} are accepted")
    tokens = len(tokenizer.encode(text))
    if tokens > MAX_PROMPT_TOKENS:
        raise PromptError(f"{which} prompt: {tokens:,} tokens as written (attention syntax included); "
                          f"at most {MAX_PROMPT_TOKENS:,} are accepted")


def _phrases(atoms: list[_Atom]) -> list[tuple[_Atom, bool]]:
    """Group atoms into comma-separated phrases; commas come back as (atom, False)."""
    grouped: list[tuple[_Atom, bool]] = []
    current: Optional[_Atom] = None
    for atom in atoms:
        if "," in atom.text and not any(ch.isalnum() for ch in atom.text):
            if current is not None:
                grouped.append((current, True))
                current = None
            grouped.append((atom, False))
        elif current is None:
            current = _Atom(atom.text, atom.sep, atom.start)
        else:
            current.text += atom.sep + atom.text
    if current is not None:
        grouped.append((current, True))
    return grouped


def _check_piece(piece: Piece, position: int, which: str) -> None:
    if not math.isfinite(piece.weight) or piece.weight > MAX_PROMPT_WEIGHT:
        raise PromptError(
            f"{which} prompt: weight {piece.weight:g} at character {position} ({piece.text.strip()!r}) "
            f"is too large; weights must be finite and at most {MAX_PROMPT_WEIGHT:g}",
            position,
        )
    if piece.weight >= 0:
        return
    if "BREAK" in piece.text:
        raise PromptError(
            f"{which} prompt: BREAK at character {position} is inside brackets; the host then "
            f"reads it as the word 'BREAK' with weight {piece.weight:g}, not as a chunk break. "
            "Move BREAK outside the brackets.",
            position,
        )
    raise PromptError(
        f"{which} prompt: negative weight {piece.weight:g} at character {position} "
        f"({piece.text.strip()!r}); pinning renders weights as absolute values, so only "
        "weights >= 0 are accepted",
        position,
    )


def _reject_changing_syntax(stripped: str, index_map: list[int], which: str) -> None:
    and_at = find_and(stripped) if which == POSITIVE else None
    if and_at is not None:
        position = index_map[and_at]
        raise PromptError(
            f"{which} prompt: AND (composable prompts) at character {position} is not supported; "
            "pin each part as its own prompt",
            position,
        )
    found = find_schedule(stripped)
    if found is not None:
        position, construct = index_map[found[0]], found[1]
        raise PromptError(
            f"{which} prompt: {construct} at character {position} changes the prompt during "
            "sampling and is not supported; escape the brackets (\\[ \\]) to mean them literally",
            position,
        )


def prompt_items(
    text: str,
    which: str,
    tokenizer: Tokenizer,
    unit_mode: str = "word",
    embedding_names: Iterable[str] = (),
) -> list[Item]:
    """The items of one prompt, in order."""
    if not isinstance(text, str):
        raise PromptError(f"{which} prompt must be a string, got {type(text).__name__}")
    check_prompt_size(text, which, tokenizer)
    stripped, index_map, tags = strip_extra_networks(text)
    _reject_changing_syntax(stripped, index_map, which)
    encode = lru_cache(maxsize=ENCODE_CACHE_SIZE)(lambda s: tuple(tokenizer.encode(s)))
    pattern = _atom_pattern(embedding_names)
    items: list[Item] = []
    pending_sep = ""
    for piece_no, piece in enumerate(_bridge_blank_pieces(parse_pieces(stripped), encode)):
        at = index_map[piece.start] if piece.start < len(index_map) else len(text)
        if piece.is_break:
            items.append(Item(RAW, "BREAK", 1.0, " ", -1, at, is_break=True))
            continue
        _check_piece(piece, at, which)
        atoms = _join_inseparable(_atoms(piece.text, pattern), encode,
                                  lambda start, p=piece: (index_map[p.positions[start]], which))
        grouped = _phrases(atoms) if unit_mode == "phrase" else [(a, True) for a in atoms]
        for atom, pinnable in grouped:
            kind = UNIT if pinnable and encode(atom.text) else FIXED
            position = index_map[piece.positions[atom.start]]
            items.append(Item(kind, atom.text, piece.weight, pending_sep + atom.sep, piece_no, position))
            pending_sep = ""
        pending_sep += _trailing_space(piece.text)
    return _insert_tags(items, tags, text)


def _bridge_blank_pieces(pieces: list[Piece], encode: Callable[[str], tuple]) -> list[Piece]:
    """Join equal-weight pieces split only by a differently weighted blank.

    A blank has no tokens, so its weight means nothing to the host; left alone it
    would split one phrase into two that a re-parse of the rendering joins again.
    Only where the joined text tokenizes as the parts do.
    """
    out: list[Piece] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if (out and i + 1 < len(pieces) and not piece.text.strip() and not piece.is_break
                and not out[-1].is_break and not pieces[i + 1].is_break
                and out[-1].weight == pieces[i + 1].weight
                and _joins_cleanly(out[-1].text, piece.text, pieces[i + 1].text, encode)):
            left, right = out[-1], pieces[i + 1]
            out[-1] = Piece(left.text + piece.text + right.text, left.weight, left.start,
                            left.positions + piece.positions + right.positions)
            i += 2
            continue
        out.append(piece)
        i += 1
    return out


def _joins_cleanly(left: str, blank: str, right: str, encode: Callable[[str], tuple]) -> bool:
    """Whether left + blank + right tokenizes as left and right apart, judged near the seam
    (MAX_UNIT_CHARS on each side), so that joining many pieces stays linear."""
    left, right = left[-MAX_UNIT_CHARS:], right[:MAX_UNIT_CHARS]
    return encode(left + blank + right) == encode(left) + encode(right)


def _trailing_space(text: str) -> str:
    stripped = text.rstrip()
    return text[len(stripped):] if stripped else text


def _insert_tags(items: list[Item], tags: list[tuple[int, str]], text: str) -> list[Item]:
    """Put each extra-network tag back where it was, with the whitespace around it."""
    for position, tag in tags:
        index = next((i for i, item in enumerate(items) if item.position > position), len(items))
        before = text[:position]
        sep = before[len(before.rstrip()):]
        items.insert(index, Item(RAW, tag, 1.0, sep, -1, position))
        if index + 1 < len(items) and items[index + 1].sep.startswith(sep):
            items[index + 1].sep = items[index + 1].sep[len(sep):]
    return items
