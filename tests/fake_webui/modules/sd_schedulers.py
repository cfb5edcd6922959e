"""Schedule types of modules/sd_schedulers.py (the k-diffusion ones; no model-dependent ones).

``Scheduler(name, label, function, default_rho, need_inner_model, aliases)``; "automatic"
has no function: the sampler entry's own "scheduler" option decides, else the model's
discrete schedule. ``schedulers_map`` finds a scheduler by name or label.
"""
from collections import namedtuple

import k_diffusion.sampling

Scheduler = namedtuple("Scheduler", ["name", "label", "function", "default_rho", "need_inner_model", "aliases"],
                       defaults=(-1, False, None))

schedulers = [
    Scheduler("automatic", "Automatic", None),
    Scheduler("karras", "Karras", k_diffusion.sampling.get_sigmas_karras, default_rho=7.0),
    Scheduler("exponential", "Exponential", k_diffusion.sampling.get_sigmas_exponential),
    Scheduler("polyexponential", "Polyexponential", k_diffusion.sampling.get_sigmas_polyexponential,
              default_rho=1.0),
]
schedulers_map = {**{x.name: x for x in schedulers}, **{x.label: x for x in schedulers}}
