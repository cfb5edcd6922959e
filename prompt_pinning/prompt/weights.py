"""Prompt weights: the user's prompts as a vector of pinnable weights, and back.

An individual of the search is a vector of offsets, one per unit. Rendering
writes each unit as ``(text:weight)`` with weight ``|base + offset|``, the
offset rounded to ``decimals`` places, and the weight written as the shortest
decimal that gives the same float32 (the host keeps weights as float32).
Offsets of zero give the host exactly the token ids and weights of the
user's original prompt; ``check_zero_offsets`` proves it for a tokenizer.

With ``networks`` the strengths of the prompts' LoRA and hypernetwork tags are
units too (networks.py), after each prompt's word units: a strength is written
as ``base + offset`` (signed, within the renderer's range), and a tag whose
offsets are all zero is written exactly as the user wrote it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from .attention import PromptError, parse_prompt_attention
from .networks import (MAX_NETWORK_STRENGTH, NETWORK_REACH, NetworkUnit, check_strengths,
                       prompt_network_units, render_tag)
from .units import MAX_PROMPT_WEIGHT, NEGATIVE, POSITIVE, RAW, UNIT, Item, prompt_items
from ..run.records import UnitRow
from ..rendering import Tokenizer
from .tokenizers import COMMA_PADDING_BACKTRACK, HostChunk, host_encoding

__all__ = [
    "PromptError",
    "PromptVector",
    "Unit",
    "check_zero_offsets",
    "format_weight",
    "parse_prompt_attention",
]

UNIT_MODES = ("word", "phrase")
DEFAULT_DECIMALS = 4
# Most units (positive and negative together) a run may pin. Every unit is written as its
# own weighted group, and the host's prompt parser slows down much faster than linearly
# with their number: A1111 v1.10.1 took 1.0 s, 5.4 s and 11.6 s to parse one rendered
# prompt of 58, 119 and 178 units, once per individual (benchmarks/bench_prompt_units.py
# --webui; 2 shared x86_64 cores, 2026-11-30). 150 units are two CLIP chunks of plain words.
MAX_UNITS = 150
_ESCAPED = set("\\()[]")


@dataclass(frozen=True)
class Unit:
    """One pinnable unit: its text, base weight and prompt."""

    text: str
    base_weight: float
    prompt: str  # "positive" or "negative"
    position: int  # character index in its prompt
    kind: str = "word"  # "word" (a word or phrase) or a network strength: "lora", "lora te", "lora unet", "hypernet"


def format_weight(weight: float) -> str:
    """Shortest plain decimal that parses to the same float32 as ``weight``."""
    return np.format_float_positional(np.float32(weight), unique=True, trim="-")


def escape_text(text: str) -> str:
    return "".join("\\" + ch if ch in _ESCAPED else ch for ch in text)


class PromptVector:
    """The units of a positive and a negative prompt, in that order."""

    def __init__(self, positive: str, negative: str, items: Mapping[str, list[Item]],
                 unit_mode: str, decimals: int, networks: Optional[Mapping[str, list[NetworkUnit]]] = None,
                 strength_range: tuple[float, float] = (-MAX_NETWORK_STRENGTH, MAX_NETWORK_STRENGTH)):
        self.positive = positive
        self.negative = negative
        self.unit_mode = unit_mode
        self.decimals = decimals
        self.strength_range = strength_range
        self._items = {which: list(items[which]) for which in (POSITIVE, NEGATIVE)}
        self._networks = {which: list((networks or {}).get(which, ())) for which in (POSITIVE, NEGATIVE)}
        self.units = []
        for which in (POSITIVE, NEGATIVE):
            self.units += [Unit(item.text, item.weight, which, item.position)
                           for item in self._items[which] if item.kind == UNIT]
            self.units += [Unit(n.name, n.base, which, n.position, n.kind) for n in self._networks[which]]
        self._is_network = np.array([u.kind != "word" for u in self.units], dtype=bool)

    @classmethod
    def from_prompts(
        cls,
        positive: str,
        negative: str,
        tokenizer: Tokenizer,
        unit_mode: str = "word",
        *,
        embeddings: Iterable[str] = (),
        decimals: int = DEFAULT_DECIMALS,
        networks: bool = False,
        strength_range: tuple[float, float] = (-MAX_NETWORK_STRENGTH, MAX_NETWORK_STRENGTH),
        negative_networks: bool = True,
    ) -> "PromptVector":
        """Parse both prompts. ``embeddings``: textual-inversion names, kept whole. ``networks``:
        pin the strengths of LoRA and hypernetwork tags too, within ``strength_range``; those of the
        negative prompt only with ``negative_networks`` (else its tags stay as written)."""
        if unit_mode not in UNIT_MODES:
            raise ValueError(f"unit_mode must be one of {UNIT_MODES}, got {unit_mode!r}")
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError(f"tokenizer must have encode() and token_strings(), got {type(tokenizer).__name__}")
        if not isinstance(decimals, int) or not 1 <= decimals <= 6:
            raise ValueError(f"decimals must be an integer from 1 to 6, got {decimals!r}")
        names = list(embeddings)
        items = {
            POSITIVE: prompt_items(positive, POSITIVE, tokenizer, unit_mode, names),
            NEGATIVE: prompt_items(negative, NEGATIVE, tokenizer, unit_mode, names),
        }
        found = {POSITIVE: prompt_network_units(positive, POSITIVE) if networks else [],
                 NEGATIVE: prompt_network_units(negative, NEGATIVE) if networks and negative_networks else []}
        if not any(item.kind == UNIT for item in items[POSITIVE]) and not found[POSITIVE]:
            raise PromptError(
                f"positive prompt: nothing to pin in {positive!r}: it is empty or holds only "
                "extra-network tags, BREAK or text the tokenizer ignores"
            )
        check_strengths(found[POSITIVE] + found[NEGATIVE], *strength_range)
        _check_unit_count(items, positive, negative, tokenizer, unit_mode, names,
                          len(found[POSITIVE]) + len(found[NEGATIVE]))
        return cls(positive, negative, items, unit_mode, decimals, found, strength_range)

    def network_units(self) -> list[NetworkUnit]:
        return self._networks[POSITIVE] + self._networks[NEGATIVE]

    @property
    def size(self) -> int:
        return len(self.units)

    @property
    def base_weights(self) -> np.ndarray:
        return np.array([unit.base_weight for unit in self.units], dtype=np.float64)

    def weights(self, offsets: Optional[Sequence[float]] = None) -> np.ndarray:
        """The weight each unit is rendered with: |base + offset rounded to decimals| (a network
        strength keeps its sign)."""
        with np.errstate(over="ignore", invalid="ignore"):  # a huge offset gives inf, which render() refuses
            steps = np.round(self._offsets(offsets) * 10**self.decimals)
            values = self.base_weights + steps / 10**self.decimals
            return np.where(self._is_network, values, np.abs(values))

    def offset_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(lowest, highest) offset per unit: word weights up to MAX_PROMPT_WEIGHT; network
        strengths within NETWORK_REACH of the user's value and within the strength range."""
        base = self.base_weights
        low, high = -MAX_PROMPT_WEIGHT - base, MAX_PROMPT_WEIGHT - base
        least, most = self.strength_range
        low = np.where(self._is_network, np.maximum(-NETWORK_REACH, least - base), low)
        high = np.where(self._is_network, np.minimum(NETWORK_REACH, most - base), high)
        return low, high

    def render(self, offsets: Optional[Sequence[float]] = None) -> tuple[str, str]:
        """The (positive, negative) prompt texts for these offsets.

        Raises PromptError rather than write a weight that is not finite or above
        ``MAX_PROMPT_WEIGHT``.
        """
        values = self.weights(offsets)
        self._check_weights(values)
        moved = iter(np.round(self._offsets(offsets) * 10**self.decimals) != 0)
        weights = iter(values)
        rendered = {}
        for which in (POSITIVE, NEGATIVE):
            unit_weights = [next(weights) for item in self._items[which] if item.kind == UNIT]
            for _ in range(len(unit_weights)):
                next(moved)
            strengths = [(n, format_weight(w) if m else None)
                         for n, w, m in zip(self._networks[which], weights, moved)]
            rendered[which] = _render_items(_with_strengths(self._items[which], strengths), unit_weights)
        return rendered[POSITIVE], rendered[NEGATIVE]

    def unit_rows(self, offsets: Optional[Sequence[float]] = None) -> list[UnitRow]:
        values = self._offsets(offsets)
        return [UnitRow(text=u.text, prompt=u.prompt, base_weight=u.base_weight, offset=float(o), kind=u.kind)
                for u, o in zip(self.units, values)]

    def table(self, offsets: Optional[Sequence[float]] = None) -> str:
        """A plain-text table of the units (with offsets and weights when given)."""
        kinds = bool(self._is_network.any())  # a kind column only where there are network strengths
        header = ["#", "prompt", *(["kind"] if kinds else []), "unit", "base"]
        rows = [[str(i), u.prompt, *([u.kind] if kinds else []), u.text, format_weight(u.base_weight)]
                for i, u in enumerate(self.units)]
        if offsets is not None:
            header += ["offset", "weight"]
            for row, offset, weight in zip(rows, self._offsets(offsets), self.weights(offsets)):
                row += [f"{offset:+.{self.decimals}f}", format_weight(weight)]
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
        lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows]]
        return "\n".join(lines)

    def _check_weights(self, weights: np.ndarray) -> None:
        least, most = self.strength_range
        with np.errstate(invalid="ignore"):
            outside = self._is_network & ((weights < least) | (weights > most))
        bad = ~np.isfinite(weights) | (~self._is_network & (weights > MAX_PROMPT_WEIGHT))
        if outside.any():
            index = int(np.argmax(outside))
            unit = self.units[index]
            raise PromptError(
                f"{unit.prompt} prompt: {unit.kind} {unit.text!r} at character {unit.position} would be "
                f"written with strength {weights[index]:g}, outside the renderer's range {least:g} .. {most:g}",
                unit.position)
        if not bad.any():
            return
        index = int(np.argmax(bad))
        unit = self.units[index]
        raise PromptError(
            f"{unit.prompt} prompt: unit {index} ({unit.text!r}) would be written with weight "
            f"{weights[index]:g}; weights must be finite and at most {MAX_PROMPT_WEIGHT:g}. Lower "
            "initial_std, initial_radius or cmatrix, or set a size_limit", unit.position)

    def _offsets(self, offsets: Optional[Sequence[float]]) -> np.ndarray:
        if offsets is None:
            return np.zeros(self.size)
        values = np.asarray(offsets, dtype=np.float64).reshape(-1)
        if values.shape != (self.size,):
            raise ValueError(f"offsets must have one value per unit ({self.size}), got {values.size}")
        if not np.all(np.isfinite(values)):
            raise ValueError("offsets must be finite numbers")
        return values


