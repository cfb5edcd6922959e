"""The built-in model's denoiser: layouts with Gaussian colours, with guidance.

Latents have three colour channels and a structure channel (latents.py). A
picture of layout l with colours f (shape) and b (background) has the latent

    colour channel c:  f_c U_l + b_c V_l + o,  U_l = 2 s m_l,  V_l = 2 s g_l (1 - m_l),  o = -s
    structure:         K_l + o,                K_l = 2 s n_l

with m_l, g_l the layout's coverage and shade under the prompt's geometry,
n_l its coverage as drawn (no geometry), s the latent scale. The layouts
are a uniform mixture; the colours have the conditioning row's prior
f_c ~ N(mu_f, s_f^2), b_c ~ N(mu_b, s_b^2). For x = z + sigma * noise:

- Layout weights come from the structure channel alone: the exact posterior
  of a uniform mixture of points, softmax_l(((x_s - o) . K_l - |K_l|^2 / 2) / sigma^2).
  They depend on neither the prompt nor the colours, so a seed keeps its
  layout while weights move (as a seed keeps its composition in Stable
  Diffusion), and guidance never acts on them.
- Given the layout, the colours' posterior is exact: with B = [U V],
  y = B^T (x_c - o), P = diag(1 / s_f^2, 1 / s_b^2) + B^T B / sigma^2 and
  h = S^-1 mu + y / sigma^2, the posterior colours are P^-1 h. B^T B is three
  numbers per layout, so every solve is 2x2.

The denoised latent is the layout-weighted mix of B P^-1 h + o and K + o.
Guidance as in Stable Diffusion, D_u + scale (D_c - D_u): cond and uncond
share the geometry and the layout weights, only their colour priors differ,
so guidance moves colours along the images and never off them.

Determinism: the large products run one row at a time, always with the same
shapes, and everything else is elementwise or a per-row reduction, so an
image does not depend on the rows packed around it.

Every operation here is small (a row's products are 3 x P by P x 2L), so
more torch threads only add synchronisation; the renderer samples on one
(``one_thread``). Results do not depend on the thread count.
"""
from __future__ import annotations

from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import conditioning as cnd
from .latents import LATENT_CHANNELS, LATENT_SCALE, STRUCTURE, latent_size, tone
from .layouts import Layouts, coverage, draw_layouts, neutral_geometry

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0  # large enough that the start x barely favours any layout
SIGMA_FLOOR = 1e-6  # sigma 0 is treated as this
SUPERSAMPLE = 1  # coverage samples per latent cell along each axis
DECODE_SIGMA = 0.02  # the decoder reads the layout at this sigma, in latent units
DECODE_PRIOR_STD = 1.0  # the decoder's colour prior: nearly flat, so colours are fitted to the latent
DECODE_MIN_WEIGHT = 1e-6  # layouts below this decode weight are not drawn
BASES_CACHE_BYTES = 256 * 1024**2  # latent bases kept for this many bytes of geometries (at least 2)


@dataclass(frozen=True)
class Bases:
    """One geometry's latent bases: rows of ``stacked`` are U_1..U_L, V_1..V_L."""

    stacked: torch.Tensor  # (2L, P) float32
    stacked_t: torch.Tensor  # (P, 2L) float32, contiguous
    uu: torch.Tensor  # (L,) float64
    uv: torch.Tensor
    vv: torch.Tensor
    ou: torch.Tensor  # o . U_l
    ov: torch.Tensor


