"""Tag targets: pin a prompt to wanted and unwanted tags, scored by a tagger.

A tag target is a list of wanted tags and a list of unwanted tags, each with a
weight, written as A1111 prompts are: ``red, (circle:1.5), [blue]`` (``(x)``
multiplies by 1.1, ``[x]`` divides by 1.1, ``(x:w)`` sets w). The tag loss of
one image is

    sum over wanted tags   w * (1 - p(tag))  +  sum over unwanted tags  w * p(tag)

from a tagger's probabilities, and the tag loss of a batch the mean over its
images. With hyperbatch weights the images are grouped by ancestor at each
doubling level K as the image loss groups them: X_K is the mean over the groups
of the group's mean tag loss, and the levels combine with the same weight type
and scale (``levels.combine_levels``). The run's loss is then

    image loss + tag_loss_weight * tag loss      (or the weighted tag loss alone)

A tagger is anything with a ``name`` and ``probabilities(images, tags, batch=None)``
returning a (B, T) array in [0, 1] for a (B, 3, H, W) sRGB batch: images in, a
probability per tag out (``batch`` is the RenderedBatch, for a renderer that
knows its own tags' posterior). It may have ``check(tags)``, which refuses tags
it does not know before the run starts. ``TaggerUnavailable`` is its clear
refusal to run at all.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import numpy as np
import torch

from .levels import combine_levels, union_ancestors
from .loss import LossResult

MAX_TAGS = 64  # wanted and unwanted together
MAX_TAG_WEIGHT = 100.0
TAGGERS = ("auto", "builtin", "deepbooru", "wd14")
_WEIGHTED = re.compile(r"^\((.+):\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*\)$")


class TagTargetError(ValueError):
    """A tag target that cannot be read; the message names the option."""


class TaggerUnavailable(ValueError):
    """A tagger that cannot run here (not installed, or its weights cannot be had): a clear refusal."""


class Tagger(Protocol):
    name: str

    def probabilities(self, images: torch.Tensor, tags: Sequence[str], batch: Any = None) -> np.ndarray: ...


@dataclass(frozen=True)
class TagTarget:
    wanted: tuple[tuple[str, float], ...] = ()
    unwanted: tuple[tuple[str, float], ...] = ()

    @property
    def tags(self) -> list[str]:
        """Every tag, wanted first, each once."""
        return list(dict.fromkeys([t for t, _ in self.wanted] + [t for t, _ in self.unwanted]))

    def __bool__(self) -> bool:
        return bool(self.wanted or self.unwanted)

    def image_losses(self, probabilities: np.ndarray) -> np.ndarray:
        """(B,) tag loss of each image from (B, T) probabilities in ``tags`` order."""
        p = np.asarray(probabilities, dtype=np.float64)
        column = {tag: k for k, tag in enumerate(self.tags)}
        out = np.zeros(p.shape[0])
        for tag, weight in self.wanted:
            out += weight * (1.0 - p[:, column[tag]])
        for tag, weight in self.unwanted:
            out += weight * p[:, column[tag]]
        return out


def parse_tag_list(text: Any, option: str) -> tuple[tuple[str, float], ...]:
    """``red, (circle:1.5), [blue]`` -> ((tag, weight), ...); tags lower-cased, spaces squeezed."""
    if text is None:
        return ()
    if not isinstance(text, str):
        raise TagTargetError(f"{option}: must be text (comma-separated tags), got {type(text).__name__}")
    out: dict[str, float] = {}
    for raw in text.split(","):
        item, weight = raw.strip(), 1.0
        if not item:
            continue
        match = _WEIGHTED.match(item)
        if match:
            item, weight = match.group(1).strip(), float(match.group(2))
        else:
            while len(item) > 2 and item[0] + item[-1] in ("()", "[]"):
                weight *= 1.1 if item[0] == "(" else 1 / 1.1
                item = item[1:-1].strip()
        tag = " ".join(item.replace("_", " ").lower().split())
        if not tag or any(c in tag for c in "()[]:"):
            raise TagTargetError(f"{option}: cannot read the tag {raw.strip()!r}; write tag, (tag:1.2), (tag) or [tag]")
        if not math.isfinite(weight) or weight <= 0 or weight > MAX_TAG_WEIGHT:
            raise TagTargetError(f"{option}: the weight of {tag!r} must be > 0 and <= {MAX_TAG_WEIGHT:g}, got {weight:g}")
        out[tag] = weight
    return tuple(out.items())


def tag_target(config) -> TagTarget:
    """The tag target of a PinningConfig (empty when it names no tags)."""
    target = TagTarget(parse_tag_list(config.wanted_tags, "wanted_tags"),
                       parse_tag_list(config.unwanted_tags, "unwanted_tags"))
    both = {t for t, _ in target.wanted} & {t for t, _ in target.unwanted}
    if both:
        raise TagTargetError(f"unwanted_tags: {sorted(both)[0]!r} is also a wanted tag")
    if len(target.tags) > MAX_TAGS:
        raise TagTargetError(f"wanted_tags: {len(target.tags)} tags in all; at most {MAX_TAGS}")
    return target


def level_means(values: np.ndarray, ancestors: np.ndarray) -> np.ndarray:
    """X_K per level: the mean over ancestor groups of the group's mean value."""
    return np.array([np.mean([values[ancestors[:, k] == g].mean() for g in np.unique(ancestors[:, k])])
                     for k in range(ancestors.shape[1])])


