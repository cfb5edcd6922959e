"""Fan-out with LoRAs: every instance must have the same LoRA files, and a run names only those."""
import pytest

from fake_webui_api import FakeWebUI
from prompt_pinning.prompt.attention import PromptError
from prompt_pinning.prompt.networks import check_names
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer
from prompt_pinning.prompt.weights import PromptVector
from prompt_pinning.remote import InstanceMismatch, WebUIApiRenderer
from prompt_pinning.remote.client import lora_fingerprint
from prompt_pinning.rendering import GenerationSettings

SETTINGS = GenerationSettings(seed=7, batch_size=2, steps=4, width=32, height=24, scheduler="karras")


def lora(name, model_hash="aaaa", alias=None, **metadata):
    meta = {"sshs_model_hash": model_hash, **metadata} if model_hash else metadata
    return {"name": name, "alias": alias or name, "path": f"/models/Lora/{name}.safetensors", "metadata": meta}


STYLE, GRAIN = lora("style", "1111"), lora("grain", None, ss_network_dim="4")


def test_fingerprint_is_the_model_hash_else_a_digest_of_the_metadata():
    assert lora_fingerprint(STYLE) == "sshs_model_hash 1111"
    other_path = {**GRAIN, "path": "D:/elsewhere/grain.safetensors"}  # where it lies does not matter
    assert lora_fingerprint(other_path) == lora_fingerprint(GRAIN)
    assert lora_fingerprint(lora("grain", None, ss_network_dim="8")) != lora_fingerprint(GRAIN)


@pytest.mark.parametrize("second, says", [
    ([STYLE], r"missing grain"),
    ([STYLE, GRAIN, lora("extra")], r"extra extra"),
    ([lora("style", "2222"), GRAIN], r"other files for style \(sshs_model_hash 2222 there, sshs_model_hash 1111 on"),
    (None, r"no LoRA list"),
])
def test_instances_with_other_loras_are_refused_by_name(second, says):
    with FakeWebUI(loras=[STYLE, GRAIN]) as first, FakeWebUI(loras=second) as other:
        renderer = WebUIApiRenderer([first.url, other.url], timeout=5)
        with pytest.raises(InstanceMismatch, match=f"webui {other.url}: its LoRAs differ from {first.url}'s: {says}"):
            renderer.render([("a circle", "")], SETTINGS)
        assert first.renders == other.renders == []


def test_same_loras_in_another_order_pass_and_list_names_and_aliases():
    with FakeWebUI(loras=[STYLE, lora("grain", None, alias="film grain", ss_network_dim="4")]) as first, \
            FakeWebUI(loras=[lora("grain", None, alias="film grain", ss_network_dim="4"), STYLE]) as second:
        renderer = WebUIApiRenderer([first.url, second.url], timeout=5)
        assert renderer.extra_networks() == {"lora": ["film grain", "grain", "style"]}  # no hypernetwork list here
        (batch,) = renderer.render([("a circle <lora:style:0.5>", "")], SETTINGS)
        assert batch.images.shape[0] == 2


def test_an_unknown_lora_is_refused_naming_the_instances_loras():
    with FakeWebUI(loras=[STYLE, GRAIN]) as one:
        available = WebUIApiRenderer([one.url], timeout=5).extra_networks()
    vector = PromptVector.from_prompts("a circle <lora:stlye:0.8>", "", ClipBpeTokenizer(), networks=True)
    with pytest.raises(PromptError, match=r"no LoRA named 'stlye'; it has: grain, style"):
        check_names(vector.network_units(), available)
    check_names(PromptVector.from_prompts("a circle <hypernet:any:0.8>", "", ClipBpeTokenizer(),
                                          networks=True).network_units(), available)  # not listed: not checked


def test_without_a_lora_list_anywhere_nothing_is_compared():
    with FakeWebUI() as first, FakeWebUI() as second:
        renderer = WebUIApiRenderer([first.url, second.url], timeout=5)
        assert renderer.extra_networks() == {}
        renderer.connect()
