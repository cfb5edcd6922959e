"""The in-process renderer lists the host's LoRAs and hypernetworks for the name check."""
import sys
import types

import pytest

import webui_stand_in
from prompt_pinning.prompt.attention import PromptError
from prompt_pinning.run.builders import check_network_names
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer
from prompt_pinning.prompt.weights import PromptVector
from prompt_pinning_webui.renderer import A1111Renderer


@pytest.fixture
def host(monkeypatch):
    webui_stand_in.install()
    webui_stand_in.reset()
    from modules import shared

    lora = types.ModuleType("networks")
    lora.available_networks = {"style": object(), "grain_v2": object()}
    lora.available_network_aliases = {"style": object(), "grain": object()}
    monkeypatch.setitem(sys.modules, "networks", lora)
    monkeypatch.setattr(shared, "hypernetworks", {"anime": "/models/hypernetworks/anime.pt"}, raising=False)
    return shared


def vector(positive):
    return PromptVector.from_prompts(positive, "", ClipBpeTokenizer(), networks=True)


def test_lists_lora_names_aliases_and_hypernetworks(host):
    assert A1111Renderer(None).extra_networks() == {"lora": ["grain", "grain_v2", "style"], "hypernet": ["anime"]}
    check_network_names(vector("a cat <lora:grain:0.5> <hypernet:anime:1>"), A1111Renderer(None))
    with pytest.raises(PromptError, match=r"no LoRA named 'stlye'; it has: grain, grain_v2, style"):
        check_network_names(vector("a cat <lora:stlye:0.5>"), A1111Renderer(None))
    with pytest.raises(PromptError, match=r"no hypernetwork named 'animu'; it has: anime"):
        check_network_names(vector("a cat <hypernet:animu>"), A1111Renderer(None))


def test_a_host_without_the_lora_module_is_not_checked(host, monkeypatch):
    monkeypatch.delitem(sys.modules, "networks")
    monkeypatch.delattr(host, "hypernetworks")
    assert A1111Renderer(None).extra_networks() == {}
    check_network_names(vector("a cat <lora:anything:0.5>"), A1111Renderer(None))
