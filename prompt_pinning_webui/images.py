"""Target images as they arrive from the UI or the API, decoded to PIL.

Accepted per item: a PIL image; a base64 PNG/JPEG string or ``data:`` URL
(API); a file path string or an object with ``.name`` (Gradio's uploaded
temporary files); a dict with "data" or "name" (Gradio file dicts); raw bytes.
A single item may be given instead of a list; None or an empty list means no
target. Remote URLs are refused: the run never fetches anything.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
from typing import Any

from PIL import Image

_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


def _open_bytes(data: bytes, what: str) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as error:  # PIL raises several types for bad data
        raise ValueError(f"{what} is not a readable image ({error})") from None
    if image.format not in _IMAGE_FORMATS:
        raise ValueError(f"{what} is a {image.format} image; use PNG or JPEG")
    return image.convert("RGB")


def _decode_string(text: str, what: str) -> Image.Image:
    text = text.strip()
    if text.startswith(("http://", "https://")):
        raise ValueError(f"{what} is a URL; send the image itself as base64 PNG/JPEG")
    if text.startswith("data:"):
        header, _, payload = text.partition(",")
        if ";base64" not in header:
            raise ValueError(f"{what} is a data URL without ';base64'")
        text = payload
    elif len(text) < 1024 and os.path.isfile(text):
        with open(text, "rb") as handle:
            return _open_bytes(handle.read(), what)
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not valid base64 (expected a PNG/JPEG as base64 or a data URL)") from None
    return _open_bytes(data, what)


def decode_target_image(item: Any, what: str = "target image") -> Image.Image:
    """One target in any accepted form -> RGB PIL image."""
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, (bytes, bytearray)):
        return _open_bytes(bytes(item), what)
    if isinstance(item, str):
        return _decode_string(item, what)
    if isinstance(item, dict):
        if item.get("data"):
            return _decode_string(str(item["data"]), what)
        if item.get("name"):
            return _decode_string(str(item["name"]), what)
        raise ValueError(f"{what} is a dict without 'data' or 'name'")
    name = getattr(item, "name", None)
    if isinstance(name, str) and os.path.isfile(name):
        with open(name, "rb") as handle:
            return _open_bytes(handle.read(), what)
    raise ValueError(f"{what} has unsupported type {type(item).__name__}; "
                     "use base64 PNG/JPEG strings or data URLs")


def decode_target_images(value: Any) -> list[Image.Image]:
    """None, one item, or a list of items -> list of RGB PIL images."""
    if value is None or value == "" or value == []:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    return [decode_target_image(item, f"target image {i}") for i, item in enumerate(items)]
