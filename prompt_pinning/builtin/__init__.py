"""The built-in model: an exact diffusion denoiser over a procedural image set.

It needs no downloaded weights. ``BuiltinRenderer`` implements the engine's
Renderer interface; ``WordTokenizer`` its Tokenizer.
"""
from .denoiser import PosteriorMeanDenoiser
from .images import ImageSet, image_set
from .renderer import BuiltinRenderer
from .tokenizer import WordTokenizer

__all__ = ["BuiltinRenderer", "ImageSet", "PosteriorMeanDenoiser", "WordTokenizer", "image_set"]
