"""Hyperbatch samplers registered in the (stand-in) WebUI and run through its sampler class."""
import numpy as np
import pytest
import torch

import webui_stand_in

webui_stand_in.install()

from modules import processing, script_callbacks, sd_samplers, shared  # noqa: E402

import hyperbatch  # noqa: E402
from prompt_pinning_webui import samplers as pinning_samplers  # noqa: E402

HYPER = [spec.name for spec in hyperbatch.SAMPLERS.values() if spec.hyperbatch]

# k-diffusion queries its Brownian tree a float32 hair outside the tree's range (in the host too).
pytestmark = pytest.mark.filterwarnings("ignore:Should have t:UserWarning")


@pytest.fixture(autouse=True)
def fresh():
    webui_stand_in.reset()
    yield


def test_registration_adds_each_sampler_once_and_is_idempotent():
    sd_samplers.get_sampler_and_scheduler(HYPER[0], None)  # memoised before registration
    pinning_samplers.register_samplers()
    pinning_samplers.register_samplers()
    names = [s.name for s in sd_samplers.all_samplers]
    assert [n for n in names if "Hyperbatch" in n] == ["DPM++ 2M Hyperbatch", "DPM++ SDE Hyperbatch"]
    for name in ("DPM++ 2M Hyperbatch", "DPM++ SDE Hyperbatch"):
        assert name in sd_samplers.visible_sampler_names()
        assert sd_samplers.samplers_map[name.lower()] == name
    for name in HYPER:  # the engine's (earlier) names: not listed, still found by name
        assert name not in names and name not in sd_samplers.visible_sampler_names()
        assert sd_samplers.all_samplers_map[name].name == name
        assert sd_samplers.get_sampler_and_scheduler(name, None)[0] == name  # cache was cleared
    assert sd_samplers.samplers_map["dpm++ 2m karras - hyperbatch"] == "DPM++ 2M Hyperbatch"


def test_the_listed_names_leave_the_schedule_to_the_schedule_type_field():
    pinning_samplers.register_samplers()
    listed = {name: sd_samplers.all_samplers_map[name] for name in pinning_samplers.LISTED}
    for name, data in listed.items():
        assert not any(label in name for label in ("Karras", "Exponential", "Uniform"))
        assert data.options["scheduler"] == "karras"  # what "Automatic" gives, as for the host's DPM++ 2M
        engine = sd_samplers.all_samplers_map[pinning_samplers.LISTED[name]]
        assert data.options == engine.options  # an old name renders exactly as its listed entry


@pytest.mark.parametrize("old,new", [("DPM++ 2M Karras - Hyperbatch", "DPM++ 2M Hyperbatch"),
                                     ("DPM++ SDE Karras - Hyperbatch", "DPM++ SDE Hyperbatch")])
def test_an_old_infotexts_sampler_renders_as_the_listed_entry(old, new):
    pinning_samplers.register_samplers()
    seeds = [11, 12]
    images_old, _ = render(["red circle"] * 2, [""] * 2, seeds, old, group=2)
    images_new, _ = render(["red circle"] * 2, [""] * 2, seeds, new, group=2)
    assert torch.equal(images_old, images_new)


def test_options_follow_the_host_conventions():
    pinning_samplers.register_samplers()
    sde = sd_samplers.all_samplers_map["DPM++ SDE Karras - Hyperbatch"]
    assert sde.options == {"scheduler": "karras", "second_order": True, "brownian_noise": True}
    assert sd_samplers.all_samplers_map["DPM++ SDE - Hyperbatch"].options.get("scheduler") is None
    assert sd_samplers.all_samplers_map["DPM++ 2M Karras - Hyperbatch"].options == {"scheduler": "karras"}


def test_register_when_ready_defers_to_before_ui_and_honours_the_flag():
    shared.cmd_opts.prompt_pinning_no_samplers = True
    pinning_samplers.register_when_ready()
    assert script_callbacks.callbacks_before_ui == []
    shared.cmd_opts.prompt_pinning_no_samplers = False
    pinning_samplers.register_when_ready()
    assert script_callbacks.callbacks_before_ui == [pinning_samplers.register_samplers]
    script_callbacks.before_ui_callback()
    assert all(n in sd_samplers.all_samplers_map for n in HYPER)


def render(prompts, negatives, seeds, sampler, group=None, cfg=3.0, **extra):
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt=prompts, negative_prompt=negatives, seed=seeds, subseed=list(seeds), batch_size=len(prompts),
        steps=8, cfg_scale=cfg, width=16, height=16, sampler_name=sampler, do_not_save_grid=True,
        do_not_save_samples=True, **extra)
    if group:
        setattr(p, pinning_samplers.GROUP_SIZE_ATTR, group)
    out = processing.process_images(p)
    return torch.stack([torch.from_numpy(np.asarray(im, dtype=np.float32)) for im in out.images]), p


