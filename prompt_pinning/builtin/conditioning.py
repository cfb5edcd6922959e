"""From a prompt pair to the built-in model's conditioning.

A prompt is parsed with the attention syntax (``(word:1.3)``, ``(word)``,
``[word]``) into (word, weight) pairs, one per token. Emphasis works as in
A1111, which multiplies each token's text-encoder output by its weight and
rescales the whole to its original mean: every token has a fixed positive
"mean" m (from its text; 1 for the start, end and padding tokens of each
77-token chunk), and token i's effective weight is

    w_i * sum_j m_j / sum_j w_j m_j

so raising one word slightly lowers every other word's effect.

Words name tags (vocabulary.py); a colour word directly followed by
"background" names the background colour instead, with weight
colour-weight * background-weight. The effective tag weights give

- a colour prior: mean and standard deviation of the shape colour and of
  the background colour, per RGB channel. A colour word pulls the mean
  towards its palette colour and narrows the spread, both smoothly in its
  weight; no colour word leaves a broad prior. Guidance multiplies the
  difference of the means by the CFG scale, so at weight 1 the mean moves
  about 30% of the way and the guided colour is near the palette colour at
  CFG 3; higher scales saturate it. The spread comes from the positive
  prompt and is shared by cond and uncond.
- a geometry (shared by the pair): size words scale the radius (positive
  minus negative prompt), position words pull the centre towards a side,
  shape words morph every layout towards the named shapes (layouts.py).

The denoiser gets one row per image: cond = colour means of the positive
prompt + spreads + geometry, uncond = colour means of the negative prompt +
the same spreads and geometry. Unknown words change nothing but the emphasis normalisation.
Extra-network tags are removed before parsing; the model's own LoRAs
(networks.py) add their strengths to the tag weights.
"""
from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Callable, Iterable, Sequence

import torch

from ..prompt.attention import parse_prompt_attention
from . import layouts as geo
from .latents import untone
from .layouts import PALETTE, SHAPES, SIDE_TARGETS
from .networks import network_strengths, with_networks
from .tokenizer import split_words
from .vocabulary import BACKGROUND_WORDS, COLOUR_WORDS, WORD_TAGS, background_tag

CHUNK_TOKENS = 75  # a prompt's tokens per 77-token chunk (plus start and end)
BROAD_MEAN, BROAD_STD = 0.5, 0.25  # colour prior without colour words
COLOUR_PULL = 0.45  # the mean moves a share P W / (1 + P W) of the way to the named colour
COLOUR_NARROWING = 8.0  # the std is BROAD_STD / sqrt(1 + N W)
SIZE_GAIN = 0.3  # log radius per unit of (large - small) weight
MEDIUM_GAIN = 1.0  # pull towards the medium radius: G W / (1 + G W)
POSITION_GAIN = 1.5  # pull towards a side: G W / (1 + G W)
SHAPE_GAIN = 10.0  # a named shape's share of the blended distance: G W / (1 + sum G W)

# Row layout of a conditioning vector.
FG_MEAN, FG_STD, BG_MEAN, BG_STD = slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 12)
COLOUR_SIZE = 12
GEOMETRY = slice(COLOUR_SIZE, COLOUR_SIZE + geo.GEOMETRY_SIZE)
FEATURE_SIZE = COLOUR_SIZE + geo.GEOMETRY_SIZE

Parser = Callable[[str], Sequence[Sequence]]


def word_weights(prompt: str, parser: Parser | None = None) -> list[tuple[str, float]]:
    """(word, weight) for every token of the prompt, in order."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a string, got {type(prompt).__name__}")
    chunks = (parser or parse_prompt_attention)(prompt)
    pairs = []
    for chunk_text, weight in chunks:
        if chunk_text == "BREAK" and weight == -1:  # A1111's chunk separator
            continue
        pairs.extend((word, float(weight)) for word in split_words(chunk_text))
    return pairs


def token_mean(word: str) -> float:
    """A token's fixed positive 'mean output' in [0.5, 1.5], from its text."""
    return 0.5 + (zlib.crc32(word.encode("utf-8")) % 1001) / 1000.0


