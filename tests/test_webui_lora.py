"""LoRA strengths on the in-process WebUI renderer: the host activates a batch's first prompt's
networks for the whole batch, and writes "Lora hashes" per batch (the stand-in mirrors both)."""
import pytest
import torch

import webui_stand_in

webui_stand_in.install()

from modules import extra_networks, processing  # noqa: E402

from prompt_pinning.rendering import GenerationSettings  # noqa: E402
from prompt_pinning_webui.renderer import A1111Renderer, pil_to_tensor  # noqa: E402

PAIRS = [("red circle <lora:style:0.5>", "blue"), ("red circle <lora:style:0.9>", "blue"),
         ("red circle <lora:style:0.9>", "green"), ("red circle <lora:style:0.5:1.2>", "blue"),
         ("red circle", "blue")]
SETTINGS = GenerationSettings(seed=100, subseed=5, batch_size=2, steps=3, width=16, height=16)


@pytest.fixture(autouse=True)
def fresh():
    webui_stand_in.reset()
    extra_networks.loras["style"] = "0123abcd"


def base_p():
    return processing.StableDiffusionProcessingTxt2Img(
        prompt="red circle", negative_prompt="blue", seed=100, subseed=5, batch_size=2, steps=3, width=16,
        height=16, sampler_name=SETTINGS.sampler, outpath_samples="unused")


def test_the_stand_in_host_applies_only_the_first_prompts_networks_to_a_batch():
    renderer = A1111Renderer(base_p(), tokenizer=object())
    p = renderer.make_p(PAIRS[0:2], SETTINGS)  # both strengths in one host batch, as packing did
    mixed = processing.process_images(p)
    alone = A1111Renderer(base_p(), max_images_per_call=2, tokenizer=object()).render(PAIRS[1:2], SETTINGS)[0]
    first = A1111Renderer(base_p(), max_images_per_call=2, tokenizer=object()).render(PAIRS[0:1], SETTINGS)[0]
    got = torch.stack([pil_to_tensor(image) for image in mixed.images[-2:]])
    assert not torch.equal(got, alone.images) and torch.equal(got, first.images)  # 0.9 came out with 0.5


def test_prompts_with_other_networks_never_share_a_host_batch():
    packed = A1111Renderer(base_p(), max_images_per_call=10, tokenizer=object()).render(PAIRS, SETTINGS)
    calls = [call["prompts"] for call in processing.calls]
    processing.calls.clear()
    single = A1111Renderer(base_p(), max_images_per_call=2, tokenizer=object()).render(PAIRS, SETTINGS)
    for a, b in zip(packed, single):
        assert torch.equal(a.images, b.images)
    # the two 0.9 pairs (other negatives) still share a call; every other change of tags starts one
    assert [sorted(set(c)) for c in calls] == [[PAIRS[0][0]], [PAIRS[1][0]], [PAIRS[3][0]], [PAIRS[4][0]]]
    assert len(processing.calls) == 5
    # the host's job count (the progress bar and ETA) plans a call per individual when strengths vary
    distinct = [pair for pair in PAIRS if pair != PAIRS[2]]  # pinned strengths differ in every individual
    processing.calls.clear()
    varying = A1111Renderer(base_p(), max_images_per_call=10, tokenizer=object(), networks_vary=True)
    varying.render(distinct, SETTINGS)
    assert varying.calls_needed(len(distinct), SETTINGS) == len(processing.calls) == 4
    assert A1111Renderer(base_p(), max_images_per_call=10, tokenizer=object()).calls_needed(4, SETTINGS) == 1
    images = {pair: batch.images for pair, batch in zip(PAIRS, single)}
    assert len({bytes(i.numpy()) for i in images.values()}) == 5  # every strength gives other images


def test_each_individuals_infotext_names_its_own_strength_and_the_lora_hash():
    renderer = A1111Renderer(base_p(), max_images_per_call=10, tokenizer=object())
    batches = renderer.render(PAIRS, SETTINGS)
    for (positive, _), batch in zip(PAIRS, batches):
        for text in batch.infotexts:
            assert text.startswith(positive + "\n")
            assert ('Lora hashes: "style: 0123abcd"' in text) == ("<lora:" in positive)


def test_negative_prompt_tags_stay_as_written_on_the_host(caplog):
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer
    from prompt_pinning.run.builders import build_vector

    renderer = A1111Renderer(base_p(), tokenizer=ClipBpeTokenizer())
    negative = "blurry <lora:style:0.5>, dark"
    config = PinningConfig(positive="red circle <lora:style:0.8>", negative=negative, network_units=True)
    vector = build_vector(config, renderer)
    assert [(u.kind, u.prompt) for u in vector.units if u.kind != "word"] == [("lora", "positive")]
    offsets = [0.3] * vector.size
    assert vector.render(offsets)[1].count("<lora:style:0.5>") == 1  # written as typed, whatever the offsets
    assert "does not apply extra networks of the negative prompt" in caplog.text
    unreadable = PinningConfig(positive="red circle <lora:style:0.8>", negative="blurry <lora:x:abc>",
                               network_units=True)
    kept = build_vector(unreadable, renderer)  # not refused over a tag the host leaves unapplied
    assert kept.render([0.0] * kept.size)[1] == "blurry <lora:x:abc>"
    # the built-in model applies them: there they are units
    from prompt_pinning.builtin.renderer import BuiltinRenderer

    builtin = build_vector(PinningConfig(positive="a red circle <lora:size:0.8>", negative="<lora:palette:0.5>",
                                         network_units=True), BuiltinRenderer())
    assert [u.prompt for u in builtin.units if u.kind != "word"] == ["positive", "negative"]


def test_an_infotext_the_host_did_not_write_still_names_the_lora_hashes(monkeypatch):
    import sys
    import types

    from modules import shared

    from prompt_pinning_webui.webui_run import fallback_infotext

    class OnDisk:  # the Lora extension's NetworkOnDisk: the hash is read when first needed
        def __init__(self, shorthash):
            self.shorthash, self.hash_to_read = "", shorthash

        def read_hash(self):
            self.shorthash = self.hash_to_read

    lora = types.ModuleType("networks")
    lora.available_networks = {"style_v2": OnDisk("0123abcd"), "grain": OnDisk("")}
    lora.available_network_aliases = {"style": lora.available_networks["style_v2"]}
    monkeypatch.setitem(sys.modules, "networks", lora)
    settings = {"steps": 3, "sampler": "Euler", "cfg_scale": 7, "width": 16, "height": 16}
    text = fallback_infotext("red <lora:style:0.7> <lora:grain:1> <lora:gone:1> <hypernet:style:1>", "",
                             settings, 5)
    assert 'Lora hashes: "style: 0123abcd"' in text  # grain has no hash (--no-hashing), gone no file
    assert "Lora hashes" not in fallback_infotext("red circle", "", settings, 5)
    monkeypatch.setattr(shared.opts, "lora_add_hashes_to_infotext", False, raising=False)
    assert "Lora hashes" not in fallback_infotext("red <lora:style:0.7>", "", settings, 5)
