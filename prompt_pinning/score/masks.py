"""Target masks: which pixels the loss counts.

A mask is a (H, W) float32 map in [0, 1] at the generation size: 1 (white)
counts fully, 0 (black) is ignored, grey weighs in between (soft edges). Every
pair value of the loss is then the mask-weighted mean of FLIP's error map,
``sum(mask * error) / sum(mask)``, for target x batch and batch x batch pairs
alike; without a mask the plain mean is used, unchanged.

Where a mask comes from (``target_mask_source``):

- ``mask image``: ``target_mask`` (a path, PIL image, array or tensor);
- ``target alpha``: the alpha channel of the first target image;
- ``inpaint mask`` / ``inverted inpaint mask``: in the WebUI's img2img
  inpainting, the mask drawn there (A1111's "Inpaint masked" / "Inpaint not
  masked"); elsewhere, ``target_mask`` stands for it.

Colour mask images count by luminance; a mask image's own transparency counts
as black (ignored). Files are opened as PNG, JPEG or WEBP only. A mask of
another size is centre-cropped and resized exactly as target images are, so
the two stay aligned.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..options import MASK_SOURCES
from .targets import EncodedImage, TargetImageError, _scaled, crop_box, decode_image

INPAINT_SOURCES = MASK_SOURCES[2:]

MAX_MASK_PIXELS = 4096 * 4096


class MaskError(TargetImageError):
    """A mask that cannot be used; the message names it and what is accepted."""


def build_mask(config) -> Optional[torch.Tensor]:
    """The (H, W) mask a run of ``config`` (a PinningConfig) uses, or None without one."""
    width, height = config.generation.width, config.generation.height
    source = config.target_mask_source
    if source == "target alpha":
        if config.target_mask is not None:
            raise MaskError("target_mask: give no mask image when target_mask_source is 'target alpha' "
                            "(the mask is the first target's alpha channel)")
        if not config.targets:
            raise MaskError("target_mask_source: 'target alpha' takes the mask from the first target "
                            "image's alpha channel, but no target image is given")
        return alpha_mask(config.targets[0], width, height)
    if config.target_mask is None:
        if source in INPAINT_SOURCES:
            raise MaskError(f"target_mask_source: {source!r} needs the inpaint mask: draw one in the "
                            "WebUI's img2img inpaint tab (or give target_mask on the command line / in Python)")
        return None
    mask = load_mask(config.target_mask, width, height)
    return 1.0 - mask if source == "inverted inpaint mask" else mask


def load_mask(source: Any, width: int, height: int, label: str = "target_mask") -> torch.Tensor:
    """Any mask-like source -> (height, width) float32 in [0, 1], with some weight."""
    values = _mask_values(source, label)
    return check_mask(fit_mask(values, width, height), (height, width), label)


def alpha_mask(source: Any, width: int, height: int, label: str = "targets[0]") -> torch.Tensor:
    """The alpha channel of a target image (path, PIL image, or (H, W, 2|4) array) as a mask."""
    if isinstance(source, (str, Path)):
        source = open_mask_file(Path(source), label)
    if isinstance(source, EncodedImage):  # a target checked from its header, decoded here
        source = source.decode()
    if isinstance(source, Image.Image):
        if "A" not in source.getbands() and not (source.mode == "P" and "transparency" in source.info):
            raise MaskError(f"{label}: has no alpha channel (mode {source.mode}); 'target alpha' needs a "
                            "PNG or WEBP with transparency, or use a separate mask image")
        values = np.asarray(source.convert("RGBA"), dtype=np.float32)[..., 3] / 255.0
    elif isinstance(source, (np.ndarray, torch.Tensor)):
        array = _scaled_values(label, np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source))
        if array.ndim != 3 or array.shape[-1] not in (2, 4):
            raise MaskError(f"{label}: 'target alpha' needs an (H, W, 2) or (H, W, 4) array, got {array.shape}")
        values = array[..., -1]
    else:
        raise MaskError(f"{label}: 'target alpha' needs a file path, PIL image or array, got {type(source).__name__}")
    return check_mask(fit_mask(torch.from_numpy(np.ascontiguousarray(values, np.float32)), width, height),
                      (height, width), f"{label} (alpha channel)")


def open_mask_file(path: Path, label: str) -> Image.Image:
    """A mask file through the targets' opener: the same formats, size check and messages."""
    return decode_image(Path(path), f"{label} {path}", MAX_MASK_PIXELS, MaskError)


