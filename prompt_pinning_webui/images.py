"""Target images as they arrive from the UI or the API, opened as PIL images.

Accepted per item: a PIL image; a base64 PNG/JPEG string or ``data:`` URL
(the API); an object with ``.name`` (Gradio's uploaded temporary files) or a
Gradio file dict with "name" (a file path) or "data" (base64); raw bytes.
A plain string is never read as a file path: over the API that would read
the server's disk. A single item may be given instead of a list; None or an
empty list means no target. Remote URLs are refused: the run never fetches
anything.

Images are returned in their own mode (16-bit, palette, alpha and so on):
``prompt_pinning.targets.load_targets`` converts them to RGB, compositing
transparency over white.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
from typing import Any

from PIL import Image, ImageOps

_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")
_STRING_FORMS = "a base64 PNG/JPEG string or a data URL (data:image/png;base64,...)"


def _open_bytes(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # PIL raises several types for bad data
        raise ValueError(f"{what} is not a readable image ({error})") from None
    if image.format not in _IMAGE_FORMATS:
        raise ValueError(f"{what} is a {image.format} image; use PNG or JPEG")
    return ImageOps.exif_transpose(image)


def _open_upload(path: str, what: str) -> Image.Image:
    """A file the UI uploaded (Gradio's temporary copy)."""
    if not os.path.isfile(path):
        raise ValueError(f"{what}: uploaded file {path!r} no longer exists; upload it again")
    with open(path, "rb") as handle:
        return _open_bytes(handle.read(), what)


def _decode_string(text: str, what: str) -> Image.Image:
    """A base64 string or data URL; never a path or a URL."""
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise ValueError(f"{what} is a URL; send {_STRING_FORMS}")
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise ValueError(f"{what} is a data URL without ';base64'; send {_STRING_FORMS}")
        text = payload
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64; send {_STRING_FORMS} "
                         "(file paths are not accepted)") from None
    return _open_bytes(data, what)


def decode_target_image(item: Any, what: str = "targets") -> Image.Image:
    """One target in any accepted form -> PIL image in its own mode."""
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, (bytes, bytearray)):
        return _open_bytes(bytes(item), what)
    if isinstance(item, str):
        return _decode_string(item, what)
    if isinstance(item, dict):
        if item.get("data"):
            return _decode_string(str(item["data"]), what)
        if item.get("name"):
            return _open_upload(str(item["name"]), what)
        raise ValueError(f"{what} is a dict without 'data' or 'name'")
    name = getattr(item, "name", None)
    if isinstance(name, str):
        return _open_upload(name, what)
    raise ValueError(f"{what} has unsupported type {type(item).__name__}; send {_STRING_FORMS}")


def decode_target_images(value: Any) -> list[Image.Image]:
    """None, one item, or a list of items -> list of PIL images."""
    if value is None or value == "" or value == []:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [decode_target_image(item, f"targets[{i}]") for i, item in enumerate(items)]
