"""KDiffusionSampler as in modules/sd_samplers_kdiffusion.py, with a toy model and CFG denoiser.

Sampling itself is k-diffusion's (``k_diffusion.sampling``), as in the WebUI. The parts
mirrored: ``samplers_k_diffusion`` entries ``(label, funcname, aliases, options)``;
``KDiffusionSampler(funcname, sd_model)`` where funcname is a name in
``k_diffusion.sampling`` or a function object; ``extra_params`` looked up by function name
(``s_noise`` for DPM++ SDE, overridden by ``opts.s_noise``); ``get_sigmas`` picks the schedule
type: ``p.scheduler``, "Automatic" meaning the entry's "scheduler" option, and no schedule
function meaning the model's discrete schedule; ``create_noise_sampler`` gives a per-image
seeded ``BrownianTreeNoiseSampler`` for "brownian_noise" entries, or None when
``opts.no_dpmpp_sde_batch_determinism``; ``sample()`` inspects the function's signature to
pass ``sigmas``, ``eta`` and extra params, sets ``self.p``, ``model_wrap_cfg.init_latent``/
``mask``, and calls ``func(model_wrap_cfg, x, extra_args=..., disable=False, callback=...,
**kwargs)`` with extra_args = {cond: MulticondLearnedConditioning, image_cond, uncond: list,
cond_scale, s_min_uncond}. The denoiser, like the real CFGDenoiser, needs one cond entry,
one uncond entry and one image_cond row per row of x.
"""
import inspect
import math

import k_diffusion.sampling
import torch

from modules import sd_samplers_common, sd_schedulers, shared

samplers_k_diffusion = [
    ("DPM++ 2M", "sample_dpmpp_2m", ["k_dpmpp_2m"], {"scheduler": "karras"}),
    ("DPM++ SDE", "sample_dpmpp_sde", ["k_dpmpp_sde"],
     {"scheduler": "karras", "second_order": True, "brownian_noise": True}),
    ("Euler", "sample_euler", ["k_euler"], {}),
]

sampler_extra_params = {"sample_euler": ["s_churn", "s_tmin", "s_tmax", "s_noise"],
                        "sample_dpmpp_sde": ["s_noise"]}


class ToyDiscreteSchedule:
    """The toy model's sigmas: 1000 training steps, log-uniform from 0.03 to 14.6 (ascending)."""

    def __init__(self, steps=1000, sigma_min=0.03, sigma_max=14.6):
        self.log_sigmas = torch.linspace(math.log(sigma_min), math.log(sigma_max), steps)
        self.sigmas = self.log_sigmas.exp()

    def get_sigmas(self, n):
        """n sigmas from the largest down to the smallest training sigma, then 0."""
        t = torch.linspace(len(self.log_sigmas) - 1, 0, n)
        low, frac = t.floor().long(), t - t.floor()
        high = (low + 1).clamp(max=len(self.log_sigmas) - 1)
        log_sigma = (1 - frac) * self.log_sigmas[low] + frac * self.log_sigmas[high]
        return torch.cat([log_sigma.exp(), log_sigma.new_zeros(1)])


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


class KDiffusionSampler:
    def __init__(self, funcname, sd_model, options=None):
        self.funcname = funcname
        self.extra_params = sampler_extra_params.get(funcname, [])
        self.func = funcname if callable(funcname) else getattr(k_diffusion.sampling, funcname)
        self.options = options or {}
        self.config = None
        self.p = None
        self.s_noise = 1.0
        self.model_wrap = ToyDiscreteSchedule()
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
        parameters = inspect.signature(self.func).parameters
        kwargs = {name: getattr(p, name) for name in self.extra_params
                  if hasattr(p, name) and name in parameters}
        if "eta" in parameters:
            kwargs["eta"] = p.eta if p.eta is not None else 1.0
        s_noise = getattr(shared.opts, "s_noise", getattr(p, "s_noise", 1.0))
        if "s_noise" in kwargs and s_noise != self.s_noise:
            kwargs["s_noise"] = p.s_noise = s_noise
        return kwargs

    def get_sigmas(self, p, steps):
        name = p.scheduler or "Automatic"
        if name == "Automatic":
            name = self.config.options.get("scheduler", None)
        scheduler = sd_schedulers.schedulers_map.get(name)
        if scheduler is None or scheduler.function is None:
            return self.model_wrap.get_sigmas(steps)
        sigma_min, sigma_max = self.model_wrap.sigmas[0].item(), self.model_wrap.sigmas[-1].item()
        return scheduler.function(n=steps, sigma_min=sigma_min, sigma_max=sigma_max, device="cpu").cpu()

    def create_noise_sampler(self, x, sigmas, p):
        if shared.opts.no_dpmpp_sde_batch_determinism:
            return None
        sigma_min, sigma_max = sigmas[sigmas > 0].min(), sigmas.max()
        seeds = p.all_seeds[p.iteration * p.batch_size:(p.iteration + 1) * p.batch_size]
        return k_diffusion.sampling.BrownianTreeNoiseSampler(x, sigma_min, sigma_max, seed=seeds)

    def _launch(self, p, x, sigmas, noise_sigmas, conditioning, unconditional_conditioning, image_conditioning):
        kwargs = self.initialize(p)
        if "sigmas" in inspect.signature(self.func).parameters:
            kwargs["sigmas"] = sigmas
        if self.config.options.get("brownian_noise", False):
            kwargs["noise_sampler"] = self.create_noise_sampler(x, noise_sigmas, p)
        self.sampler_extra_args = {"cond": conditioning, "image_cond": image_conditioning,
                                   "uncond": unconditional_conditioning, "cond_scale": p.cfg_scale,
                                   "s_min_uncond": 0.0}
        return self.func(self.model_wrap_cfg, x, extra_args=self.sampler_extra_args, disable=False,
                         callback=self.callback_state, **kwargs)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps=None, image_conditioning=None):
        sigmas = self.get_sigmas(p, steps or p.steps)
        self.model_wrap_cfg.init_latent = None
        return self._launch(p, x * sigmas[0], sigmas, sigmas, conditioning, unconditional_conditioning,
                            image_conditioning)

    def sample_img2img(self, p, x, noise, conditioning, unconditional_conditioning, steps=None,
                       image_conditioning=None):
        steps = steps or p.steps
        t_enc = int(min(p.denoising_strength, 0.999) * steps)
        sigmas = self.get_sigmas(p, steps)
        sigma_sched = sigmas[steps - t_enc - 1:]
        self.model_wrap_cfg.init_latent = x
        return self._launch(p, x + noise * sigma_sched[0], sigma_sched, sigmas, conditioning,
                            unconditional_conditioning, image_conditioning)
