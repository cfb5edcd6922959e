"""tools/make_tiny_diffusers.py: a tiny random pipeline folder from configs, offline."""
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import make_tiny_diffusers  # noqa: E402


def test_command_writes_a_small_sdxl_folder_and_keeps_the_random_state(tmp_path, capsys):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    assert make_tiny_diffusers.main([str(tmp_path / "xl"), "--seed", "4", "--sdxl"]) == 0
    assert torch.rand(1) == before  # the host's generator was left where it was
    folder = tmp_path / "xl"
    assert capsys.readouterr().out.strip() == str(folder)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    for part in ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"):
        assert (folder / part).is_dir(), part
    assert not (folder / ".tokenizers").exists()
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 40 * 2**20
    tokenizer = json.loads((folder / "tokenizer_2" / "tokenizer_config.json").read_text())
    assert tokenizer["pad_token"] == "!"  # SDXL's second tokenizer pads with "!" (id 0), as open_clip does
    unet = json.loads((folder / "unet" / "config.json").read_text())
    assert unet["addition_embed_type"] == "text_time" and unet["cross_attention_dim"] == 64