@dataclass
class TaggedLossResult(LossResult):
    image_value: float = 0.0  # the image (FLIP) loss alone
    tag_value: float = 0.0  # the tag loss (level-combined), before its weight
    tag_probabilities: dict[str, float] = field(default_factory=dict)  # mean over the batch, per tag


class TaggedLoss:
    """An image loss (``loss.PinningLoss``) with a tag loss added; the same interface."""

    def __init__(self, image_loss, target: TagTarget, tagger: Tagger, weight: float = 1.0, tags_only: bool = False):
        self.image_loss, self.target, self.tagger = image_loss, target, tagger
        self.weight, self.tags_only = float(weight), bool(tags_only)

    def __getattr__(self, name: str):  # set_targets, set_mask, n_targets, ... of the image loss
        return getattr(self.image_loss, name)

    def evaluate(self, images, traces=None, seeds=None, batches: Optional[Sequence[Any]] = None):
        result = self.image_loss.evaluate(images, traces, seeds=seeds)
        return self._tagged(result, images, traces, batches[0] if batches else None)

    def evaluate_many(self, images_list, traces_list=None, seeds_list=None, batches: Optional[Sequence[Any]] = None):
        results = self.image_loss.evaluate_many(images_list, traces_list, seeds_list=seeds_list)
        traces_list = traces_list or [None] * len(results)
        return [self._tagged(r, im, tr, batches[k] if batches else None)
                for k, (r, im, tr) in enumerate(zip(results, images_list, traces_list))]

    def _tagged(self, result: LossResult, images, traces, batch) -> TaggedLossResult:
        tags = self.target.tags
        p = np.asarray(self.tagger.probabilities(images, tags, batch), dtype=np.float64)
        if p.shape != (images.shape[0], len(tags)) or not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
            raise ValueError(f"tagger {self.tagger.name!r}: expected ({images.shape[0]}, {len(tags)}) probabilities "
                             f"in [0, 1], got {p.shape}")
        tag_value = self._combined(self.target.image_losses(p), traces)
        # tags only: the image loss is left out, the fade guard's term (part of the record) stays
        value = self.weight * tag_value + (result.fade_penalty if self.tags_only else result.value)
        fields = {name: getattr(result, name) for name in LossResult.__dataclass_fields__}
        fields["value"] = value
        return TaggedLossResult(**fields, image_value=result.value, tag_value=tag_value,
                                tag_probabilities={t: float(v) for t, v in zip(tags, p.mean(axis=0))})

    def _combined(self, per_image: np.ndarray, traces) -> float:
        loss = self.image_loss
        if not loss.hyperbatch_weights:
            return float(per_image.mean())
        if traces is None:
            traces = np.arange(per_image.size)[:, None]  # a plain sampler: each image its own root
        ancestors = union_ancestors(0, np.asarray(traces))
        return combine_levels(level_means(per_image, ancestors), loss.weight_type, loss.weight_scale)


def tag_inputs(loss, batches: Sequence[Any]) -> dict[str, Any]:
    """Extra arguments of a loss call: the rendered batches, for a loss with tags."""
    return {"batches": list(batches)} if isinstance(loss, TaggedLoss) else {}


def tag_extra(loss_result) -> dict[str, Any]:
    """What an evaluation records about tags (nothing without them)."""
    if not isinstance(loss_result, TaggedLossResult):
        return {}
    return {"tags": dict(loss_result.tag_probabilities), "tag_loss": loss_result.tag_value,
            "image_loss": loss_result.image_value}


TAG_EXTRA_KEYS = ("tags", "tag_loss", "image_loss")


def tag_extra_problem(extra: dict[str, Any]) -> Optional[str]:
    """What is wrong with an evaluation log line's tag entries (for resume), or None."""
    tags = extra.get("tags")
    if tags is not None and (not isinstance(tags, dict) or len(tags) > MAX_TAGS or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
            for k, v in tags.items())):
        return f"extra.tags must map at most {MAX_TAGS} tags to probabilities in [0, 1]"
    for name in ("tag_loss", "image_loss"):
        value = extra.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            return f"extra.{name} must be a finite number >= 0"
    return None


def with_tags(loss, config, renderer):
    """``loss`` with the config's tag target added, or ``loss`` itself when it names no tags."""
    target = tag_target(config)
    if not target:
        return loss
    tagger = resolve_tagger(config.tagger, renderer)
    check = getattr(tagger, "check", None)  # optional: refuse tags it does not know before the run starts
    if check is not None:
        check(target.tags)
    return TaggedLoss(loss, target, tagger, config.tag_loss_weight, config.tag_loss_only)


def resolve_tagger(name: str, renderer) -> Tagger:
    """The tagger named by the option: the renderer offers its own (``taggers``)."""
    offer = getattr(renderer, "tagger", None)
    if offer is None:
        raise TaggerUnavailable(f"tagger: the renderer {getattr(renderer, 'name', '?')!r} offers no tagger; "
                                "tag targets need the built-in model or the WebUI")
    return offer(name)
