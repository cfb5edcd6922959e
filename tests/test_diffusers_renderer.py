"""The diffusers renderer (prompt_pinning.diffusers) on the tiny random pipelines, on the CPU."""
import numpy as np
import pytest
import torch

from prompt_pinning.diffusers import DiffusersRenderer, load_diffusers_renderer
from prompt_pinning.prompt.weights import PromptVector
from prompt_pinning.rendering import GenerationSettings, Renderer, RenderInterrupted

PROMPTS = [("a (red:1.3) fox in snow", "blurry"), ("a (red:0.7) fox in snow", "(blurry:1.2)"),
           ("a red fox in (snow:1.4)", "blurry")]
SETTINGS = GenerationSettings(seed=11, batch_size=2, steps=3, width=64, height=64, cfg_scale=5.0)
HYPER = "DPM++ 2M Karras - Hyperbatch"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: a second thread only adds synchronisation (badly so on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def renderer(tiny_diffusers):
    return load_diffusers_renderer(tiny_diffusers["sd15"], device="cpu")


def render_with(renderer, limit, prompts, settings, **kwargs):
    renderer.max_images_per_call = limit
    try:
        return renderer.render(prompts, settings, **kwargs)
    finally:
        renderer.max_images_per_call = None


@pytest.fixture(scope="module")
def per_individual(renderer):
    """One sampler call per individual, for the plain and the hyperbatch sampler."""
    return {sampler: [render_with(renderer, SETTINGS.batch_size, [p], SETTINGS.with_(sampler=sampler))[0]
                      for p in PROMPTS]
            for sampler in ("DPM++ 2M", HYPER)}


def distance(a, b) -> float:
    return float((a.images - b.images).abs().mean())


@pytest.mark.parametrize("sampler,limit,calls", [("DPM++ 2M", None, [6]), ("DPM++ 2M", 4, [4, 2]),
                                                  (HYPER, None, [6]), (HYPER, 5, [4, 2])])
def test_packing_equals_one_call_per_individual(renderer, per_individual, sampler, limit, calls):
    packed = render_with(renderer, limit, PROMPTS, SETTINGS.with_(sampler=sampler))
    assert renderer.last_call_sizes == calls
    for one, many in zip(per_individual[sampler], packed):
        assert many.images.dtype == torch.float32 and many.images.shape == (2, 3, 64, 64)
        assert torch.allclose(one.images, many.images, atol=1e-5, rtol=0)
        assert many.seeds == SETTINGS.seeds()
        if sampler == HYPER:
            np.testing.assert_array_equal(one.traces, many.traces)
            assert many.traces.shape == (2, 2)
        else:
            assert many.traces is None
    assert not torch.equal(packed[0].images, packed[1].images)  # individuals differ by weights only


def test_same_seeds_same_images_from_a_fresh_renderer(tiny_diffusers, renderer, per_individual, tmp_path):
    again = load_diffusers_renderer(tiny_diffusers["sd15"], device="cpu")
    assert again.host_settings() == renderer.host_settings()
    from make_tiny_diffusers import make_tiny  # tools/ is on the path (conftest)

    other = load_diffusers_renderer(make_tiny(tmp_path / "sd15", seed=1), device="cpu")
    assert other.host_settings()["weights"] != renderer.host_settings()["weights"]  # same name, other weights
    for sampler in ("DPM++ 2M", HYPER):
        image = again.render(PROMPTS[:1], SETTINGS.with_(sampler=sampler))[0].images
        assert torch.equal(image, per_individual[sampler][0].images)


def test_image_i_uses_seed_plus_i(renderer, per_individual):
    shifted = renderer.render(PROMPTS[:1], SETTINGS.with_(seed=SETTINGS.seed + 1, batch_size=1))[0]
    assert torch.allclose(shifted.images[0], per_individual["DPM++ 2M"][0].images[1], atol=1e-5, rtol=0)
    other = renderer.render(PROMPTS[:1], SETTINGS.with_(seed=SETTINGS.seed + 2, batch_size=1))[0]
    assert distance(other, shifted) > 0.01  # the seed matters


def test_a_weight_moves_the_images_continuously(renderer):
    weights = [1.0, 1.01, 1.02, 1.1, 1.3]
    out = renderer.render([(f"a (red:{w}) fox in snow", "blurry") for w in weights], SETTINGS)
    steps = [distance(out[0], o) for o in out[1:]]
    assert 0 < steps[0] < steps[1] < steps[2] < steps[3]
    assert steps[1] == pytest.approx(2 * steps[0], rel=0.25)  # locally linear
    assert steps[3] > 0.002  # and visible
    different = renderer.render([("a cat on a chair", "blurry")], SETTINGS)[0]
    assert distance(out[0], different) > steps[3]


def test_zero_offsets_reproduce_the_plain_prompt(renderer):
    positive, negative = "a red fox, in the snow", "blurry"
    vector = PromptVector.from_prompts(positive, negative, renderer.tokenizer)
    at_zero = vector.render(np.zeros(vector.size))
    moved = vector.render(np.full(vector.size, 0.1))
    assert moved[0].startswith("(a:1.1) (red:1.1) (fox:1.1)(,:1.1)")
    explicit = (moved[0].replace("1.1", "1"), moved[1].replace("1.1", "1"))  # every unit weighted 1, written out
    plain, zero, ones, other = renderer.render([(positive, negative), at_zero, explicit, moved], SETTINGS)
    # rows of one UNet batch: equal up to the batch's kernel rounding
    assert torch.allclose(plain.images, zero.images, atol=1e-6, rtol=0)
    assert torch.allclose(plain.images, ones.images, atol=1e-6, rtol=0)
    assert distance(plain, other) > 0.001


def test_prompts_of_different_lengths_share_a_render(renderer):
    long = ("a red fox in snow, " * 20, "blurry")
    alone = renderer.render([long], SETTINGS)[0]
    together = renderer.render([PROMPTS[0], long], SETTINGS)
    assert torch.allclose(together[1].images, alone.images, atol=1e-5, rtol=0)
    assert renderer.text.chunk_count(long[0]) == 2


def test_out_of_memory_halves_the_call_and_keeps_results(renderer, per_individual, monkeypatch):
    real = renderer._sample_and_decode
    tried = []

    def limited(call, *args):
        tried.append(len(call))
        if len(tried) == 1:  # runs out of memory once, after some progress
            args[-1]({"image_steps_done": 4})
            raise torch.cuda.OutOfMemoryError("pretend")
        return real(call, *args)

    monkeypatch.setattr(renderer, "_sample_and_decode", limited)
    monkeypatch.setattr(renderer, "_oom_cap", None)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    seen = []
    packed = render_with(renderer, 6, PROMPTS, SETTINGS.with_(sampler=HYPER), progress=lambda d, t: seen.append(d))
    assert tried == [6, 2, 2, 2] and renderer.last_call_sizes == [2, 2, 2]
    assert seen == sorted(seen) and seen[0] == 4 and seen[-1] == 3 * 5  # never back after the retry
    for one, many in zip(per_individual[HYPER], packed):
        assert torch.allclose(one.images, many.images, atol=1e-5, rtol=0)
    render_with(renderer, 6, PROMPTS, SETTINGS.with_(sampler=HYPER))  # the smaller size is kept
    assert tried[4:] == [2, 2, 2] and renderer.last_call_sizes == [2, 2, 2]


def test_progress_counts_image_steps_and_stop_interrupts(renderer):
    seen = []
    settings = SETTINGS.with_(sampler=HYPER)
    render_with(renderer, 2, PROMPTS[:2], settings, progress=lambda done, total: seen.append((done, total)))
    per_individual = 1 + 2 + 2  # B=2, S=3: sizes 1, 2, 2
    assert seen[-1] == (2 * per_individual, 2 * per_individual)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(RenderInterrupted):
        renderer.render(PROMPTS[:1], settings, should_stop=lambda: True)


def test_every_project_sampler_renders_and_unknown_ones_are_refused(renderer):
    import hyperbatch

    small = SETTINGS.with_(batch_size=2, steps=2)
    for name in hyperbatch.SAMPLERS:
        (out,) = renderer.render(PROMPTS[:1], small.with_(sampler=name))
        assert torch.isfinite(out.images).all() and out.images.std() > 0.05
    with pytest.raises(ValueError, match=r"sampler: 'LMS' is not available .*accepted: Euler, Euler a, DPM\+\+ 2M"):
        renderer.render(PROMPTS[:1], small.with_(sampler="LMS"))


def test_img2img_starts_from_the_init_images(renderer):
    generator = torch.Generator().manual_seed(5)
    first, second = torch.rand(2, 3, 64, 64, generator=generator)
    settings = SETTINGS.with_(denoising_strength=0.3, steps=6)
    out = [renderer.render(PROMPTS[:1], settings, init_images=init)[0].images for init in (first, second)]
    (txt2img,) = renderer.render(PROMPTS[:1], SETTINGS.with_(steps=6))
    # Random weights: the VAE does not give the image back, so compare with its round trip.
    round_trip = renderer.decode(renderer.encode_images(first[None]))
    assert float((out[0] - round_trip).abs().mean()) < 0.5 * float((txt2img.images - round_trip).abs().mean())
    assert float((out[0] - out[1]).abs().mean()) > 0.01
    with pytest.raises(ValueError, match="needs init_images"):
        renderer.render(PROMPTS[:1], settings)
    with pytest.raises(ValueError, match="init_images must be"):
        renderer.render(PROMPTS[:1], settings, init_images=torch.zeros(3, 32, 32))


def test_sdxl_renders_and_depends_on_the_prompt(tiny_diffusers):
    xl = load_diffusers_renderer(tiny_diffusers["sdxl"], device="cpu")
    assert xl.sdxl and xl.host_settings()["kind"] == "sdxl"
    out = xl.render([("a (red:1.3) fox", "blurry"), ("a (red:0.7) fox", "blurry")], SETTINGS.with_(sampler=HYPER))
    assert out[0].images.shape == (2, 3, 64, 64) and out[0].traces.shape == (2, 2)
    assert distance(out[0], out[1]) > 0.001
    again = xl.render([("a (red:1.3) fox", "blurry")], SETTINGS.with_(sampler=HYPER))[0]
    assert torch.allclose(again.images, out[0].images, atol=1e-5, rtol=0)  # alone or packed


def test_is_a_renderer_and_rejects_bad_input(renderer, tmp_path):
    assert isinstance(renderer, Renderer) and renderer.name == "diffusers"
    fingerprint = renderer.host_settings()
    assert fingerprint == {"model": "sd15", "weights": fingerprint["weights"], "kind": "sd1", "dtype": "float32"}
    assert len(fingerprint["weights"]) == 16
    with pytest.raises(ValueError, match="max_images_per_call"):
        DiffusersRenderer(renderer.unet, renderer.vae, renderer.text, max_images_per_call=0)
    with pytest.raises(ValueError, match="width must be a multiple of 8"):
        renderer.render(PROMPTS[:1], SETTINGS.with_(width=68))
    with pytest.raises(ValueError, match="negative prompt: <lora:grain:0.5> at character 5: .* loads no LoRA"):
        renderer.render([("a fox", "dull <lora:grain:0.5>")], SETTINGS)
    assert renderer.extra_networks() == {"lora": (), "hypernet": ()}
    with pytest.raises(ValueError, match=r"prompts\[0\]"):
        renderer.render(["just a string"], SETTINGS)
    assert renderer.render([], SETTINGS) == []
    with pytest.raises(ValueError, match="neither a pipeline folder nor"):
        load_diffusers_renderer(tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="without unet/"):
        load_diffusers_renderer(tmp_path)
    with pytest.raises(ValueError, match="clip_skip"):
        load_diffusers_renderer(tmp_path, clip_skip=0)


def test_single_files_need_local_configs_and_say_so(tiny_diffusers, tmp_path, monkeypatch):
    """An A1111-format single file is read by diffusers with a local config folder; a tiny one cannot be
    made here (diffusers converts that format to its own, not back), so only the refusals are tested."""
    import huggingface_hub.constants
    from safetensors.torch import save_file

    from prompt_pinning.diffusers.loading import _is_sdxl_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    odd = tmp_path / "odd.safetensors"
    save_file({"model.diffusion_model.out.0.weight": torch.zeros(2)}, str(odd))
    xl = tmp_path / "xl.safetensors"
    save_file({"conditioner.embedders.1.model.ln_final.weight": torch.zeros(2)}, str(xl))
    assert not _is_sdxl_file(odd) and _is_sdxl_file(xl)
    with pytest.raises(ValueError, match="needs the model's configs and tokenizers: .*--diffusers-config DIR"
                                         ".*stabilityai/stable-diffusion-xl-base-1.0 in the local"):
        load_diffusers_renderer(xl, device="cpu")
    with pytest.raises(ValueError, match=r"could not be read with the configs of .*sd15.*\(SingleFileComponentError"):
        load_diffusers_renderer(odd, device="cpu", config=str(tiny_diffusers["sd15"]))


def test_a_force_upcast_vae_stays_float32_and_nan_images_are_refused(tiny_diffusers, renderer):
    from types import SimpleNamespace

    from prompt_pinning.diffusers.renderer import vae_dtype

    upcast, plain = SimpleNamespace(force_upcast=True), SimpleNamespace(force_upcast=False)
    assert vae_dtype(upcast, torch.float16) == torch.float32
    assert vae_dtype(plain, torch.float16) == torch.float16
    assert vae_dtype(SimpleNamespace(), torch.float16) == torch.float16
    assert vae_dtype(upcast, torch.bfloat16) == torch.bfloat16 and vae_dtype(upcast, torch.float32) == torch.float32
    half = load_diffusers_renderer(tiny_diffusers["sdxl"], device="cpu", dtype=torch.float16)
    assert half.vae.config.force_upcast  # diffusers' default, and SDXL's
    assert {p.dtype for p in half.vae.parameters()} == {torch.float32}
    assert {p.dtype for p in half.unet.parameters()} == {torch.float16}
    with pytest.raises(FloatingPointError, match="non-finite .* float32"):
        renderer.decode(torch.full((1, 4, 8, 8), float("nan")))


def test_the_stage_clock_is_off_unless_switched_on(monkeypatch):
    from prompt_pinning.diffusers.renderer import StageClock

    syncs = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: syncs.append(1))
    off, on = StageClock("cuda"), StageClock("cuda", enabled=True)
    for clock in (off, on):
        with clock.stage("sampler"):
            pass
    assert syncs == [1, 1]  # both edges, for the switched-on clock only
    assert off.snapshot() == {} and set(on.snapshot()) == {"sampler"}


def test_the_weights_hash_sees_a_middle_attention_weight(renderer):
    from prompt_pinning.diffusers.renderer import weights_hash

    modules = [renderer.unet, renderer.vae]
    before = weights_hash(modules)
    name, weight = [(n, p) for n, p in renderer.unet.named_parameters() if "attn" in n and "to_k" in n][0]
    assert weight is not list(renderer.unet.parameters())[0] and weight is not list(renderer.unet.parameters())[-1]
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            weight.add_(0.01)  # as a merged LoRA would
        assert weights_hash(modules) != before, name
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert weights_hash(modules) == before


def test_a_model_given_as_dot_is_named_by_its_folder(tiny_diffusers, monkeypatch):
    monkeypatch.chdir(tiny_diffusers["sd15"])
    assert load_diffusers_renderer(".", device="cpu").host_settings()["model"] == "sd15"
