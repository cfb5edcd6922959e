"""KDiffusionSampler as in modules/sd_samplers_kdiffusion.py, with a toy CFG denoiser.

The parts mirrored: ``KDiffusionSampler(funcname, sd_model)`` where funcname may be a
function object; ``sample()`` inspects the function's signature to pass ``sigmas`` and
``eta``, passes a per-image seeded ``noise_sampler`` when the entry's options have
"brownian_noise", sets ``self.p``, ``model_wrap_cfg.init_latent``/``mask``, and calls
``func(model_wrap_cfg, x, extra_args=..., disable=False, callback=..., **kwargs)`` with
extra_args = {cond: MulticondLearnedConditioning, image_cond, uncond: list, cond_scale,
s_min_uncond}. The denoiser, like the real CFGDenoiser, needs one cond entry, one uncond
entry and one image_cond row per row of x.
"""
import inspect

import torch

from modules import shared


class ToyCFGDenoiser:
    def __init__(self, sampler):
        self.sampler = sampler
        self.p = None
        self.mask = None
        self.init_latent = None
        self.step = 0

    def __call__(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        rows = x.shape[0]
        if not (len(cond.batch) == rows == len(uncond) == image_cond.shape[0] == sigma.shape[0]):
            raise RuntimeError(f"rows differ: x {rows}, cond {len(cond.batch)}, uncond {len(uncond)}, "
                               f"image_cond {image_cond.shape[0]}, sigma {sigma.shape[0]}")
        c = torch.stack([entry[0].schedules[0].cond for entry in cond.batch])
        u = torch.stack([entry[0].cond for entry in uncond])
        scale = (sigma**2 + 1).rsqrt()[:, None, None, None]

        def guess(vector):
            return torch.tanh(0.5 * x * scale + vector[:, :, None, None])

        self.step += 1
        return guess(u) + cond_scale * (guess(c) - guess(u))


def karras(n, sigma_min=0.1, sigma_max=10.0, rho=7.0):
    ramp = torch.linspace(0, 1, n)
    sigmas = (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


class KDiffusionSampler:
    def __init__(self, funcname, sd_model, options=None):
        self.funcname = funcname
        self.func = funcname
        self.options = options or {}
        self.config = None
        self.p = None
        self.model_wrap_cfg = ToyCFGDenoiser(self)
        self.sampler_extra_args = None

    def callback_state(self, d):
        shared.state.sampling_step = d["i"]
        shared.total_tqdm.update()

    def initialize(self, p):
        self.p = p
        self.model_wrap_cfg.p = p
        self.model_wrap_cfg.mask = getattr(p, "mask", None)
        self.model_wrap_cfg.step = 0
        kwargs = {}
        if "eta" in inspect.signature(self.func).parameters:
            kwargs["eta"] = p.eta if p.eta is not None else 1.0
        return kwargs

    def _launch(self, p, x, sigmas, conditioning, unconditional_conditioning, image_conditioning):
        kwargs = self.initialize(p)
        if "sigmas" in inspect.signature(self.func).parameters:
            kwargs["sigmas"] = sigmas
        if self.config.options.get("brownian_noise", False):
            from hyperbatch.noise import BrownianNoise  # stands in for BrownianTreeNoiseSampler

            seeds = p.all_seeds[p.iteration * p.batch_size:(p.iteration + 1) * p.batch_size]
            kwargs["noise_sampler"] = BrownianNoise(x, sigmas[sigmas > 0].min(), sigmas.max(), seeds)
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning,
                                   "uncond": unconditional_conditioning, "cond_scale": p.cfg_scale,
                                   "s_min_uncond": 0.0}
        return self.func(self.model_wrap_cfg, x, extra_args=self.sampler_extra_args, disable=False,
                         callback=self.callback_state, **kwargs)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        sigmas = karras(steps or p.steps)
        self.model_wrap_cfg.init_latent = None
        return self._launch(p, x * sigmas[0], sigmas, conditioning, unconditional_conditioning,
                            image_conditioning)

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):
        steps = steps or p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
        sigma_sched = karras(steps)[steps - t_enc - 1:]
        self.model_wrap_cfg.init_latent = x
        return self._launch(p, x + noise * sigma_sched[0], sigma_sched, conditioning,
                            unconditional_conditioning, image_conditioning)
