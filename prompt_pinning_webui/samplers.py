"""The hyperbatch samplers inside A1111: registration and the host wrapper.

A1111 v1.10 has no ``add_sampler``: samplers are ``SamplerData(name,
constructor, aliases, options)`` entries of ``sd_samplers.all_samplers``
(plus ``all_samplers_map``), and ``set_samplers()`` rebuilds the visible
lists. ``set_samplers`` reads ``shared.opts``, which does not exist at
preload, so ``register_samplers`` runs when the script module loads and
again before the UI is built; it is idempotent (entries are replaced by
name, never duplicated).

The wrapper gives each hyperbatch function what only the host knows: the
group size of packed individuals (``GROUP_SIZE_ATTR`` on ``p``), each image's
own unit noise for the splits, and where to leave the traces
(``TRACES_ATTR`` on ``p``). Where a hyperbatch cannot be right (hires-fix
second pass, inpainting masks, init images that differ per row) it falls
back to the host's own plain sampler of the same family: the function of the
host's ``k_diffusion.sampling`` that its plain entry runs, with the sigmas
(schedule type) and Brownian noise the host prepared. The project's own
plain samplers serve the built-in model and the CLI only.

The host creates the seeded Brownian noise of SDE entries, or passes
``noise_sampler=None`` when its "no_dpmpp_sde_batch_determinism" option is
on; then, as for its own DPM++ SDE, k-diffusion's unseeded Brownian tree is
used. ``s_noise`` comes from the host's settings as for its own SDE samplers.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import numpy as np

import hyperbatch
from hyperbatch import SamplerSpec

logger = logging.getLogger(__name__)

GROUP_SIZE_ATTR = "prompt_pinning_group_size"  # images per individual in a packed batch
TRACES_ATTR = "prompt_pinning_traces"  # (rows, L) traces of the last hyperbatch call

# The Sampling method list's entries, named as v1.10 names its own: the schedule is picked in
# the Schedule type field ("Automatic" gives the entry's default, Karras) -> the spec each runs.
LISTED = {"DPM++ 2M Hyperbatch": "DPM++ 2M Karras - Hyperbatch",
          "DPM++ SDE Hyperbatch": "DPM++ SDE Karras - Hyperbatch"}
# The engine's names (earlier entries): still found by name, for old infotexts and API calls, but
# not listed; each keeps its own default schedule ("DPM++ SDE - Hyperbatch": the host's default).
UNLISTED = tuple(spec.name for spec in hyperbatch.SAMPLERS.values() if spec.hyperbatch)

# An old infotext's sampler, pasted into the UI -> the listed entry that renders the same
# (its "Automatic" schedule is Karras), so the Sampling method field shows one of its choices.
PASTED_AS = {engine: listed for listed, engine in LISTED.items()}

# Hyperbatch entry -> (the host's plain entry, its k_diffusion.sampling function)
_PLAIN_FALLBACK = {"DPM++ 2M Karras - Hyperbatch": ("DPM++ 2M", "sample_dpmpp_2m"),
                   "DPM++ SDE Karras - Hyperbatch": ("DPM++ SDE", "sample_dpmpp_sde"),
                   "DPM++ SDE - Hyperbatch": ("DPM++ SDE", "sample_dpmpp_sde")}
_PLAIN_FALLBACK.update({listed: _PLAIN_FALLBACK[engine] for listed, engine in LISTED.items()})
SDE_HOST_SETTINGS = ["s_noise"]  # what A1111 fills in from its settings for its SDE samplers


def hyperbatch_specs() -> list[SamplerSpec]:
    """Every entry registered in the host: the listed ones first, then the unlisted engine names."""
    import dataclasses

    listed = [dataclasses.replace(hyperbatch.SAMPLERS[engine], name=name) for name, engine in LISTED.items()]
    return listed + [hyperbatch.SAMPLERS[name] for name in UNLISTED]


def sampler_options(spec: SamplerSpec) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if spec.scheduler:
        options["scheduler"] = spec.scheduler
    if spec.needs_noise_sampler:  # DPM++ SDE: two model calls per step, Brownian noise
        options["second_order"] = True
        options["brownian_noise"] = True
    return options


def sampler_aliases(spec: SamplerSpec) -> list[str]:
    """``k_<slug>``; a listed entry also answers to the engine name it runs (XYZ plot, API lists)."""
    slug = spec.name.lower().replace("++", "pp").replace(" - ", "_").replace(" ", "_")
    return ["k_" + slug] + ([LISTED[spec.name]] if spec.name in LISTED else [])


def _fallback_reason(sampler, x) -> Optional[str]:
    p = getattr(sampler, "p", None)
    if getattr(p, "is_hr_pass", False):
        return "hires-fix second pass (rows already differ)"
    denoiser = getattr(sampler, "model_wrap_cfg", None)
    if getattr(denoiser, "mask", None) is not None:
        return "inpainting mask"
    init = getattr(denoiser, "init_latent", None)
    if init is not None and init.shape[0] > 1 and not bool((init == init[:1]).all()):
        return "init images differ between rows"
    return None


def _group_size(sampler, rows: int) -> Optional[int]:
    size = getattr(getattr(sampler, "p", None), GROUP_SIZE_ATTR, None)
    if isinstance(size, int) and size > 0 and rows % size == 0:
        return size
    return None


def _branch_noise(sampler, x, sigmas):
    """Each row's own unit noise: (x - init latent) / sigma_0 (txt2img: x / sigma_0)."""
    init = getattr(getattr(sampler, "model_wrap_cfg", None), "init_latent", None)
    if init is not None and init.shape == x.shape:
        return (x - init) / sigmas[0]
    return x / sigmas[0]


