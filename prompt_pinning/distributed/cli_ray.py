"""The command line's Ray options: ``--ray ADDRESS`` and ``--ray-actors N``."""
from __future__ import annotations

import argparse
import re

from .spec import RendererSpec


def add_ray_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group('ray (render on Ray actors, past one machine; pip install ".[ray]")')
    g.add_argument("--ray", default=None, metavar="ADDRESS",
                   help="render a generation's individuals on Ray actors: local (start Ray on this machine), "
                        "auto (the cluster this machine joined with ray start) or HOST:PORT")
    g.add_argument("--ray-actors", type=int, default=None, metavar="N",
                   help="render actors; default: one per GPU of the cluster for a GPU renderer, 2 on CPUs, one "
                        "per --webui instance (a sweep: runs at once; default one per GPU, else per CPU)")


def renderer_spec(args: argparse.Namespace, config) -> RendererSpec:
    """The renderer the flags name, as a spec an actor or task builds: --diffusers, --webui or the built-in model."""
    diffusers = getattr(args, "diffusers", None)  # the diffusers renderer's flag, where it is installed
    if diffusers and args.webui:
        raise ValueError("--diffusers: give either --diffusers or --webui, not both")
    if diffusers:
        device = getattr(args, "diffusers_device", None)
        if device and re.fullmatch(r"cuda:\d+", str(device).strip()):
            raise ValueError(f"--diffusers-device: {device!r} with --ray: each Ray actor sees only the GPU Ray "
                             "gave it, so give --diffusers-device cuda (or leave it out)")
        config_folder = getattr(args, "diffusers_config", None)
        return RendererSpec("diffusers", str(diffusers), {
            "threads": args.threads, "device": device,
            "config": None if config_folder is None else str(config_folder),
            "max_images_per_call": config.max_images_per_call})
    if args.webui:
        return RendererSpec("webui", list(args.webui), {
            "tokenizer": args.webui_tokenizer, "vocab": args.webui_vocab, "auth_file": args.webui_auth_file,
            "timeout": args.webui_timeout})
    return RendererSpec("builtin", None, {"max_images_per_call": config.max_images_per_call,
                                          "threads": args.threads})


def ray_renderer(args: argparse.Namespace, config):
    """--ray: the run's renderer on Ray actors, checked before the run starts."""
    from .cluster import connect
    from .renderer import RayRenderer

    if args.ray_actors is not None and args.ray_actors < 1:
        raise ValueError(f"--ray-actors: must be >= 1, got {args.ray_actors}")
    spec = renderer_spec(args, config)
    connect(args.ray)
    renderer = RayRenderer(spec, args.ray_actors)
    check = getattr(renderer, "check", None)
    if callable(check) and config.resume is None:
        check(config.generation)
    return renderer
