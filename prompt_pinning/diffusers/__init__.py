"""Rendering with diffusers Stable Diffusion models (SD1.x, SDXL): ``pip install ".[diffusers]"``.

``load_diffusers_renderer(path)`` gives a Renderer for a local pipeline folder
or a single-file checkpoint; see renderer.py for what it does like the WebUI.
"""
from .loading import load_diffusers_renderer
from .renderer import DiffusersRenderer

__all__ = ["DiffusersRenderer", "load_diffusers_renderer"]