def _unit_count(items: Mapping[str, list[Item]]) -> int:
    return sum(item.kind == UNIT for which in (POSITIVE, NEGATIVE) for item in items[which])


def _with_strengths(items: list[Item], strengths: list[tuple[NetworkUnit, Optional[str]]]) -> list[Item]:
    """The items with each tag whose strengths moved written anew."""
    by_tag: dict[int, list[tuple[NetworkUnit, Optional[str]]]] = {}
    for unit, text in strengths:
        by_tag.setdefault(unit.position, []).append((unit, text))
    out = []
    for item in items:
        found = by_tag.get(item.position) if item.kind == RAW and not item.is_break else None
        if found and any(text is not None for _, text in found):
            item = replace(item, text=render_tag(item.text, [u for u, _ in found], [t for _, t in found]))
        out.append(item)
    return out


def _check_unit_count(items: Mapping[str, list[Item]], positive: str, negative: str,
                      tokenizer: Tokenizer, unit_mode: str, names: list[str], networks: int = 0) -> None:
    """Refuse prompts with more than MAX_UNITS units, saying what phrase mode would give."""
    count = _unit_count(items) + networks
    if count <= MAX_UNITS:
        return
    counts = {which: sum(item.kind == UNIT for item in items[which]) for which in (POSITIVE, NEGATIVE)}
    advice = "shorten the prompts"
    if unit_mode == "word":
        phrases = networks + _unit_count({which: prompt_items(text, which, tokenizer, "phrase", names)
                                          for which, text in ((POSITIVE, positive), (NEGATIVE, negative))})
        advice = (f"use unit_mode 'phrase' (one unit per comma-separated phrase: {phrases} units "
                  f"here{'' if phrases <= MAX_UNITS else ', still too many'}) or shorten the prompts")
    strengths = f", and {networks} network strengths" if networks else ""
    raise PromptError(
        f"the prompts have {count} pinnable units ({counts[POSITIVE]} positive, {counts[NEGATIVE]} "
        f"negative in {unit_mode} mode{strengths}); at most {MAX_UNITS} are accepted, because every unit "
        f"becomes its own weighted group and the host's prompt parsing slows down sharply with "
        f"their number. {advice[0].upper()}{advice[1:]}.")


