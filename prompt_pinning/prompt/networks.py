"""Extra-network strengths as pinnable units.

A1111 v1.10.1 and Forge read ``<kind:name:arg:arg...>`` tags: the args are
split on ``:``, an arg with ``=`` is named (``te=0.8``), the rest positional.

- ``<lora:name:te:unet>`` (also ``lyco``): the text-encoder strength is the
  second positional arg or ``te=`` (default 1); the UNet strength the third
  positional or ``unet=`` (default: the text-encoder strength). A tag that
  gives the UNet strength apart is two units ("te", "unet"), any other one
  unit that sets both.
- ``<hypernet:name:m>``: one unit, the multiplier (default 1).

Other tags stay fixed. A unit's strength is pinned within ``NETWORK_REACH``
of the user's value and within the renderer's strength range (its
``network_strength_range``, else ``-MAX_NETWORK_STRENGTH ..
MAX_NETWORK_STRENGTH``); 0 and negative strengths are allowed where that
range allows them. A tag whose strengths are all unchanged is written back
exactly as the user wrote it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .attention import EXTRA_NETWORK_TAG, PromptError

LORA_KINDS = ("lora", "lyco")
HYPERNET = "hypernet"
# How far the search may move a strength from the user's value.
NETWORK_REACH = 1.0
# The default strength range: the hosts accept any number, but past 10 a LoRA's weight
# deltas swamp the model's own.
MAX_NETWORK_STRENGTH = 10.0


@dataclass(frozen=True)
class Field:
    """One strength of a tag: where its value is written (None: implicit) and how to add it."""

    span: Optional[tuple[int, int]]  # value's characters within the tag text
    insert: str  # written before ">" when the value is implicit, e.g. ":{}" or ":te={}"


@dataclass(frozen=True)
class NetworkUnit:
    """One pinnable strength of one tag."""

    kind: str  # "lora", "lora te", "lora unet" or "hypernet"
    name: str
    base: float
    prompt: str
    position: int  # the tag's character index in its prompt
    tag: str  # the tag as written
    fields: tuple[Field, ...]  # the values this unit writes (te and unet of a one-unit LoRA)


def _args(tag: str) -> list[tuple[str, int]]:
    """(arg, start) of each ":"-separated arg after the kind."""
    body_start = tag.index(":") + 1
    out, start = [], body_start
    for part in tag[body_start:-1].split(":"):
        out.append((part, start))
        start += len(part) + 1
    return out


def _value(tag: str, arg: tuple[str, int], which: str, position: int, named: bool) -> tuple[float, tuple[int, int]]:
    text, start = arg
    if named:
        offset = text.index("=") + 1
        text, start = text[offset:], start + offset
    lead = len(text) - len(text.lstrip())
    try:
        value = float(text)
    except ValueError:
        raise PromptError(f"{which} prompt: {tag} at character {position}: strength {text.strip()!r} is not a "
                          "number", position) from None
    if not math.isfinite(value):
        raise PromptError(f"{which} prompt: {tag} at character {position}: strength {text.strip()!r} is not "
                          "a finite number", position)
    return value, (start + lead, start + lead + len(text.strip()))


def unit_text(unit) -> str:
    """A unit's text as labels show it (``text``, maybe ``kind``): a network strength after its kind
    ("lora te style")."""
    kind = getattr(unit, "kind", "word")
    return unit.text if kind == "word" else f"{kind} {unit.text}"


def tag_units(tag: str, position: int, which: str) -> list[NetworkUnit]:
    """The pinnable strengths of one tag (none for kinds other than LoRA and hypernetwork)."""
    kind = tag[1:tag.index(":")]
    if kind not in (*LORA_KINDS, HYPERNET):
        return []
    args = _args(tag)
    positional = [a for a in args if "=" not in a[0]]
    named = {a[0].split("=", 1)[0].strip(): a for a in args if "=" in a[0]}
    name = positional[0][0] if positional else ""
    if not name.strip():
        raise PromptError(f"{which} prompt: {tag} at character {position} names no network", position)

    def read(key: str, index: int) -> Optional[tuple[float, Field]]:
        if key in named:
            value, span = _value(tag, named[key], which, position, True)
        elif len(positional) > index:
            value, span = _value(tag, positional[index], which, position, False)
        else:
            return None
        return value, Field(span, "")

    def unit(label: str, base: float, fields: list[Field]) -> NetworkUnit:
        return NetworkUnit(label, name, base, which, position, tag, tuple(fields))

    if kind == HYPERNET:
        found = read("", 1)
        return [unit(HYPERNET, found[0] if found else 1.0, [found[1] if found else Field(None, ":{}")])]
    te, unet = read("te", 1), read("unet", 2)
    # An implicit te is written as the second positional arg, or as te= beside a named unet.
    te_value, te_field = te if te else (1.0, Field(None, ":{}" if unet is None else ":te={}"))
    if unet is None:
        return [unit("lora", te_value, [te_field])]
    return [unit("lora te", te_value, [te_field]), unit("lora unet", unet[0], [unet[1]])]


def render_tag(tag: str, units: Sequence[NetworkUnit], strengths: Sequence[Optional[str]]) -> str:
    """The tag with each unit's value replaced by its strength text; None leaves a unit's value as written."""
    spans = []  # (start, end, text)
    inserts = []
    for unit, text in zip(units, strengths):
        if text is None:
            continue
        for field in unit.fields:
            if field.span is None:
                inserts.append(field.insert.format(text))
            else:
                spans.append((*field.span, text))
    out = tag
    for start, end, text in sorted(spans, reverse=True):
        out = out[:start] + text + out[end:]
    return out[:-1] + "".join(inserts) + out[-1:]


def prompt_network_units(text: str, which: str, skip_unreadable: bool = False) -> list[NetworkUnit]:
    """Every pinnable strength of a prompt's tags, in order; an unreadable tag is an error, or
    left out with ``skip_unreadable`` (as the hosts leave it unapplied)."""
    units: list[NetworkUnit] = []
    for match in EXTRA_NETWORK_TAG.finditer(text):
        try:
            units.extend(tag_units(match.group(0), match.start(), which))
        except PromptError:
            if not skip_unreadable:
                raise
    return units


def has_network_tags(text: str) -> bool:
    """Whether the text holds a LoRA or hypernetwork tag, readable or not."""
    return any(m.group(1) in (*LORA_KINDS, HYPERNET) for m in EXTRA_NETWORK_TAG.finditer(text))


def strength_range(renderer) -> tuple[float, float]:
    """The renderer's (least, most) strength, else the default range."""
    found = getattr(renderer, "network_strength_range", None)
    low, high = found() if callable(found) else (found or (-MAX_NETWORK_STRENGTH, MAX_NETWORK_STRENGTH))
    return float(low), float(high)