def _mask_values(source: Any, label: str) -> torch.Tensor:
    if isinstance(source, (str, Path)):
        source = open_mask_file(Path(source), label)
    if isinstance(source, Image.Image):
        return torch.from_numpy(_pil_values(source))
    if isinstance(source, (np.ndarray, torch.Tensor)):
        array = source.detach().cpu().numpy() if isinstance(source, torch.Tensor) else np.asarray(source)
        array = _scaled_values(label, array)
        if array.ndim == 3 and 1 in (array.shape[0], array.shape[-1]):
            array = array.reshape(array.shape[1:] if array.shape[0] == 1 else array.shape[:-1])
        if array.ndim != 2:
            raise MaskError(f"{label}: expected one channel, shape (H, W), (1, H, W) or (H, W, 1); "
                            f"got {array.shape} (give colour masks as image files)")
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    raise MaskError(f"{label}: expected a file path, a PIL image, a numpy array or a torch tensor, "
                    f"got {type(source).__name__}")


def _scaled_values(label: str, array: np.ndarray) -> np.ndarray:
    try:
        return _scaled(label, array)
    except MaskError:
        raise
    except TargetImageError as error:
        raise MaskError(str(error)) from None


def _pil_values(image: Image.Image) -> np.ndarray:
    """Luminance in [0, 1]; the mask's own transparency counts as black."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        return np.clip(np.asarray(image, dtype=np.float64) / 65535.0, 0.0, 1.0).astype(np.float32)
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    has_alpha = "A" in image.getbands() or (image.mode == "P" and "transparency" in image.info)
    rgba = np.asarray(image.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    grey = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
    return np.clip(grey * rgba[..., 3] if has_alpha else grey, 0.0, 1.0).astype(np.float32)


def fit_mask(values: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """Centre-crop (H, W) values to the aspect of width:height and resize them, as targets are."""
    src_h, src_w = values.shape
    if (src_w, src_h) == (width, height):
        return values.float()
    left, top, w, h = crop_box(src_w, src_h, width, height)
    cropped = values[top:top + h, left:left + w].float()
    return F.interpolate(cropped[None, None], size=(height, width), mode="bilinear", antialias=True,
                         align_corners=False)[0, 0].clamp_(0.0, 1.0)


def check_mask(mask: Any, shape: tuple[int, int], label: str = "mask") -> torch.Tensor:
    """A (H, W) float tensor of finite values in [0, 1] with some weight, at ``shape``."""
    if not isinstance(mask, torch.Tensor):
        raise MaskError(f"{label}: expected a torch.Tensor of shape {shape}, got {type(mask).__name__}")
    if tuple(mask.shape) != tuple(shape) or not mask.is_floating_point():
        raise MaskError(f"{label}: expected a float mask of shape (H, W) = {tuple(shape)}, "
                        f"got {mask.dtype} {tuple(mask.shape)}")
    mask = mask.float()
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise MaskError(f"{label}: values must be finite and in [0, 1] (white counts, black is ignored)")
    if float(mask.sum()) <= 0.0:
        raise MaskError(f"{label}: is black everywhere, so no pixel would count; white marks the pixels that count")
    return mask


class DeviceMask:
    """A loss's mask (or none) with its copies on each device the loss scores on."""

    def __init__(self, mask: Optional[torch.Tensor] = None, images_shape: Optional[tuple] = None):
        self._copies: dict[str, torch.Tensor] = {}
        if mask is not None:
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else ()
            if images_shape is not None and shape != tuple(images_shape):
                raise MaskError(f"mask: size {shape} differs from the targets' {tuple(images_shape)}")
            mask = check_mask(mask, shape if len(shape) == 2 else (0, 0), "mask")
            self._copies[str(mask.device)] = mask

    @property
    def mask(self) -> Optional[torch.Tensor]:
        return next(iter(self._copies.values()), None)

    def on(self, device: torch.device) -> Optional[torch.Tensor]:
        """The mask on ``device`` (copied once), or None without a mask."""
        if not self._copies:
            return None
        key = str(device)
        if key not in self._copies:
            self._copies[key] = self.mask.to(device)
        return self._copies[key]

    def check_size(self, images: torch.Tensor, name: str) -> None:
        mask = self.mask
        if mask is not None and tuple(images.shape[2:]) != tuple(mask.shape):
            raise MaskError(f"{name}: size {tuple(images.shape[2:])} differs from the mask's "
                            f"{tuple(mask.shape)}; give the mask at the generation size")


def overlay(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Targets with the mask shown: ignored pixels dimmed and tinted, counted pixels as they are."""
    m = mask.to(images.dtype)[None, None]
    tint = torch.tensor([0.55, 0.1, 0.45], dtype=images.dtype).view(1, 3, 1, 1)
    return images * (0.25 + 0.75 * m) + tint * 0.35 * (1.0 - m)