def _render_items(items: list[Item], unit_weights: list[float]) -> str:
    """Write items back as prompt text; units and fixed text get their weights.

    Whitespace between two bracketed groups of different weights is left out: the host
    tokenizes it to nothing, and its prompt parser (lark's Earley parser, run on every
    prompt of every render) takes several times longer when every group is followed by
    a blank: 2.4 s against 1.0 s for 58 units, 22 s against 5.4 s for 119 (A1111 v1.10.1,
    2 shared x86_64 cores, 2026-11-30).
    """
    weights = iter(unit_weights)
    out: list[str] = []
    previous: Optional[tuple[int, str]] = None  # (piece, weight text) of the last weighted item
    after_break = False
    last_bracketed = False  # the text written last is a "(...:w)" group
    for item in items:
        sep = item.sep or (" " if after_break and out else "")
        if item.kind == RAW:
            if item.is_break:
                sep = sep or (" " if out else "")
                previous = None
            out.append(sep + item.text)
            after_break, last_bracketed = item.is_break, False
            continue
        weight = format_weight(next(weights) if item.kind == UNIT else item.weight)
        if not sep and previous is not None and previous[0] != item.piece and previous[1] == weight:
            sep = " "  # keep the host from joining neighbours of equal weight into one word
        bracketed = weight != "1"
        if bracketed and last_bracketed and previous[1] != weight and sep.isspace():
            sep = ""
        body = escape_text(item.text)
        out.append(sep + (f"({body}:{weight})" if bracketed else body))
        previous, after_break, last_bracketed = (item.piece, weight), False, bracketed
    return "".join(out)


