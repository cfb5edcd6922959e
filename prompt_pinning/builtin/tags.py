"""The built-in model's exact tagger: the posterior of every tag of its vocabulary.

An image's final latent fixes a posterior over layouts (the structure channel,
as the decoder reads it) and, given a layout, the posterior colours of the
shape and the background (denoiser.py). A tag's probability is its expectation
under that posterior, sum_l w_l P(tag | layout l, colours):

- shape tags: the layout's shape, blended as the geometry blends the signed
  distances (own shape with weight OWN_SHAPE, each named shape with its share);
- colour tags ("red", and "red background" for the background): the colour
  name's posterior given the layout's colour, each name a Gaussian around its
  palette colour (latent colours) with the spread a weight-1 colour word gives,
  names equally likely a priori;
- size tags: small, medium, large as Gaussians in log radius around the radius
  each word pulls to, equally likely a priori;
- place tags: left/right/top/bottom: a logistic in the centre's offset from the
  middle; center: a Gaussian bump around the middle.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from . import conditioning as cnd
from .latents import untone
from .layouts import MEDIUM_RADIUS, PALETTE, SHAPES, placed

COLOUR_STD = cnd.BROAD_STD / math.sqrt(1.0 + cnd.COLOUR_NARROWING)  # a weight-1 colour word's spread
SIZE_RADII = {"small": MEDIUM_RADIUS * math.exp(-cnd.SIZE_GAIN), "medium": MEDIUM_RADIUS,
              "large": MEDIUM_RADIUS * math.exp(cnd.SIZE_GAIN)}
SIZE_STD = cnd.SIZE_GAIN / 2.0  # in log radius
SIDE_SCALE = 0.06  # logistic scale of left/right/top/bottom, in image fractions
CENTER_STD = 0.1
SIDES = ("left", "right", "top", "bottom", "center")
TAGS: tuple[str, ...] = (*SHAPES, *PALETTE, *(f"{c} background" for c in PALETTE), *SIZE_RADII, *SIDES)
TAG_INDEX = {tag: k for k, tag in enumerate(TAGS)}
_LATENT_PALETTE = torch.stack([untone(torch.tensor(PALETTE[c], dtype=torch.float64)) for c in PALETTE])  # (C, 3)


def _colour_names(colours: torch.Tensor) -> torch.Tensor:
    """(L, C) posterior of each colour name given (3, L) latent colours."""
    d2 = ((colours.T[:, None, :] - _LATENT_PALETTE[None]) ** 2).sum(-1)
    return torch.softmax(-d2 / (2.0 * COLOUR_STD ** 2), dim=1)


def _geometry_tags(layouts, geometry: torch.Tensor) -> torch.Tensor:
    """(L, shapes + sizes + sides) per-layout probabilities of the geometry tags."""
    from .layouts import OWN_SHAPE, SHAPE_MIX

    cx, cy, radius = placed(layouts, geometry)
    own = torch.nn.functional.one_hot(layouts.shape, len(SHAPES)).double() * float(geometry[OWN_SHAPE])
    shapes = own + geometry[SHAPE_MIX].double()[None]
    shapes = shapes / shapes.sum(1, keepdim=True)
    log_r = radius.log()[:, None]
    centres = torch.tensor([math.log(r) for r in SIZE_RADII.values()], dtype=torch.float64)[None]
    sizes = torch.softmax(-(log_r - centres) ** 2 / (2.0 * SIZE_STD ** 2), dim=1)
    sides = torch.stack([torch.sigmoid((0.5 - cx) / SIDE_SCALE), torch.sigmoid((cx - 0.5) / SIDE_SCALE),
                         torch.sigmoid((0.5 - cy) / SIDE_SCALE), torch.sigmoid((cy - 0.5) / SIDE_SCALE),
                         torch.exp(-((cx - 0.5) ** 2 + (cy - 0.5) ** 2) / (2.0 * CENTER_STD ** 2))], dim=1)
    return torch.cat([shapes, sizes, sides], dim=1)


def tag_posteriors(model, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """(rows, len(TAGS)) float64 probability of every tag for each final latent, as the decoder reads it."""
    rows = latents.shape[0]
    weights, fg, bg = model.decoded_layouts(latents, cond)
    out = torch.empty((rows, len(TAGS)), dtype=torch.float64)
    n_shapes, n_colours = len(SHAPES), len(PALETTE)
    for r in range(rows):
        geometry = _geometry_tags(model.layouts, cond[r, cnd.GEOMETRY])
        w = weights[r]
        out[r, :n_shapes] = w @ geometry[:, :n_shapes]
        out[r, n_shapes:n_shapes + n_colours] = w @ _colour_names(fg[r])
        out[r, n_shapes + n_colours:n_shapes + 2 * n_colours] = w @ _colour_names(bg[r])
        out[r, n_shapes + 2 * n_colours:] = w @ geometry[:, n_shapes:]
    return out.clamp_(0.0, 1.0)


class BuiltinTagger:
    """Reads the tag posteriors the built-in renderer returns with each batch."""

    name = "builtin"

    def check(self, tags: Sequence[str]) -> None:
        unknown = [t for t in tags if t not in TAG_INDEX]
        if unknown:
            raise ValueError(f"wanted_tags/unwanted_tags: the built-in model has no tag {unknown[0]!r}; its tags: "
                             f"{', '.join(TAGS)}")

    def probabilities(self, images: torch.Tensor, tags: Sequence[str], batch: Any = None) -> np.ndarray:
        self.check(tags)
        table = getattr(batch, "tag_probabilities", None)
        if table is None:
            raise ValueError("tagger 'builtin': this batch carries no tag posteriors; render with "
                             "BuiltinRenderer(tags=True) (a run asks for them itself)")
        return np.stack([np.asarray(table[t], dtype=np.float64) for t in tags], axis=1)
