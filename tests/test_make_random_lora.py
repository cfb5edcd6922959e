"""tools/make_random_lora.py: a random LoRA whose keys and shapes fit an SD1.5 checkpoint's modules.

The modules come from diffusers' UNet and transformers' CLIP text model built with the SD1.5
config (on the meta device, no weights), the names the host looks up from its rule for kohya
keys: diffusers block names -> ldm's input/middle/output blocks, ``lora_te_`` -> the text
encoder (whose modules take the te strength).
"""
import importlib.util
import re

import pytest
import torch
from safetensors import safe_open

UNet2DConditionModel = pytest.importorskip("diffusers").UNet2DConditionModel  # the diffusers extra
transformers = pytest.importorskip("transformers")
CLIPTextConfig, CLIPTextModel = transformers.CLIPTextConfig, transformers.CLIPTextModel

import webui_stand_in

TOOL = webui_stand_in.REPO / "tools" / "make_random_lora.py"
# where ldm's SD1.5 UNet has its SpatialTransformers (input_blocks.N.1, middle_block.1, output_blocks.N.1)
LDM_ATTENTIONS = {f"input_blocks_{n}_1" for n in (1, 2, 4, 5, 7, 8)} | {"middle_block_1"} | {
    f"output_blocks_{n}_1" for n in range(3, 12)}


def load_tool():
    spec = importlib.util.spec_from_file_location("make_random_lora", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sd15_modules():
    """kohya name -> the module's weight shape, for the SD1.5 UNet and text encoder."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8)
        text = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                            num_attention_heads=12, projection_dim=768))
    shapes = {}
    # the text tower as the host's transformers nests it (CLIPTextModel.text_model), whatever this one does
    for prefix, model in (("lora_unet_", unet), ("lora_te_text_model_", getattr(text, "text_model", text))):
        for name, module in model.named_modules():
            if isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
                shapes[prefix + name.replace(".", "_")] = tuple(module.weight.shape)
    return shapes


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("lora") / "random.safetensors"
    load_tool().main([str(out), "--seed", "3", "--rank", "4"])
    with safe_open(str(out), "pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, handle.metadata()


def ldm_name(module):
    """The host's rule for a kohya UNet attention key: diffusers block -> ldm block."""
    found = re.match(r"lora_unet_(?:(down|up)_blocks_(\d+)|mid_block)_attentions_(\d+)_", module)
    assert found, module
    kind, index = found.group(1), int(found.group(3))
    if kind is None:
        return "middle_block_1"
    block = int(found.group(2))
    if kind == "down":
        return f"input_blocks_{1 + 3 * block + index}_1"
    return f"output_blocks_{3 * block + index}_1"


def test_every_key_fits_an_sd15_module(written, sd15_modules):
    state, _ = written
    modules = {key.rsplit(".", 2)[0] if key.endswith(".weight") else key.rsplit(".", 1)[0] for key in state}
    assert len(state) == 3 * len(modules)
    rank = 4
    for module in modules:
        assert module in sd15_modules, module
        shape = sd15_modules[module]
        down, up = state[f"{module}.lora_down.weight"], state[f"{module}.lora_up.weight"]
        assert tuple(down.shape) == (rank, shape[1], *shape[2:]), module
        assert tuple(up.shape) == (shape[0], rank, *([1, 1] if len(shape) == 4 else [])), module
        assert state[f"{module}.alpha"].item() == rank
        assert down.dtype == up.dtype == torch.float16


def test_both_the_text_encoder_and_the_unet_are_targeted(written):
    state, metadata = written
    modules = {key.split(".")[0] for key in state}
    te = {m for m in modules if m.startswith("lora_te_text_model_encoder_layers_")}
    unet = modules - te
    assert {int(m.split("_")[6]) for m in te} == set(range(12))  # every text-encoder layer
    assert {ldm_name(m) for m in unet} == LDM_ATTENTIONS  # every transformer block of the UNet
    assert any("attn2_to_k" in m for m in unet) and any(m.endswith("proj_in") for m in unet)
    assert metadata["ss_base_model_version"] == "sd_v1"


def test_the_weights_the_host_keeps_a_copy_of_stay_small(written, sd15_modules):
    state, _ = written
    changed = sum(torch.Size(sd15_modules[key.split(".")[0]]).numel() for key in state if key.endswith(".alpha"))
    assert changed * 4 < 350e6  # float32 bytes the host backs up while the LoRA is applied


def test_the_update_is_as_large_as_the_scale_says(written):
    state, _ = written
    name = "lora_unet_mid_block_attentions_0_transformer_blocks_0_attn2_to_k"
    update = state[f"{name}.lora_up.weight"].float() @ state[f"{name}.lora_down.weight"].float()
    own = 1 / (3 * 768) ** 0.5  # a default-initialised Linear's weight std (768 inputs)
    assert 1.2 * own < update.std().item() < 2.4 * own  # scale 1: about sqrt(3) times the layer's own


def test_seeds_and_scales_give_other_weights(tmp_path):
    tool = load_tool()
    one, two, big = tool.random_lora(1), tool.random_lora(2), tool.random_lora(1, scale=4.0)
    key = "lora_te_text_model_encoder_layers_0_self_attn_v_proj.lora_up.weight"
    assert not torch.equal(one[key], two[key])
    assert torch.allclose(big[key].float(), 4 * one[key].float(), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("args, message", [(["--rank", "0"], "rank must be 1 to 320"),
                                           (["--rank", "100000"], "rank must be 1 to 320 (the narrowest"),
                                           (["--scale", "-1"], "scale must be a positive number")])
def test_bad_options_are_refused(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        load_tool().main([str(tmp_path / "x.safetensors"), *args])
    assert message in capsys.readouterr().err


def test_a_name_without_the_safetensors_suffix_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_tool().main([str(tmp_path / "x.pt")])
    assert "must end in .safetensors" in capsys.readouterr().err
