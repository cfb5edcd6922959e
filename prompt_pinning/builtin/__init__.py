"""The built-in model: an exact latent-diffusion denoiser over procedural scenes.

It needs no downloaded weights. Scenes are fixed layouts (layouts.py) whose
colours are Gaussian under a prior set by the prompt and whose geometry the
prompt moves continuously (conditioning.py); the denoiser is the exact
posterior mean of that family (denoiser.py). Like Stable Diffusion it
diffuses in a small latent space and decodes the result to pixels.
``BuiltinRenderer`` implements the engine's Renderer interface;
``WordTokenizer`` its Tokenizer.
"""
from .denoiser import LayoutDenoiser
from .layouts import Layouts, draw_layouts
from .renderer import BuiltinRenderer
from .tokenizer import WordTokenizer

__all__ = ["BuiltinRenderer", "LayoutDenoiser", "Layouts", "WordTokenizer", "draw_layouts"]