def effective_weights(pairs: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
    """(word, effective weight) after A1111's mean-restoring rescale.

    The padding of each 77-token chunk (start, end and filler tokens, weight 1)
    counts as in A1111, so in a short prompt one word's weight moves the others
    only a little. Where the weighted mean is not positive (negative weights)
    the weights are left as they are.
    """
    chunks = max(1, math.ceil(len(pairs) / CHUNK_TOKENS))
    padding = chunks * (CHUNK_TOKENS + 2) - len(pairs)
    means = [token_mean(word) for word, _ in pairs]
    before = sum(means) + padding
    after = sum(weight * mean for (_, weight), mean in zip(pairs, means)) + padding
    scale = before / after if after > 1e-6 * before else 1.0
    return [(word, weight * scale) for word, weight in pairs]


def tag_weights(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Total weight per tag named by the words (repeated tags add up)."""
    totals: dict[str, float] = {}
    for i, (word, weight) in enumerate(pairs):
        if word not in WORD_TAGS:
            continue
        following = pairs[i + 1] if i + 1 < len(pairs) else None
        if word in COLOUR_WORDS and following is not None and following[0] in BACKGROUND_WORDS:
            tag, weight = background_tag(word), weight * following[1]
        else:
            tag = WORD_TAGS[word]
        totals[tag] = totals.get(tag, 0.0) + weight
    return totals


def prompt_tags(prompt: str, parser: Parser | None = None) -> dict[str, float]:
    """Effective weight per tag of a prompt."""
    return tag_weights(effective_weights(word_weights(prompt, parser)))


def _colour_prior(weights: dict[str, float]) -> tuple[list[float], list[float]]:
    """(mean rgb, std rgb) from the colours named with positive weight (latent colours, see latents.tone)."""
    total = sum(max(w, 0.0) for w in weights.values())
    if total <= 0.0:
        return [BROAD_MEAN] * 3, [BROAD_STD] * 3
    palette = {name: untone(torch.tensor(PALETTE[name], dtype=torch.float64)).tolist() for name in weights}
    target = [sum(max(w, 0.0) * palette[name][c] for name, w in weights.items()) / total for c in range(3)]
    pull = COLOUR_PULL * total / (1.0 + COLOUR_PULL * total)
    std = BROAD_STD / math.sqrt(1.0 + COLOUR_NARROWING * total)
    return [BROAD_MEAN + pull * (t - BROAD_MEAN) for t in target], [std] * 3


def colour_features(tags: dict[str, float]) -> torch.Tensor:
    """(COLOUR_SIZE,) float64: shape and background colour priors."""
    fg = {t: w for t, w in tags.items() if t in PALETTE}
    bg = {t[: -len(" background")]: w for t, w in tags.items() if t.endswith(" background")}
    fg_mean, fg_std = _colour_prior(fg)
    bg_mean, bg_std = _colour_prior(bg)
    return torch.tensor(fg_mean + fg_std + bg_mean + bg_std, dtype=torch.float64)


def _pull(total: float, gain: float) -> float:
    total = max(total, 0.0)
    return gain * total / (1.0 + gain * total)


def _side(tags: dict[str, float], sides: tuple[str, ...]) -> tuple[float, float]:
    """(target, pull) along one axis from its side words and "center"."""
    weights = {s: max(tags.get(s, 0.0), 0.0) for s in (*sides, "center")}
    total = sum(weights.values())
    if total <= 0.0:
        return 0.5, 0.0
    target = sum(SIDE_TARGETS[s] * w for s, w in weights.items()) / total
    return target, _pull(total, POSITION_GAIN)


def geometry_features(positive: dict[str, float], negative: dict[str, float]) -> torch.Tensor:
    """(GEOMETRY_SIZE,) float64 geometry vector of a prompt pair (see layouts.py)."""
    g = geo.neutral_geometry()
    size = lambda tags: tags.get("large", 0.0) - tags.get("small", 0.0)
    g[geo.LOG_SCALE] = SIZE_GAIN * (size(positive) - size(negative))
    g[geo.MEDIUM_PULL] = _pull(positive.get("medium", 0.0), MEDIUM_GAIN)
    g[geo.TARGET_X], g[geo.PULL_X] = _side(positive, ("left", "right"))
    g[geo.TARGET_Y], g[geo.PULL_Y] = _side(positive, ("top", "bottom"))
    strengths = torch.tensor([SHAPE_GAIN * max(positive.get(s, 0.0), 0.0) * math.exp(-max(negative.get(s, 0.0), 0.0))
                              for s in SHAPES], dtype=torch.float64)
    total = 1.0 + float(strengths.sum())
    g[geo.OWN_SHAPE] = 1.0 / total
    g[geo.SHAPE_MIX] = strengths / total
    return g


def pair_conditioning(positive: str, negative: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond) (FEATURE_SIZE,) float64 rows of a prompt pair (new tensors; parsed once per pair)."""
    cond, uncond = _cached_pair(positive, negative)
    return cond.clone(), uncond.clone()


@lru_cache(maxsize=1024)
def _cached_pair(positive: str, negative: str) -> tuple[torch.Tensor, torch.Tensor]:
    (positive, pos_networks), (negative, neg_networks) = network_strengths(positive), network_strengths(negative)
    pos = with_networks(prompt_tags(positive), pos_networks)
    neg = with_networks(prompt_tags(negative), neg_networks)
    geometry = geometry_features(pos, neg)
    cond = torch.cat([colour_features(pos), geometry])
    uncond = torch.cat([colour_features(neg), geometry])
    # The spreads are shared too: guidance then shifts each colour's mean by
    # scale * (mean_c - mean_u) and keeps the sampler stable (with a narrower
    # cond than uncond spread, D_u + s (D_c - D_u) has slope 1 - s in x, and
    # coarse steps overshoot).
    uncond[FG_STD], uncond[BG_STD] = cond[FG_STD], cond[BG_STD]
    return cond, uncond


def conditioning_rows(pairs: Iterable[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(cond, uncond), each (len(pairs), FEATURE_SIZE) float64, one row per pair."""
    rows = [pair_conditioning(str(p), str(n)) for p, n in pairs]
    if not rows:
        empty = torch.zeros((0, FEATURE_SIZE), dtype=torch.float64)
        return empty, empty.clone()
    return torch.stack([c for c, _ in rows]), torch.stack([u for _, u in rows])