def _flat(chunks: list[HostChunk]) -> list[tuple[int, float]]:
    return [pair for chunk in chunks for pair in zip(chunk.tokens, chunk.weights)]


def _culprit(vector: PromptVector, which: str, tokenizer: Tokenizer, token_index: int) -> str:
    """The item whose tokens hold ``token_index`` when each item is tokenized alone."""
    count = 0
    last = None
    for item in vector._items[which]:
        if item.kind == RAW:
            continue
        last = item
        count += len(tokenizer.encode(item.text))
        if count > token_index:
            break
    if last is None:
        return "the prompt's tags or BREAKs"
    label = "unit" if last.kind == UNIT else "fixed text"
    return f"{label} {last.text!r} at character {last.position}"


def _compare(vector: PromptVector, which: str, tokenizer: Tokenizer, original: list[HostChunk],
             rendered: list[HostChunk], rendered_text: str, with_weights: bool, what: str) -> None:
    def key(chunks):
        if with_weights:
            return [(c.tokens, c.weights, c.embeddings) for c in chunks]
        return [(c.tokens, c.embeddings) for c in chunks]

    if key(original) == key(rendered):
        return
    a, b = _flat(original), _flat(rendered)
    if not with_weights:
        a, b = [t for t, _ in a], [t for t, _ in b]
    index = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    raise PromptError(
        f"{which} prompt: rendering with {what} changes what the host sees, first at token "
        f"{index}, near {_culprit(vector, which, tokenizer, index)}. Original: "
        f"{len(original)} chunk(s), {len(a)} tokens; rendered {rendered_text!r}: "
        f"{len(rendered)} chunk(s), {len(b)} tokens. Rewrite that part of the prompt "
        "(for example put a space around it) or use unit_mode='phrase'."
    )


def check_zero_offsets(
    vector: PromptVector,
    tokenizer: Tokenizer,
    *,
    embeddings: Optional[Mapping[str, int]] = None,
    comma_padding_backtrack: int = COMMA_PADDING_BACKTRACK,
    check_offsets: bool = True,
) -> None:
    """Raise PromptError unless zero offsets give the host the user's exact tokens and weights.

    With ``check_offsets`` it also renders every unit with its own nonzero
    weight and requires the same token ids, so every individual of a run sees
    the user's tokens. ``embeddings`` maps textual-inversion names to vector counts.
    """
    options = dict(embeddings=embeddings, comma_padding_backtrack=comma_padding_backtrack)
    renders = {"zero offsets": vector.render()}
    if check_offsets and vector.size:
        distinct = 0.0123 * (1 + np.arange(vector.size) % 7)
        distinct[vector._is_network] = 0.0  # strengths change no tokens, and one may sit at its range's end
        renders["distinct nonzero offsets"] = vector.render(distinct)
    originals = {POSITIVE: vector.positive, NEGATIVE: vector.negative}
    for what, texts in renders.items():
        for which, text in zip((POSITIVE, NEGATIVE), texts):
            original = host_encoding(originals[which], tokenizer, **options)
            rendered = host_encoding(text, tokenizer, **options)
            _compare(vector, which, tokenizer, original, rendered, text, what == "zero offsets", what)