class LayoutDenoiser:
    """k-diffusion-style model: ``model(x, sigma, cond=..., uncond=..., cond_scale=...)``.

    ``cond``/``uncond`` are (rows, FEATURE_SIZE) conditioning rows
    (conditioning.py), one per row of x, so a sampler can select rows of x and
    of the conditioning together.
    """

    sigma_min = SIGMA_MIN
    sigma_max = SIGMA_MAX

    def __init__(self, width: int, height: int, layouts: Layouts | None = None):
        check_size(width, height)
        self.width, self.height = width, height
        self.layouts = layouts or draw_layouts()
        self.latent_hw = latent_size(width, height)
        self.image_shape = (LATENT_CHANNELS, *self.latent_hw)
        self._cache: OrderedDict[bytes, Bases] = OrderedDict()
        structure = self._latent_bases(neutral_geometry())[0]  # (L, P) float64
        self.structure = structure.float()
        self.structure_t = self.structure.t().contiguous()
        self.structure_half_sq = 0.5 * (structure * structure).sum(1)
        self.structure_offset = LATENT_SCALE * structure.sum(1)  # -o . K_l

    @property
    def layout_count(self) -> int:
        return len(self.layouts)

    # -- geometry -> bases ---------------------------------------------------------------
    def bases(self, geometry: torch.Tensor) -> Bases:
        """The latent bases of every layout under a geometry vector (cached)."""
        geometry = geometry.double().contiguous()
        key = geometry.numpy().tobytes()
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        u, v = self._latent_bases(geometry)
        stacked = torch.cat([u, v]).float()
        found = Bases(stacked=stacked, stacked_t=stacked.t().contiguous(),
                      uu=(u * u).sum(1), uv=(u * v).sum(1), vv=(v * v).sum(1),
                      ou=-LATENT_SCALE * u.sum(1), ov=-LATENT_SCALE * v.sum(1))
        self._cache[key] = found
        entry_bytes = 2 * stacked.numel() * stacked.element_size()
        while len(self._cache) > max(2, BASES_CACHE_BYTES // entry_bytes):
            self._cache.popitem(last=False)
        return found

    def _latent_bases(self, geometry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, V), each (L, P) float64, on the latent grid (supersampled, then area-averaged)."""
        h, w = self.latent_hw
        mask, shade = coverage(self.layouts, geometry, self.width, self.height, w * SUPERSAMPLE, h * SUPERSAMPLE)
        u = F.avg_pool2d(mask[:, None], SUPERSAMPLE)[:, 0].reshape(len(self.layouts), -1)
        v = F.avg_pool2d((shade * (1.0 - mask))[:, None], SUPERSAMPLE)[:, 0].reshape(len(self.layouts), -1)
        return 2.0 * LATENT_SCALE * u.double(), 2.0 * LATENT_SCALE * v.double()

    def _row_bases(self, cond: torch.Tensor) -> list[Bases]:
        return [self.bases(row[cnd.GEOMETRY]) for row in cond]

    # -- the closed form -------------------------------------------------------------------
    def layout_weights(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """(rows, L) float64 posterior of the layouts from the structure channel."""
        flat = x[:, STRUCTURE].float().reshape(x.shape[0], 1, -1)
        fit = torch.stack([flat[r] @ self.structure_t for r in range(x.shape[0])])[:, 0].double()
        fit = (fit + self.structure_offset - self.structure_half_sq) / (sigma.double() ** 2)[:, None]
        return torch.softmax(fit, dim=1)

    def _projections(self, x: torch.Tensor, bases: list[Bases]) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_u, y_v), each (rows, 3, L) float64: B^T (x - o) per row, colour channel and layout."""
        L = self.layout_count
        flat = x[:, :STRUCTURE].float().reshape(x.shape[0], STRUCTURE, -1)
        proj = torch.stack([flat[r].contiguous() @ b.stacked_t for r, b in enumerate(bases)]).double()
        ou = torch.stack([b.ou for b in bases])[:, None, :]
        ov = torch.stack([b.ov for b in bases])[:, None, :]
        return proj[..., :L] - ou, proj[..., L:] - ov

    def colours(self, y_u: torch.Tensor, y_v: torch.Tensor, sigma: torch.Tensor, prior: torch.Tensor,
                bases: list[Bases]) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (shape colours, background colours), each (rows, 3, L) float64, given each layout."""
        prior = prior.double()
        inv_var = 1.0 / (sigma.double() ** 2)[:, None, None]
        fg_prec = 1.0 / prior[:, cnd.FG_STD, None] ** 2
        bg_prec = 1.0 / prior[:, cnd.BG_STD, None] ** 2
        uu = torch.stack([b.uu for b in bases])[:, None, :]
        uv = torch.stack([b.uv for b in bases])[:, None, :]
        vv = torch.stack([b.vv for b in bases])[:, None, :]
        p11, p12, p22 = fg_prec + uu * inv_var, uv * inv_var, bg_prec + vv * inv_var
        h1 = fg_prec * prior[:, cnd.FG_MEAN, None] + y_u * inv_var
        h2 = bg_prec * prior[:, cnd.BG_MEAN, None] + y_v * inv_var
        det = p11 * p22 - p12 * p12
        return (p22 * h1 - p12 * h2) / det, (p11 * h2 - p12 * h1) / det

    def _coefficients(self, weights, y_u, y_v, sigma, prior, bases) -> torch.Tensor:
        """(rows, 3, 2L) float64 weights of U_1..U_L, V_1..V_L in the colour channels' posterior mean."""
        fg, bg = self.colours(y_u, y_v, sigma, prior, bases)
        return torch.cat([weights[:, None, :] * fg, weights[:, None, :] * bg], dim=2)

    def __call__(self, x: torch.Tensor, sigma, cond: torch.Tensor, uncond: torch.Tensor | None = None,
                 cond_scale: float = 1.0) -> torch.Tensor:
        rows = x.shape[0]
        self._check(x, cond, "cond")
        sigma = _per_row(sigma, rows).double().clamp_min(SIGMA_FLOOR)
        bases = self._row_bases(cond)
        weights = self.layout_weights(x, sigma)
        y_u, y_v = self._projections(x, bases)
        coefficients = self._coefficients(weights, y_u, y_v, sigma, cond, bases)
        if uncond is not None and cond_scale != 1.0:
            self._check(x, uncond, "uncond")
            if not torch.equal(uncond[:, cnd.GEOMETRY].double(), cond[:, cnd.GEOMETRY].double()):
                raise ValueError("uncond must carry the same geometry as cond (conditioning_rows gives both)")
            negative = self._coefficients(weights, y_u, y_v, sigma, uncond, bases)
            coefficients = negative + float(cond_scale) * (coefficients - negative)
        coefficients, weights = coefficients.float(), weights.float()
        out = torch.empty((rows, LATENT_CHANNELS, self.latent_hw[0] * self.latent_hw[1]))
        for r, b in enumerate(bases):
            out[r, :STRUCTURE] = coefficients[r] @ b.stacked
            out[r, STRUCTURE] = weights[r] @ self.structure
        return (out - LATENT_SCALE).reshape(x.shape)

    # -- decoding ----------------------------------------------------------------------------
    def decoded_layouts(self, latents: torch.Tensor, cond: torch.Tensor):
        """What the decoder reads from final latents: each row's layout weights and the posterior
        foreground and background colours of every layout (under a nearly flat colour prior)."""
        rows = latents.shape[0]
        bases = self._row_bases(cond)
        flat = cnd.pair_conditioning("", "")[1][None].repeat(rows, 1)
        flat[:, cnd.FG_STD] = flat[:, cnd.BG_STD] = DECODE_PRIOR_STD
        sigma = torch.full((rows,), DECODE_SIGMA, dtype=torch.float64)
        weights = self.layout_weights(latents, sigma)
        y_u, y_v = self._projections(latents, bases)
        fg, bg = self.colours(y_u, y_v, sigma, flat, bases)
        return weights, fg, bg

    def decode(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Final latents (rows, 4, h, w) to images (rows, 3, H, W) float32 in [0, 1].

        The structure channel at DECODE_SIGMA picks the layouts (in practice
        one); the colour channels give their colours (under a nearly flat prior).
        Those layouts are drawn at full resolution under the row's geometry,
        in their toned colours (latents.tone), and mixed by weight.
        """
        rows = latents.shape[0]
        self._check(latents, cond, "cond")
        weights, fg, bg = self.decoded_layouts(latents, cond)
        out = torch.empty((rows, 3, self.height, self.width))
        for group in _rows_by_geometry(cond):
            # One drawing per geometry: every layout any of its rows needs.
            needed = [(weights[r] > DECODE_MIN_WEIGHT).nonzero().flatten() for r in group]
            drawn = torch.unique(torch.cat(needed))
            mask, shade = coverage(self.layouts, cond[group[0], cnd.GEOMETRY], self.width, self.height,
                                   self.width, self.height, select=drawn)
            back = shade * (1.0 - mask)
            for r, chosen in zip(group, needed):
                at = torch.searchsorted(drawn, chosen)
                share = (weights[r, chosen] / weights[r, chosen].sum()).float()
                f, b = tone(fg[r][:, chosen].float()), tone(bg[r][:, chosen].float())  # (3, k)
                picture = f[:, :, None, None] * mask[at][None] + b[:, :, None, None] * back[at][None]
                out[r] = (picture * share[None, :, None, None]).sum(1)
        return out.clamp_(0.0, 1.0)

    def _check(self, x: torch.Tensor, rows: torch.Tensor, name: str) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must be (rows, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        if rows.ndim != 2 or rows.shape != (x.shape[0], cnd.FEATURE_SIZE):
            raise ValueError(f"{name} must be (rows, features) = ({x.shape[0]}, {cnd.FEATURE_SIZE}), "
                             f"got {tuple(rows.shape)}")


@contextmanager
def one_thread():
    """Run the enclosed torch operations on one intra-op thread, then restore the count.

    Changing the count is cheap, but the first parallel operation after it
    rebuilds the thread pool: change it once per render, not per step.
    """
    before = torch.get_num_threads()
    if before != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before != 1:
            torch.set_num_threads(before)


def _rows_by_geometry(cond: torch.Tensor) -> list[list[int]]:
    """Row indices grouped by equal geometry, in order of first appearance."""
    groups: dict[bytes, list[int]] = {}
    for r, row in enumerate(cond):
        groups.setdefault(row[cnd.GEOMETRY].double().contiguous().numpy().tobytes(), []).append(r)
    return list(groups.values())


def check_size(width, height) -> None:
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 8:
            raise ValueError(f"{name} must be a whole number of pixels >= 8, got {value!r}")


def _per_row(sigma, rows: int) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if sigma.ndim == 0:
        return sigma.expand(rows)
    if sigma.shape != (rows,):
        raise ValueError(f"sigma must be a scalar or one value per row ({rows}), got shape {tuple(sigma.shape)}")
    return sigma.float()
