"""The exact denoiser of the built-in model's layouts with Gaussian colours.

Latents are images area-averaged onto the latent grid, mapped to [-1, 1] and
scaled (latents.py). A picture of layout l with colours f (shape) and b
(background) has, per channel c, the latent

    z_c = f_c U_l + b_c V_l + o,   U_l = 2 s m_l,  V_l = 2 s g_l (1 - m_l),  o = -s

(m_l, g_l: the layout's coverage and shade on the latent grid, s the latent
scale). With the prior f_c ~ N(mu_f, s_f^2), b_c ~ N(mu_b, s_b^2) from the
conditioning row and x = z + sigma * noise, each layout is a Gaussian and
the data a uniform mixture of them. Per (row, layout, channel) with
B = [U V], y = B^T (x - o) and

    P = diag(1 / s_f^2, 1 / s_b^2) + B^T B / sigma^2,   h = S^-1 mu + y / sigma^2,

the posterior colours are P^-1 h and the layout's log evidence is, up to
terms shared by all layouts, sum_c (h^T P^-1 h - log det P) / 2. The
posterior mean is the evidence-weighted mix of B P^-1 h + o. B^T B is three
numbers per layout (U.U, U.V, V.V), so every solve is 2x2; the only large
products are x . U and x . V.

Guidance as in Stable Diffusion, D_u + scale (D_c - D_u): cond and uncond
share the geometry (the layouts' shapes), only their colour priors differ,
so both denoise onto the same images and guidance stays on them.

Determinism: the large products run one row at a time, always with the same
shapes, and everything else is elementwise or a per-row reduction, so an
image does not depend on the rows packed around it.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import conditioning as cnd
from .latents import LATENT_SCALE, latent_size
from .layouts import Layouts, coverage, draw_layouts

SIGMA_MIN = 0.002
SIGMA_MAX = 80.0  # large enough that the start x barely favours any layout
SIGMA_FLOOR = 1e-6  # sigma 0 is treated as this
SUPERSAMPLE = 2  # coverage samples per latent cell along each axis
DECODE_SIGMA = 0.02  # the decoder's layout posterior, in latent units
DECODE_MIN_WEIGHT = 1e-6  # layouts below this decode weight are not drawn
BASES_CACHED = 32  # geometries whose latent bases are kept


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
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 8:
                raise ValueError(f"{name} must be a whole number of pixels >= 8, got {value!r}")
        self.width, self.height = width, height
        self.layouts = layouts or draw_layouts()
        self.latent_hw = latent_size(width, height)
        self.image_shape = (3, *self.latent_hw)
        self._cache: OrderedDict[bytes, Bases] = OrderedDict()

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
        h, w = self.latent_hw
        mask, shade = coverage(self.layouts, geometry, self.width, self.height, w * SUPERSAMPLE, h * SUPERSAMPLE)
        u = F.avg_pool2d(mask[:, None], SUPERSAMPLE)[:, 0].reshape(len(self.layouts), -1)
        v = F.avg_pool2d((shade * (1.0 - mask))[:, None], SUPERSAMPLE)[:, 0].reshape(len(self.layouts), -1)
        u, v = 2.0 * LATENT_SCALE * u.double(), 2.0 * LATENT_SCALE * v.double()
        stacked = torch.cat([u, v]).float()
        found = Bases(stacked=stacked, stacked_t=stacked.t().contiguous(),
                      uu=(u * u).sum(1), uv=(u * v).sum(1), vv=(v * v).sum(1),
                      ou=-LATENT_SCALE * u.sum(1), ov=-LATENT_SCALE * v.sum(1))
        self._cache[key] = found
        while len(self._cache) > BASES_CACHED:
            self._cache.popitem(last=False)
        return found

    def _row_bases(self, cond: torch.Tensor) -> list[Bases]:
        return [self.bases(row[cnd.GEOMETRY]) for row in cond]

    # -- the closed form -------------------------------------------------------------------
    def _projections(self, x: torch.Tensor, bases: list[Bases]) -> tuple[torch.Tensor, torch.Tensor]:
        """(y_u, y_v), each (rows, 3, L) float64: B^T (x - o) per row, channel and layout."""
        L = self.layout_count
        flat = x.float().reshape(x.shape[0], 3, -1)
        proj = torch.stack([flat[r].contiguous() @ b.stacked_t for r, b in enumerate(bases)]).double()
        ou = torch.stack([b.ou for b in bases])[:, None, :]
        ov = torch.stack([b.ov for b in bases])[:, None, :]
        return proj[..., :L] - ou, proj[..., L:] - ov

    def posterior(self, y_u: torch.Tensor, y_v: torch.Tensor, sigma: torch.Tensor, prior: torch.Tensor,
                  bases: list[Bases]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(layout weights (rows, L), shape colours (rows, 3, L), background colours (rows, 3, L))."""
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
        fg = (p22 * h1 - p12 * h2) / det
        bg = (p11 * h2 - p12 * h1) / det
        evidence = (0.5 * (h1 * fg + h2 * bg) - 0.5 * det.log()).sum(1)
        return torch.softmax(evidence, dim=1), fg, bg

    def _coefficients(self, y_u, y_v, sigma, prior, bases) -> torch.Tensor:
        """(rows, 3, 2L) float64 weights of U_1..U_L, V_1..V_L in the posterior mean."""
        weights, fg, bg = self.posterior(y_u, y_v, sigma, prior, bases)
        return torch.cat([weights[:, None, :] * fg, weights[:, None, :] * bg], dim=2)

    def __call__(self, x: torch.Tensor, sigma, cond: torch.Tensor, uncond: torch.Tensor | None = None,
                 cond_scale: float = 1.0) -> torch.Tensor:
        rows = x.shape[0]
        self._check(x, cond, "cond")
        sigma = _per_row(sigma, rows).double().clamp_min(SIGMA_FLOOR)
        bases = self._row_bases(cond)
        y_u, y_v = self._projections(x, bases)
        coefficients = self._coefficients(y_u, y_v, sigma, cond, bases)
        if uncond is not None and cond_scale != 1.0:
            self._check(x, uncond, "uncond")
            if not torch.equal(uncond[:, cnd.GEOMETRY].double(), cond[:, cnd.GEOMETRY].double()):
                raise ValueError("uncond must carry the same geometry as cond (conditioning_rows gives both)")
            negative = self._coefficients(y_u, y_v, sigma, uncond, bases)
            coefficients = negative + float(cond_scale) * (coefficients - negative)
        coefficients = coefficients.float()
        out = torch.stack([coefficients[r] @ b.stacked for r, b in enumerate(bases)]) - LATENT_SCALE
        return out.reshape(x.shape)

    # -- decoding ----------------------------------------------------------------------------
    def decode(self, latents: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Final latents (rows, 3, h, w) to images (rows, 3, H, W) float32 in [0, 1].

        The layout posterior at DECODE_SIGMA under a broad colour prior picks the
        layouts (in practice one) and their colours; those layouts are drawn at
        full resolution under the row's geometry and mixed by weight.
        """
        rows = latents.shape[0]
        self._check(latents, cond, "cond")
        bases = self._row_bases(cond)
        broad = cnd.pair_conditioning("", "")[1][None].expand(rows, -1)
        sigma = torch.full((rows,), DECODE_SIGMA, dtype=torch.float64)
        y_u, y_v = self._projections(latents, bases)
        weights, fg, bg = self.posterior(y_u, y_v, sigma, broad, bases)
        out = torch.empty((rows, 3, self.height, self.width))
        for r in range(rows):
            chosen = (weights[r] > DECODE_MIN_WEIGHT).nonzero().flatten()
            share = (weights[r, chosen] / weights[r, chosen].sum()).float()
            mask, shade = coverage(self.layouts, cond[r, cnd.GEOMETRY], self.width, self.height,
                                   self.width, self.height, select=chosen)
            back = shade * (1.0 - mask)
            f, b = fg[r][:, chosen].float(), bg[r][:, chosen].float()  # (3, k)
            picture = f[:, :, None, None] * mask[None] + b[:, :, None, None] * back[None]  # (3, k, H, W)
            out[r] = (picture * share[None, :, None, None]).sum(1)
        return out.clamp_(0.0, 1.0)

    def _check(self, x: torch.Tensor, rows: torch.Tensor, name: str) -> None:
        if tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must be (rows, {', '.join(map(str, self.image_shape))}), got {tuple(x.shape)}")
        if rows.ndim != 2 or rows.shape != (x.shape[0], cnd.FEATURE_SIZE):
            raise ValueError(f"{name} must be (rows, features) = ({x.shape[0]}, {cnd.FEATURE_SIZE}), "
                             f"got {tuple(rows.shape)}")


def _per_row(sigma, rows: int) -> torch.Tensor:
    sigma = torch.as_tensor(sigma, dtype=torch.float32)
    if sigma.ndim == 0:
        return sigma.expand(rows)
    if sigma.shape != (rows,):
        raise ValueError(f"sigma must be a scalar or one value per row ({rows}), got shape {tuple(sigma.shape)}")
    return sigma.float()
