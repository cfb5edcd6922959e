"""Write an SD1.5-layout checkpoint with random weights (for testing the WebUI on CPU).

The UNet and VAE are built from the shapes in the WebUI's configs/v1-inference.yaml
(using the ldm code in repositories/stable-diffusion-stability-ai), the text encoder
from the offline CLIP config. Every layer gets PyTorch's default random init, including
the layers that ldm initialises to zero, so the output depends on the prompt; the text
encoder's output gets a non-zero mean (see shift_text_output_mean).

usage: python make_random_checkpoint.py WEBUI_DIR OUT.safetensors [--seed N]

Without an A1111 folder (for Forge), name the three inputs instead of WEBUI_DIR:
--ldm (a clone of Stability-AI/stablediffusion), --config (A1111's v1-inference.yaml)
and --text-config (a folder holding a CLIP text encoder's config.json, such as the one
Forge ships under backend/huggingface/).
"""
import argparse
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file


def reset_all(module: torch.nn.Module):
    for m in module.modules():
        if hasattr(m, "reset_parameters") and m is not module:
            m.reset_parameters()


def shift_text_output_mean(text, mean=0.1, spread=0.2):
    """Give the text encoder's output a clearly non-zero mean.

    With a freshly initialised final LayerNorm (bias 0) the output mean is ~1e-9, and the
    WebUI's "Original" emphasis rescales by original_mean / new_mean: a ratio of two
    near-zero numbers, which turns weighted prompts into inf/NaN in the UNet.
    """
    norm = text.text_model.final_layer_norm
    with torch.no_grad():
        norm.bias.normal_(mean, spread)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("webui_dir", type=Path, nargs="?", help="an A1111 folder (its ldm repository and config)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ldm", type=Path, help="a clone of Stability-AI/stablediffusion (default: the WebUI's)")
    ap.add_argument("--config", type=Path, help="v1-inference.yaml (default: the WebUI's configs/)")
    ap.add_argument("--text-config", default="openai/clip-vit-large-patch14",
                    help="a folder with the CLIP text encoder's config.json, or a Hugging Face name in the cache")
    args = ap.parse_args()
    if args.webui_dir is None and (args.ldm is None or args.config is None):
        ap.error("give WEBUI_DIR, or --ldm and --config")
    ldm = args.ldm or args.webui_dir / "repositories" / "stable-diffusion-stability-ai"
    config = args.config or args.webui_dir / "configs" / "v1-inference.yaml"

    sys.path.insert(0, str(ldm))
    from ldm.models.autoencoder import AutoencoderKL
    from ldm.modules.diffusionmodules.openaimodel import UNetModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(args.seed)
    params = OmegaConf.load(config).model.params
    unet = UNetModel(**params.unet_config.params)
    vae = AutoencoderKL(**params.first_stage_config.params)
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(args.text_config))
    for part in (unet, vae, text):
        reset_all(part)
    shift_text_output_mean(text)

    state = {}
    for prefix, part in [("model.diffusion_model.", unet), ("first_stage_model.", vae),
                         ("cond_stage_model.transformer.", text)]:
        for key, value in part.state_dict().items():
            value = value.detach().contiguous()
            state[prefix + key] = value.half() if value.is_floating_point() else value
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(args.out))
    n = sum(v.numel() for v in state.values())
    print(f"wrote {args.out}: {len(state)} tensors, {n / 1e6:.0f}M values")


if __name__ == "__main__":
    main()
