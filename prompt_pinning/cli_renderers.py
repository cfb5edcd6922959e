"""The command line's renderers other than the built-in model: their flags, checked, and how
each is built (--webui URL: running WebUIs; --diffusers PATH: a local diffusers model)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional

from .config import ConfigError, PinningConfig


def add_webui_arguments(p: argparse.ArgumentParser) -> None:
    """Render through running WebUIs (started with --api) instead of the built-in model."""
    g = p.add_argument_group("webui instances (render through the API of running WebUIs, one per GPU)")
    g.add_argument("--webui", action="append", default=[], metavar="URL",
                   help="a WebUI's URL, e.g. http://127.0.0.1:7860; repeat for more instances; credentials "
                        "come from PROMPT_PINNING_WEBUI_AUTH or --webui-auth-file, never from the URL")
    g.add_argument("--webui-auth-file", type=Path, default=None, metavar="FILE",
                   help="file with user:password (the WebUI's --api-auth), or lines 'URL user:password'")
    g.add_argument("--webui-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="longest wait for one individual's images before the instance counts as failed")
    g.add_argument("--webui-tokenizer", choices=("clip", "open_clip"), default="clip",
                   help="how the instances' model splits text: clip (SD1.x, SDXL) or open_clip (SD2.x)")
    g.add_argument("--webui-vocab", type=Path, default=None, metavar="FILE",
                   help="CLIP's BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) for splitting the prompt; "
                        "default: the one open-clip-torch ships (pip install --no-deps open-clip-torch)")


def add_diffusers_arguments(p: argparse.ArgumentParser) -> None:
    """Render with a diffusers Stable Diffusion model (pip install ".[diffusers]")."""
    g = p.add_argument_group("diffusers model (render with a local SD1.x or SDXL model, no WebUI)")
    g.add_argument("--diffusers", type=Path, default=None, metavar="PATH",
                   help="a diffusers pipeline folder, or a .safetensors/.ckpt checkpoint (with --diffusers-config)")
    g.add_argument("--diffusers-config", type=Path, default=None, metavar="DIR",
                   help="for a single-file checkpoint: a local diffusers folder of the same model kind (its "
                        "configs and tokenizers); default: the local Hugging Face cache")
    g.add_argument("--diffusers-device", default=None, metavar="DEVICE",
                   help="torch device, e.g. cuda:1 or cpu (default: cuda when available)")


def webui_renderer(args: argparse.Namespace, config: PinningConfig):
    """The --webui instances as one renderer, checked before the run starts."""
    from .remote import WebUIApiRenderer, default_tokenizer

    renderer = WebUIApiRenderer(args.webui, tokenizer=default_tokenizer(args.webui_tokenizer, args.webui_vocab),
                                auth_file=args.webui_auth_file, timeout=args.webui_timeout)
    if config.resume is None:  # a resume renders with the run's saved settings; checked at its first render
        renderer.check(config.generation)
    return renderer


def diffusers_renderer(args: argparse.Namespace, config: PinningConfig):
    """The --diffusers model, its sampler and schedule checked before it loads."""
    check_sampler(config.generation.sampler, config.generation.scheduler)
    try:
        from .diffusers import load_diffusers_renderer
    except ImportError as error:
        raise ConfigError("--diffusers", f"needs the diffusers extra ({error}): pip install \".[diffusers]\"") from None
    return load_diffusers_renderer(args.diffusers, device=_diffusers_device(args.diffusers_device),
                                   config=None if args.diffusers_config is None else str(args.diffusers_config),
                                   max_images_per_call=config.max_images_per_call)


def _diffusers_device(text: Optional[str]):
    """--diffusers-device as a torch device that this machine has (None: the default)."""
    if text is None:
        return None
    import torch

    accepted = "accepted: cpu, cuda or cuda:N (N a GPU index), mps"
    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise ConfigError("--diffusers-device", f"{text!r} is not a device; {accepted}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--diffusers-device", f"{text!r}: CUDA is not available on this machine; use cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError("--diffusers-device", f"{text!r}: this machine has {torch.cuda.device_count()} "
                                                "GPU(s), numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("--diffusers-device", f"{text!r}: MPS is not available on this machine; use cpu")
    return device


def check_sampler(sampler: str, scheduler: str) -> None:
    """Refuse an unknown sampler or schedule before the run starts."""
    from hyperbatch import get_sampler
    from hyperbatch.sigmas import SCHEDULES

    get_sampler(sampler)
    if scheduler.lower() not in (*SCHEDULES, "automatic"):
        raise ValueError(f"--scheduler: unknown schedule {scheduler!r}; "
                         f"valid: {', '.join(sorted(SCHEDULES))}, automatic")