def image_step_callback(callback: Optional[Callable], steps: int) -> Optional[Callable]:
    """Host callback in image-step units: ``steps`` evenly-costed calls.

    A1111's ``callback_state`` reads only ``d["i"]`` and advances the total bar
    by one per call. A hyperbatch step costs as many image-steps as it has
    rows, so each of its calls is translated into one host call with ``i=k``
    for every k/steps fraction of the image-steps that it completes. Calls
    without image-step counts (plain samplers) pass through unchanged.
    """
    if callback is None or steps < 1:
        return callback
    reported = 0  # host calls made so far

    def relay(d: dict) -> None:
        nonlocal reported
        done, total = d.get("image_steps_done"), d.get("image_steps_total")
        if done is None or not total:
            callback(d)
            return
        reached = min(steps, (int(done) * steps) // int(total))
        while reported < reached:
            callback({**d, "i": reported})
            reported += 1
    return relay


def host_plain_sampler(name: str) -> Callable:
    """The host's k-diffusion function that its plain entry of this family runs."""
    import k_diffusion.sampling

    return getattr(k_diffusion.sampling, _PLAIN_FALLBACK[name][1])


def host_brownian_noise(x, sigmas) -> Callable:
    """k-diffusion's unseeded Brownian tree over the positive sigmas, as its SDE samplers default to."""
    import k_diffusion.sampling

    positive = sigmas[sigmas > 0]
    return k_diffusion.sampling.BrownianTreeNoiseSampler(x, positive.min(), sigmas.max())


def _run(spec: SamplerSpec, sampler, model, x, sigmas, extra_args, callback, disable, **noise_kwargs):
    reason = _fallback_reason(sampler, x)
    if reason is not None:
        logger.info("%s: running as %s (%s)", spec.name, _PLAIN_FALLBACK[spec.name][0], reason)
        return host_plain_sampler(spec.name)(model, x, sigmas, extra_args=extra_args, callback=callback,
                                             disable=disable, **noise_kwargs)
    if spec.needs_noise_sampler and noise_kwargs.get("noise_sampler") is None:
        noise_kwargs["noise_sampler"] = host_brownian_noise(x, sigmas)
    trace_out: list = []
    callback = image_step_callback(callback, len(sigmas) - 1)
    result = spec.function(model, x, sigmas, extra_args=extra_args, callback=callback,
                           disable=disable, group_size=_group_size(sampler, x.shape[0]),
                           branch_noise=_branch_noise(sampler, x, sigmas), trace_out=trace_out,
                           **noise_kwargs)
    p = getattr(sampler, "p", None)
    if p is not None and trace_out:
        groups = x.shape[0] // trace_out[-1].shape[0]
        setattr(p, TRACES_ATTR, np.concatenate([trace_out[-1]] * groups, axis=0))
    return result


def host_sampler_function(spec: SamplerSpec, sampler) -> Callable:
    """The function A1111 calls; its signature tells A1111 what to pass.

    A1111 passes ``eta`` and the names of ``sampler.extra_params`` (``s_noise``)
    only if the signature names them, and ``noise_sampler`` when the entry has
    the "brownian_noise" option.
    """
    if spec.needs_noise_sampler:
        def sample_sde(model, x, sigmas, extra_args=None, callback=None, disable=None,
                       eta=1.0, s_noise=1.0, noise_sampler=None):
            return _run(spec, sampler, model, x, sigmas, extra_args, callback, disable,
                        eta=eta, s_noise=s_noise, noise_sampler=noise_sampler)
        return sample_sde

    def sample(model, x, sigmas, extra_args=None, callback=None, disable=None):
        return _run(spec, sampler, model, x, sigmas, extra_args, callback, disable)
    return sample


def make_constructor(spec: SamplerSpec) -> Callable:
    def construct(model):
        from modules import sd_samplers_kdiffusion

        sampler = sd_samplers_kdiffusion.KDiffusionSampler(spec.function, model)
        sampler.func = host_sampler_function(spec, sampler)
        if spec.needs_noise_sampler:  # the host looks these up by function name, which ours lack
            sampler.extra_params = list(SDE_HOST_SETTINGS)
        return sampler
    construct.__name__ = f"construct_{sampler_aliases(spec)[0]}"
    return construct


def _select_multicond(value, rows, batch_size):
    """MulticondLearnedConditioning restricted to ``rows`` (a new object)."""
    picked = [value.batch[r] for r in rows]
    return type(value)(shape=(len(picked),), batch=picked)


def register_row_selectors() -> None:
    """Teach hyperbatch to cut A1111's cond object down to active rows.

    ``uncond`` is a plain per-prompt list and ``image_cond`` a tensor, which
    hyperbatch's defaults already handle.
    """
    from modules import prompt_parser

    hyperbatch.register_row_selector(prompt_parser.MulticondLearnedConditioning, _select_multicond)


def register_samplers() -> list[str]:
    """Add (or refresh) the hyperbatch samplers in A1111's sampler lists. Idempotent.

    Returns the registered names. Needs ``shared.opts`` (set_samplers reads it).
    """
    from modules import sd_samplers, sd_samplers_common, sd_samplers_kdiffusion

    register_row_selectors()
    names = []
    for spec in hyperbatch_specs():
        data = sd_samplers_common.SamplerData(spec.name, make_constructor(spec),
                                              sampler_aliases(spec), sampler_options(spec))
        existing = [i for i, s in enumerate(sd_samplers.all_samplers) if s.name == spec.name]
        for i in reversed(existing):
            del sd_samplers.all_samplers[i]
        if spec.name in LISTED:  # listed: the dropdowns; unlisted: found by exact name only
            sd_samplers.all_samplers.insert(existing[0] if existing else len(sd_samplers.all_samplers), data)
        sd_samplers.all_samplers_map[spec.name] = data
        kd_map = getattr(sd_samplers_kdiffusion, "k_diffusion_samplers_map", None)
        if isinstance(kd_map, dict):
            kd_map[spec.name] = data
        names.append(spec.name)
    sd_samplers.set_samplers()
    cached = getattr(sd_samplers, "get_sampler_and_scheduler", None)
    if hasattr(cached, "cache_clear"):  # it memoises name lookups made before we registered
        cached.cache_clear()
    return names


def register_when_ready() -> None:
    """Register now if the host's options exist, and again before the UI is built."""
    from modules import script_callbacks, shared

    if getattr(getattr(shared, "cmd_opts", None), "prompt_pinning_no_samplers", False):
        register_row_selectors()  # still needed if a packed run uses a hyperbatch sampler
        return
    if getattr(shared, "opts", None) is not None:
        register_samplers()
    script_callbacks.on_before_ui(register_samplers)
    if hasattr(script_callbacks, "on_infotext_pasted"):
        script_callbacks.on_infotext_pasted(paste_listed_names)


def paste_listed_names(infotext: str, params: dict) -> None:
    """Before the UI applies a pasted infotext: old hyperbatch names become the listed ones."""
    for key in ("Sampler", "Hires sampler"):
        if params.get(key) in PASTED_AS:
            params[key] = PASTED_AS[params[key]]