def check_strengths(units: Sequence[NetworkUnit], low: float, high: float) -> None:
    """Refuse a user's strength outside the renderer's range."""
    for unit in units:
        if not low <= unit.base <= high:
            raise PromptError(f"{unit.prompt} prompt: {unit.tag} at character {unit.position}: strength "
                              f"{unit.base:g} is outside the renderer's range {low:g} .. {high:g}", unit.position)


def check_names(units: Sequence[NetworkUnit], available: Mapping[str, Sequence[str]]) -> None:
    """Refuse a network the renderer does not have, naming the ones it has.

    ``available``: kind ("lora", "hypernet") -> names; LyCORIS tags look among the LoRAs. A kind
    the mapping leaves out is not checked (the renderer cannot list it).
    """
    for unit in units:
        kind = "lora" if unit.kind.startswith("lora") else HYPERNET
        if kind not in available:
            continue
        names = list(available.get(kind, ()))
        if unit.name not in names:
            listed = ", ".join(sorted(names)[:40]) + (" ..." if len(names) > 40 else "") if names else "none"
            raise PromptError(f"{unit.prompt} prompt: {unit.tag} at character {unit.position}: the renderer has "
                              f"no {'LoRA' if kind == 'lora' else 'hypernetwork'} named {unit.name!r}; it has: "
                              f"{listed}", unit.position)
