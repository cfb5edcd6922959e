"""Write a tiny random Stable Diffusion pipeline folder (diffusers format), with no download.

    python tools/make_tiny_diffusers.py DIR [--seed N] [--sdxl]

SD1.5 layout by default (UNet, VAE, one CLIP text encoder, CLIPTokenizer,
scheduler); ``--sdxl`` gives the SDXL layout (two text encoders, the second with
a projection for the pooled embedding, and the UNet's size/crop conditioning).
The widths are tiny, so a 64x64 render of batch 2 in 4 steps takes a fraction
of a second on a CPU, but every block kind is the real one and the VAE scales by
8 as SD's does. The tokenizers hold the real CLIP BPE vocabulary (from the
open-clip-torch package, as tools/make_clip_cache.py writes it).

The weights are seeded random numbers. Three changes from the default
initialisation: the text encoders' outputs get a nonzero mean (A1111's emphasis
divides by it, and real CLIP outputs have one), the final layer norm's scale
varies per channel, and the UNet's cross-attention projections are scaled up
(CROSS_ATTENTION_GAIN), so that prompts and their weights move the image
visibly rather than by a few thousandths.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_clip_cache import VOCAB_SIZE, write_tokenizer  # noqa: E402

START_ID, END_ID = VOCAB_SIZE - 2, VOCAB_SIZE - 1
TEXT_WIDTH = 32
TEXT = dict(vocab_size=VOCAB_SIZE, hidden_size=TEXT_WIDTH, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=TEXT_WIDTH,
            bos_token_id=START_ID, eos_token_id=END_ID, pad_token_id=END_ID)
VAE = dict(block_out_channels=(8, 8, 16, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4,
           sample_size=64, down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
UNET = dict(sample_size=8, block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=8,
            attention_head_dim=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
TIME_EMBED = 8  # SDXL: width of each of the six size/crop numbers' embedding
SCHEDULER = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
                 prediction_type="epsilon", timestep_spacing="leading", steps_offset=1)
TEXT_MEAN = 0.1  # mean of the text encoders' outputs
CROSS_ATTENTION_GAIN = 8.0  # x30 the image change from a prompt weight's change, at 64x64 (and still stable)


def text_encoder(with_projection: bool):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(**TEXT)
    model = (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config)
    with torch.no_grad():
        inner = getattr(model, "text_model", model)  # transformers 5 has no text_model level in CLIPTextModel
        inner.embeddings.token_embedding.weight.add_(TEXT_MEAN)  # the hidden states' mean (SDXL reads them)
        norm = inner.final_layer_norm
        norm.weight.normal_(1.0, 0.3)
        norm.bias.normal_(TEXT_MEAN, 0.3)
    return model


def with_cross_attention_gain(unet):
    with torch.no_grad():
        for name, module in unet.named_modules():
            if name.endswith("attn2"):  # cross-attention: keys, values and output from the prompt
                for linear in (module.to_k, module.to_v, module.to_out[0]):
                    linear.weight.mul_(CROSS_ATTENTION_GAIN)
    return unet


def tokenizer(folder: Path, pad: str = "<|endoftext|>"):
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    write_tokenizer(folder)
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = folder / name
        path.write_text(json.dumps(dict(json.loads(path.read_text()), pad_token=pad), indent=2))
    return CLIPTokenizer.from_pretrained(folder)


def build_pipeline(folder: Path, sdxl: bool = False):
    from diffusers import (AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline,
                           StableDiffusionXLPipeline, UNet2DConditionModel)

    vae = AutoencoderKL(**VAE)
    scheduler = EulerDiscreteScheduler(**SCHEDULER)
    staging = folder / ".tokenizers"
    if not sdxl:
        unet = with_cross_attention_gain(UNet2DConditionModel(**UNET, cross_attention_dim=TEXT_WIDTH))
        return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder(False), tokenizer=tokenizer(staging / "1"),
                                       unet=unet, scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    unet = with_cross_attention_gain(UNet2DConditionModel(
        **UNET, cross_attention_dim=2 * TEXT_WIDTH, addition_embed_type="text_time", addition_time_embed_dim=TIME_EMBED,
        projection_class_embeddings_input_dim=6 * TIME_EMBED + TEXT_WIDTH))
    return StableDiffusionXLPipeline(vae=vae, text_encoder=text_encoder(False), text_encoder_2=text_encoder(True),
                                     tokenizer=tokenizer(staging / "1"), tokenizer_2=tokenizer(staging / "2", pad="!"),
                                     unet=unet, scheduler=scheduler)


def make_tiny(folder: Path, seed: int = 0, sdxl: bool = False) -> Path:
    """Write the pipeline to ``folder`` (created); the host's random state is left as it was."""
    import shutil

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        pipeline = build_pipeline(folder, sdxl)
    pipeline.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder / ".tokenizers", ignore_errors=True)
    return folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, metavar="DIR", help="pipeline folder to write (created)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    parser.add_argument("--sdxl", action="store_true", help="SDXL layout (two text encoders, pooled embedding)")
    args = parser.parse_args(argv)
    print(make_tiny(args.folder, args.seed, args.sdxl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
