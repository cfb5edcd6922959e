"""The built-in model's extra networks: named LoRAs that shift the scene with their strength.

As in the hosts, ``<lora:name:w>`` tags are removed from the text before it
is parsed, and each known network adds its strength to tag weights of the
prompt it stands in (conditioning.py), so the scene answers a strength as
continuously as it answers an attention weight:

- ``palette``: the shape towards orange and the background towards blue;
- ``size``: larger shapes (a negative strength: smaller);
- ``placement``: the shape towards the top left.

The model has no separate text encoder and UNet: a tag with both strengths
acts with their mean. Hypernetworks are not part of the model. A tag that
cannot be read (a strength that is not a number) is removed and not applied,
as the hosts do (they log an error and go on); with ``network_units`` the run
refuses it before the first render.
"""
from __future__ import annotations

from ..prompt.attention import strip_extra_networks
from ..prompt.networks import prompt_network_units

# name -> (tag, weight added per unit of strength)
NETWORKS: dict[str, tuple[tuple[str, float], ...]] = {
    "palette": (("orange", 1.0), ("blue background", 1.0)),
    "size": (("large", 1.0),),
    "placement": (("left", 1.0), ("top", 1.0)),
}
STRENGTH_RANGE = (-4.0, 4.0)  # past 4 the colour and position pulls are saturated


def network_strengths(prompt: str) -> tuple[str, dict[str, float]]:
    """The prompt without its tags, and the summed strength of each known LoRA in it."""
    by_tag: dict[int, list] = {}  # tag position -> its units (te and unet of one LoRA: two)
    for unit in prompt_network_units(prompt, "positive", skip_unreadable=True):  # unreadable: not applied
        if unit.kind.startswith("lora") and unit.name in NETWORKS:
            by_tag.setdefault(unit.position, []).append(unit)
    totals: dict[str, float] = {}
    for units in by_tag.values():
        name = units[0].name
        totals[name] = totals.get(name, 0.0) + sum(u.base for u in units) / len(units)
    return strip_extra_networks(prompt)[0], totals


def with_networks(tags: dict[str, float], strengths: dict[str, float]) -> dict[str, float]:
    """The tag weights with each network's strength added."""
    out = dict(tags)
    for name, strength in strengths.items():
        for tag, gain in NETWORKS[name]:
            out[tag] = out.get(tag, 0.0) + gain * strength
    return out