@pytest.mark.parametrize("sampler", HYPER)
def test_packed_individuals_equal_one_call_each(sampler):
    pinning_samplers.register_samplers()
    seeds = [7, 8, 9, 10]
    a, pa = render(["red circle"] * 4, ["blue"] * 4, seeds, sampler)
    b, _ = render(["green square"] * 4, [""] * 4, seeds, sampler)
    packed, pp = render(["red circle"] * 4 + ["green square"] * 4, ["blue"] * 4 + [""] * 4, seeds * 2,
                        sampler, group=4)
    assert torch.equal(packed[:4], a) and torch.equal(packed[4:], b)
    assert not torch.equal(a, b)
    traces = getattr(pp, pinning_samplers.TRACES_ATTR)
    assert traces.shape[0] == 8
    np.testing.assert_array_equal(traces[:4], hyperbatch.traces(4, 8))
    np.testing.assert_array_equal(traces[4:], traces[:4])
    np.testing.assert_array_equal(getattr(pa, pinning_samplers.TRACES_ATTR), hyperbatch.traces(4, 8))


def test_branches_differ_within_a_hyperbatch():
    pinning_samplers.register_samplers()
    images, _ = render(["red circle"] * 4, ["blue"] * 4, [1, 2, 3, 4], "DPM++ 2M Karras - Hyperbatch", cfg=1.0)
    flat = images.reshape(4, -1)
    assert all(not torch.equal(flat[i], flat[j]) for i in range(4) for j in range(i + 1, 4))


def test_img2img_with_one_init_image_runs_as_a_hyperbatch():
    from PIL import Image

    pinning_samplers.register_samplers()
    init = Image.new("RGB", (16, 16), (200, 40, 40))
    p = processing.StableDiffusionProcessingImg2Img(
        init_images=[init], denoising_strength=0.6, prompt="red", negative_prompt="", seed=3, subseed=3,
        batch_size=4, steps=10, width=16, height=16, sampler_name="DPM++ SDE Karras - Hyperbatch",
        do_not_save_grid=True, do_not_save_samples=True)
    out = processing.process_images(p)
    assert len(out.images) == 4
    traces = getattr(p, pinning_samplers.TRACES_ATTR)
    np.testing.assert_array_equal(traces, hyperbatch.traces(4, int(0.6 * 10) + 1))


@pytest.mark.parametrize("hyper, plain", [("DPM++ 2M Karras - Hyperbatch", "DPM++ 2M"),
                                           ("DPM++ SDE Karras - Hyperbatch", "DPM++ SDE")])
def test_a_hyperbatch_of_one_image_equals_the_hosts_k_diffusion_sampler(hyper, plain):
    """Our hyperbatch code against the host's k-diffusion: with one row nothing splits."""
    pinning_samplers.register_samplers()
    ours, _ = render(["red circle"], ["blue"], [5], hyper, cfg=1.0)
    host, _ = render(["red circle"], ["blue"], [5], plain, cfg=1.0)
    assert torch.equal(ours, host)


def img2img(sampler, scheduler=None, inits=None):
    """Four rows whose init images differ (a hyperbatch falls back), as arrays (CFG 1: unsaturated)."""
    from PIL import Image

    inits = inits or [Image.new("RGB", (16, 16), (i * 60, 0, 0)) for i in range(4)]
    p = processing.StableDiffusionProcessingImg2Img(
        init_images=inits, sampler_name=sampler, scheduler=scheduler, denoising_strength=0.6, prompt="red",
        negative_prompt="", seed=3, subseed=3, batch_size=4, steps=10, width=16, height=16, cfg_scale=1.0,
        do_not_save_grid=True, do_not_save_samples=True)
    out = processing.process_images(p)
    return np.stack([np.asarray(image) for image in out.images]), p


FALLBACKS = [("DPM++ 2M Karras - Hyperbatch", "DPM++ 2M"), ("DPM++ SDE Karras - Hyperbatch", "DPM++ SDE"),
             ("DPM++ SDE - Hyperbatch", "DPM++ SDE")]


@pytest.mark.parametrize("hyper, plain", FALLBACKS)
def test_different_init_images_fall_back_to_the_hosts_plain_sampler(hyper, plain):
    """The fallback is the host's own k-diffusion sampler, with the host's sigmas and noise."""
    pinning_samplers.register_samplers()
    scheduler = "Karras" if "SDE -" in hyper else None  # that entry's automatic schedule is the model's
    fallback, p = img2img(hyper, scheduler)
    host, _ = img2img(plain)
    assert getattr(p, pinning_samplers.TRACES_ATTR, None) is None
    np.testing.assert_array_equal(fallback, host)


def test_the_fallback_follows_the_users_schedule_type():
    pinning_samplers.register_samplers()
    exponential, _ = img2img("DPM++ 2M Karras - Hyperbatch", "Exponential")
    np.testing.assert_array_equal(exponential, img2img("DPM++ 2M", "Exponential")[0])
    assert not np.array_equal(exponential, img2img("DPM++ 2M", "Karras")[0])


