"""Target images: load anything image-like into a float32 sRGB batch.

Accepted sources: file paths (str or Path), PIL images, numpy arrays and torch
tensors. Arrays may be (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4, or a
batch (N, ...) of those; uint8 is divided by 255, uint16 by 65535, bool maps
to 0/1, and float arrays must already be in [0, 1]. Greyscale is repeated to
RGB, palette images are expanded, and alpha is composited over white (as the
WebUI flattens transparent images). A target whose size differs from the
generation size is centre-cropped to the generation aspect ratio and resized,
with a log line saying so.

Image files are opened only with the PNG, JPEG and WebP decoders
(``IMAGE_FORMATS``): no other Pillow plugin (EPS, which runs Ghostscript, TIFF,
PSD, ICO ...) ever sees the bytes. A file's size is read from its header and
checked before it is decoded; images are decoded one at a time and only the
copy at the generation size is kept. ``EncodedImage`` holds a checked image's
bytes until then (the WebUI's uploads and API strings).
"""
from __future__ import annotations

import logging
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

_SOURCE_TYPES = "a file path, a PIL image, a numpy array or a torch tensor"
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")  # the only decoders that ever run on a target file
MAX_TARGETS = 64  # the loss compares every image with every target; the same everywhere (CLI, WebUI, resume)
MAX_SOURCE_PIXELS = 4096 * 4096  # per image file, read from its header before decoding
# Targets are kept at the generation size for the whole run: 64 at 1024x1024 (0.8 GB as float32).
MAX_TARGET_PIXELS = 64 * 1024 * 1024


class TargetImageError(ValueError):
    """A target image that cannot be used; the message names it."""


def open_image(data: bytes | Path, label: str, max_pixels: int = MAX_SOURCE_PIXELS,
               error: type[TargetImageError] = TargetImageError) -> Image.Image:
    """The one image opener (targets, masks, a WebUI's answers): an image file or its bytes, opened
    with the allowed decoders only and its header size checked; not decoded yet. Every refusal is
    ``error`` (a TargetImageError) naming ``label``."""
    if isinstance(data, Path) and not data.is_file():
        raise error(f"{label}: no such file")
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data, formats=IMAGE_FORMATS)
    except UnidentifiedImageError:
        raise error(f"{label}: not a PNG, JPEG or WebP image (other formats are not opened)") from None
    except Image.DecompressionBombError:
        raise error(f"{label}: its header claims a huge canvas (a decompression bomb?); at most "
                    f"{max_pixels:,} pixels ({_side(max_pixels)}) are opened") from None
    except (OSError, ValueError, SyntaxError) as reason:
        raise error(f"{label}: cannot be read as an image ({reason})") from None
    if image.width * image.height > max_pixels:
        size = f"{image.width}x{image.height}"
        image.close()
        raise error(f"{label}: {size}; at most {max_pixels:,} pixels ({_side(max_pixels)}) are opened, "
                    "and images are scaled to the run's size anyway")
    return image


def _side(pixels: int) -> str:
    side = int(pixels ** 0.5)
    return f"{side}x{side}"


def decode_image(data: bytes | Path, label: str, max_pixels: int = MAX_SOURCE_PIXELS,
                 error: type[TargetImageError] = TargetImageError) -> Image.Image:
    """``open_image``, then decoded and turned upright by its EXIF orientation."""
    return load_opened(open_image(data, label, max_pixels, error), label, error)


def load_opened(image: Image.Image, label: str, error: type[TargetImageError] = TargetImageError) -> Image.Image:
    """Decode an image from ``open_image`` (closing the file), upright by its EXIF orientation."""
    try:
        with image:
            image.load()
            return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as reason:
        raise error(f"{label}: cannot be decoded ({reason})") from None


@dataclass(frozen=True)
class EncodedImage:
    """A target image file's bytes, checked by ``open_image``, decoded only when loaded."""

    data: bytes
    label: str
    width: int
    height: int
    format: str

    @classmethod
    def checked(cls, data: bytes, label: str) -> "EncodedImage":
        with open_image(data, label) as image:
            return cls(data, label, image.width, image.height, image.format)

    def decode(self) -> Image.Image:
        return decode_image(self.data, self.label)


def check_target_count(count: int) -> None:
    if count > MAX_TARGETS:
        raise TargetImageError(f"targets: {count} images given; at most {MAX_TARGETS} are accepted")


def load_targets(sources: Any, width: int, height: int) -> torch.Tensor:
    """Load target images as a (N, 3, height, width) float32 sRGB tensor in [0, 1]."""
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a whole number >= 1, got {value!r}")
    sources = _as_list(sources)
    check_target_count(len(sources))
    _check_total(len(sources), width, height)  # before anything is decoded
    images = []
    for label, source in _labelled(sources):
        batch = _to_chw_batch(label, source)
        for k, image in enumerate(batch):
            _check_total(len(images) + 1, width, height)
            images.append(fit_to_size(image, width, height, label if len(batch) == 1 else f"{label}[{k}]"))
        del batch  # only the copies at the generation size are kept
    if not images:
        return torch.zeros(0, 3, height, width)
    return torch.stack(images)


def _as_list(sources: Any) -> list:
    if isinstance(sources, (str, Path, Image.Image, np.ndarray, torch.Tensor, EncodedImage)):
        return [sources]
    return [] if sources is None else list(sources)


def _check_total(count: int, width: int, height: int) -> None:
    """Refuse targets whose copies at the generation size pass MAX_TARGET_PIXELS."""
    if count > MAX_TARGETS:
        raise TargetImageError(f"targets: more than {MAX_TARGETS} images; at most {MAX_TARGETS} are accepted")
    if count * width * height > MAX_TARGET_PIXELS:
        raise TargetImageError(
            f"targets: {count} images at the generation size {width}x{height} are {count * width * height:,} "
            f"pixels; targets may total at most {MAX_TARGET_PIXELS:,} (64 at 1024x1024): give fewer target "
            "images or lower width and height")


