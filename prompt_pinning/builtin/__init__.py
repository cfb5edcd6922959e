"""The built-in model: an exact latent-diffusion denoiser over a procedural image set.

It needs no downloaded weights. Like Stable Diffusion it diffuses in a small
latent space and decodes the result to pixels (latents.py).
``BuiltinRenderer`` implements the engine's Renderer interface;
``WordTokenizer`` its Tokenizer.
"""
from .denoiser import PosteriorMeanDenoiser
from .images import ImageSet, image_set
from .latents import LatentDecoder
from .renderer import BuiltinRenderer
from .tokenizer import WordTokenizer

__all__ = ["BuiltinRenderer", "ImageSet", "LatentDecoder", "PosteriorMeanDenoiser", "WordTokenizer", "image_set"]