def test_the_fallback_takes_s_noise_from_the_hosts_settings():
    pinning_samplers.register_samplers()
    default, _ = img2img("DPM++ SDE Karras - Hyperbatch")
    shared.opts.s_noise = 0.5
    low_noise, p = img2img("DPM++ SDE Karras - Hyperbatch")
    assert p.s_noise == 0.5
    np.testing.assert_array_equal(low_noise, img2img("DPM++ SDE")[0])
    assert not np.array_equal(low_noise, default)


def seeded_render(sampler, torch_seed):
    torch.manual_seed(torch_seed)
    return render(["red circle"] * 4, ["blue"] * 4, [1, 2, 3, 4], sampler, cfg=1.0)[0]


@pytest.mark.parametrize("sampler", ["DPM++ SDE Karras - Hyperbatch", "DPM++ SDE"])
def test_no_batch_determinism_option_gives_unseeded_brownian_noise(sampler):
    """Off: per-image seeded noise, whatever torch's global seed. On: k-diffusion's own tree."""
    pinning_samplers.register_samplers()
    assert torch.equal(seeded_render(sampler, 0), seeded_render(sampler, 1))
    shared.opts.no_dpmpp_sde_batch_determinism = True
    first = seeded_render(sampler, 0)
    assert torch.equal(first, seeded_render(sampler, 0))
    assert not torch.equal(first, seeded_render(sampler, 1))


def test_fallback_without_batch_determinism_equals_the_hosts_sampler():
    pinning_samplers.register_samplers()
    shared.opts.no_dpmpp_sde_batch_determinism = True
    torch.manual_seed(5)
    fallback, _ = img2img("DPM++ SDE Karras - Hyperbatch")
    torch.manual_seed(5)
    np.testing.assert_array_equal(fallback, img2img("DPM++ SDE")[0])


def host_callbacks(monkeypatch):
    """Record what A1111's callback_state sees (and let it advance the total bar)."""
    from modules import sd_samplers_kdiffusion

    seen = []
    original = sd_samplers_kdiffusion.KDiffusionSampler.callback_state

    def record(self, d):
        seen.append(d)
        original(self, d)
    monkeypatch.setattr(sd_samplers_kdiffusion.KDiffusionSampler, "callback_state", record)
    return seen


@pytest.mark.parametrize("sampler", HYPER)
def test_host_progress_comes_in_evenly_costed_image_step_units(sampler, monkeypatch):
    pinning_samplers.register_samplers()
    seen = host_callbacks(monkeypatch)
    updates_before = shared.total_tqdm.updates
    render(["red circle"] * 4, ["blue"] * 4, [1, 2, 3, 4], sampler)
    steps, per_step = 8, hyperbatch.batch_schedule(4, 8)
    total = sum(per_step)
    done_after_step = list(np.cumsum(per_step))
    assert [d["i"] for d in seen] == list(range(steps))
    assert shared.total_tqdm.updates - updates_before == steps
    for d in seen:
        k, done = d["i"], d["image_steps_done"]
        assert d["image_steps_total"] == total
        assert done * steps >= (k + 1) * total  # the host's step k is paid for...
        step = done_after_step.index(done)
        previous = done_after_step[step - 1] if step else 0
        assert previous * steps < (k + 1) * total  # ...and reported as soon as it is


def test_plain_sampler_callbacks_pass_through_unchanged(monkeypatch):
    pinning_samplers.register_samplers()
    seen = host_callbacks(monkeypatch)
    render(["red circle"] * 2, ["blue"] * 2, [1, 2], "DPM++ 2M")
    assert [d["i"] for d in seen] == list(range(8))


@pytest.mark.parametrize("old,new", [("DPM++ 2M Karras - Hyperbatch", "DPM++ 2M Hyperbatch"),
                                     ("DPM++ SDE Karras - Hyperbatch", "DPM++ SDE Hyperbatch")])
def test_a_pasted_old_infotext_fills_in_the_listed_sampler(old, new):
    pinning_samplers.register_when_ready()
    params = {"Sampler": old, "Schedule type": "Automatic", "Hires sampler": old, "Steps": "3"}
    script_callbacks.infotext_pasted_callback(f"red circle\nSteps: 3, Sampler: {old}", params)
    assert params == {"Sampler": new, "Schedule type": "Automatic", "Hires sampler": new, "Steps": "3"}
    assert new in sd_samplers.visible_sampler_names()  # a choice of the Sampling method field
    assert sd_samplers.get_sampler_and_scheduler(params["Sampler"], params["Schedule type"]) == (new, "Automatic")
    plain = {"Sampler": "Euler a", "Schedule type": "Automatic"}
    script_callbacks.infotext_pasted_callback("x", plain)
    assert plain == {"Sampler": "Euler a", "Schedule type": "Automatic"}