def _labelled(sources: list) -> Iterable[tuple[str, Any]]:
    for i, source in enumerate(sources):
        label = str(source) if isinstance(source, (str, Path)) else \
            source.label if isinstance(source, EncodedImage) else f"target {i} ({type(source).__name__})"
        yield label, source


def _to_chw_batch(label: str, source: Any) -> list[torch.Tensor]:
    if isinstance(source, (str, Path)):
        return [_pil_to_chw(_open(Path(source)), label)]
    if isinstance(source, EncodedImage):
        return [_pil_to_chw(source.decode(), label)]
    if isinstance(source, Image.Image):
        return [_pil_to_chw(source, label)]
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return _array_to_chw(label, source)
    raise TargetImageError(f"{label}: expected {_SOURCE_TYPES}, got {type(source).__name__}")


def _open(path: Path) -> Image.Image:
    return decode_image(path, f"target image {path}")


def _pil_to_chw(image: Image.Image, label: str) -> torch.Tensor:
    """Any PIL mode -> (3, H, W) float32 in [0, 1]."""
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale (PNG)
        values = np.asarray(image, dtype=np.float64) / 65535.0
        return _hwc_to_chw(np.clip(values, 0.0, 1.0)[..., None], label)
    if image.mode == "F":
        return _array_to_chw(label, np.asarray(image, dtype=np.float32))[0]
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        try:
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        except (ValueError, OSError) as error:
            raise TargetImageError(f"{label}: cannot convert mode {image.mode} to RGB ({error})") from error
    values = np.asarray(image, dtype=np.float32) / 255.0
    return _hwc_to_chw(values[..., None] if values.ndim == 2 else values, label)


def _array_to_chw(label: str, array: Any) -> list[torch.Tensor]:
    channels_first = isinstance(array, torch.Tensor)
    values = array.detach().cpu().numpy() if channels_first else np.asarray(array)
    values = _scaled(label, values)
    if values.ndim == 4:
        return [_array_to_chw(f"{label}[{k}]", torch.from_numpy(v) if channels_first else v)[0]
                for k, v in enumerate(values)]
    if values.ndim == 2:
        return [_hwc_to_chw(values[..., None], label)]
    if values.ndim == 3:
        first, last = values.shape[0] in (1, 3, 4), values.shape[-1] in (1, 3, 4)
        if first and (channels_first or not last):
            values = np.moveaxis(values, 0, -1)
        elif not last:
            raise TargetImageError(f"{label}: cannot tell the colour channels in shape {values.shape}; "
                                   "expected (H, W), (H, W, C) or (C, H, W) with C in 1, 3, 4")
        return [_hwc_to_chw(values, label)]
    raise TargetImageError(f"{label}: expected an image of 2 or 3 dimensions or a batch of 4, got shape {values.shape}")


def _scaled(label: str, values: np.ndarray) -> np.ndarray:
    if values.dtype == np.bool_:
        return values.astype(np.float32)
    if values.dtype == np.uint8:
        return values.astype(np.float32) / 255.0
    if values.dtype == np.uint16:
        return values.astype(np.float32) / 65535.0
    if np.issubdtype(values.dtype, np.floating):
        finite = values[np.isfinite(values)]
        if finite.size != values.size:
            raise TargetImageError(f"{label}: contains NaN or infinite values")
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise TargetImageError(f"{label}: float values must be in [0, 1], got [{finite.min():g}, {finite.max():g}]"
                                   " (divide 8-bit values by 255)")
        return values.astype(np.float32)
    raise TargetImageError(f"{label}: unsupported dtype {values.dtype}; use uint8, uint16, bool or float in [0, 1]")


def _hwc_to_chw(values: np.ndarray, label: str) -> torch.Tensor:
    """(H, W, C) in [0, 1] with C in 1..4 -> (3, H, W): grey repeated, alpha over white."""
    c = values.shape[-1]
    if c in (2, 4):  # grey + alpha or RGB + alpha
        alpha = values[..., -1:]
        values = values[..., :-1] * alpha + (1.0 - alpha)
    if values.shape[-1] == 1:
        values = np.repeat(values, 3, axis=-1)
    if values.shape[-1] != 3 or values.shape[0] < 1 or values.shape[1] < 1:
        raise TargetImageError(f"{label}: cannot make an RGB image of shape {values.shape}")
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32)).permute(2, 0, 1).contiguous()


def crop_box(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, w, h) of the largest centred box of aspect width:height in src."""
    if src_w * height > width * src_h:  # source is wider
        w = max(1, min(src_w, round(src_h * width / height)))
        return (src_w - w) // 2, 0, w, src_h
    h = max(1, min(src_h, round(src_w * height / width)))
    return 0, (src_h - h) // 2, src_w, h


def fit_to_size(image: torch.Tensor, width: int, height: int, name: str = "target") -> torch.Tensor:
    """Centre-crop a (3, H, W) image to the aspect of width:height and resize it."""
    src_h, src_w = image.shape[1:]
    if (src_w, src_h) == (width, height):
        return image
    left, top, w, h = crop_box(src_w, src_h, width, height)
    cropped = image[:, top:top + h, left:left + w]
    resized = F.interpolate(cropped[None], size=(height, width), mode="bicubic", antialias=True,
                            align_corners=False)[0].clamp_(0.0, 1.0)
    note = "" if (w, h) == (src_w, src_h) else f" (centre-cropped to {w}x{h} first to keep the aspect ratio)"
    log.info("target image %s: %dx%d resized to the generation size %dx%d%s", name, src_w, src_h, width, height, note)
    return resized
