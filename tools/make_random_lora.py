"""Write a small random LoRA (.safetensors) for the random SD1.5 checkpoint of docs/a1111_setup.md.

usage: python tools/make_random_lora.py OUT.safetensors [--seed N] [--rank R] [--scale S]

The keys use the kohya naming for SD1 that A1111 v1.10.1's built-in Lora extension and Forge
load: ``lora_te_<CLIP text module>`` for the text encoder and ``lora_unet_<diffusers UNet
module>`` for the UNet (the host maps diffusers block names to its own), each with
``.lora_down.weight`` (rank x in), ``.lora_up.weight`` (out x rank) and ``.alpha`` (= rank,
so the host's alpha / rank scale is 1). Convolutions (proj_in, proj_out) get 1x1 kernels.

Targets: every text-encoder layer's attention projections, and in every UNet transformer block the
projections in and out and the cross-attention's keys and values, so that both the te and the
unet strength of ``<lora:name:te:unet>`` change the image. Few and small modules on purpose: the
host keeps a copy of every weight a LoRA changes (about 300 MB here in float32; all attention and
feed-forward weights would be 1.3 GB, too much beside a CPU WebUI's 7 GB on a small machine).
``--scale`` sizes the update against the layer's own default-initialised weights (their standard
deviation is 1/sqrt(3 * fan_in); the update's is scale/sqrt(fan_in)): the default 1 changes a
random-weight model's image clearly at strength 1. Needs only torch and safetensors.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from safetensors.torch import save_file

# SD1.5 (configs/v1-inference.yaml, the CLIP ViT-L/14 text tower)
TEXT_LAYERS, TEXT_WIDTH = 12, 768
CONTEXT_DIM = 768
# diffusers names of the UNet's transformer blocks and their channels (model_channels 320, mult 1, 2, 4, 4)
ATTENTION_BLOCKS = (
    [(f"down_blocks_{b}_attentions_{a}", 320 * (1, 2, 4)[b]) for b in range(3) for a in range(2)]
    + [("mid_block_attentions_0", 1280)]
    + [(f"up_blocks_{b}_attentions_{a}", 320 * (4, 2, 1)[b - 1]) for b in range(1, 4) for a in range(3)]
)


def lora_modules() -> dict[str, tuple[int, int, bool]]:
    """kohya module name -> (in features, out features, is a 1x1 convolution)."""
    out = {}
    for layer in range(TEXT_LAYERS):
        base = f"lora_te_text_model_encoder_layers_{layer}_"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[f"{base}self_attn_{proj}"] = (TEXT_WIDTH, TEXT_WIDTH, False)
    for block, c in ATTENTION_BLOCKS:
        base = f"lora_unet_{block}_"
        out[f"{base}proj_in"] = (c, c, True)
        out[f"{base}proj_out"] = (c, c, True)
        out[f"{base}transformer_blocks_0_attn2_to_k"] = (CONTEXT_DIM, c, False)
        out[f"{base}transformer_blocks_0_attn2_to_v"] = (CONTEXT_DIM, c, False)
    return out


def random_lora(seed: int = 0, rank: int = 4, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """The state dict: lora_down ~ N(0, 1/in), lora_up ~ N(0, scale^2/rank), alpha = rank (fp16)."""
    narrowest = min(min(fan_in, fan_out) for fan_in, fan_out, _ in lora_modules().values())
    if not 1 <= rank <= narrowest:
        raise ValueError(f"rank must be 1 to {narrowest} (the narrowest layer's width), got {rank}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, got {scale}")
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, (fan_in, fan_out, conv) in lora_modules().items():
        down = torch.randn(rank, fan_in, generator=generator) / math.sqrt(fan_in)
        up = torch.randn(fan_out, rank, generator=generator) * (scale / math.sqrt(rank))
        if conv:
            down, up = down[:, :, None, None], up[:, :, None, None]
        state[f"{name}.lora_down.weight"] = down.half().contiguous()
        state[f"{name}.lora_up.weight"] = up.half().contiguous()
        state[f"{name}.alpha"] = torch.tensor(float(rank)).half()
    return state


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the .safetensors file to write (e.g. models/Lora/random.safetensors)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rank", type=int, default=4)
    parser.add_argument("--scale", type=float, default=1.0, help="update size against the layers' own weights")
    args = parser.parse_args(argv)
    if args.out.suffix != ".safetensors":
        parser.error(f"OUT must end in .safetensors (the host lists LoRAs by extension), got {args.out}")
    try:
        state = random_lora(args.seed, args.rank, args.scale)
    except ValueError as error:
        parser.error(str(error))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"ss_network_module": "networks.lora", "ss_network_dim": str(args.rank),
                "ss_network_alpha": str(args.rank), "ss_base_model_version": "sd_v1",
                "ss_output_name": args.out.stem}
    save_file(state, str(args.out), metadata=metadata)
    values = sum(t.numel() for t in state.values())
    print(f"wrote {args.out}: {len(state)} tensors, {values / 1e6:.2f}M values, "
          f"{len(lora_modules())} modules, rank {args.rank}, scale {args.scale:g}")


if __name__ == "__main__":
    main()
