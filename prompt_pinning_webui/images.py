"""Target images as they arrive from the UI or the API, opened as PIL images.

Accepted per item: a PIL image; a base64 PNG/JPEG string or ``data:`` URL
(the API); a Gradio file dict with "data" (base64); raw bytes; and a file
name (an object with ``.name`` or a dict with "name") only when it names a
file that Gradio itself created for an upload, as the host's
``modules.ui_tempdir.check_tmp_file`` tells. No other file is ever opened: a
caller of the API could otherwise make the server read any path. Every refused
name gets the same message, so a caller cannot tell a missing file from an
existing one. A single item may be given instead of a list; None or an empty
list means no target. Remote URLs are refused: the run never fetches anything.

Each item is opened with the PNG, JPEG and WebP decoders only and its size is
checked from its header; it comes back as a ``prompt_pinning.score.targets.EncodedImage``
(the bytes, not decoded). ``load_targets`` decodes them one at a time, in their
own mode (16-bit, palette, alpha ...), and keeps only the copy at the run's size.
"""
from __future__ import annotations

import base64
import binascii
import os
from typing import Any, Union

from PIL import Image

from prompt_pinning.score.targets import MAX_SOURCE_PIXELS as MAX_TARGET_PIXELS  # noqa: F401
from prompt_pinning.score.targets import MAX_TARGETS, EncodedImage, check_target_count  # noqa: F401

_STRING_FORMS = "a base64 PNG/JPEG string or a data URL (data:image/png;base64,...)"
Target = Union[Image.Image, EncodedImage]


def _open_bytes(data: bytes, what: str) -> EncodedImage:
    """Checked (allowed decoders, size from the header), not decoded."""
    return EncodedImage.checked(data, what)


def _is_gradio_upload(path: str) -> bool:
    """True only for a file the running Gradio app made for an upload (the host's own check)."""
    try:
        from modules import shared, ui_tempdir
    except ImportError:  # no host: nothing counts as an upload
        return False
    demo = getattr(shared, "demo", None)
    if demo is None:
        return False
    try:
        return bool(ui_tempdir.check_tmp_file(demo, path))
    except Exception:  # a check that fails is a refusal
        return False


def _open_upload(path: str, what: str) -> Target:
    """A file the UI uploaded (Gradio's temporary copy); any other path is refused unread."""
    refusal = (f"{what}: a file name is accepted only for an image uploaded through the WebUI's "
               f"page in this session; upload it again, or send {_STRING_FORMS}")
    if not _is_gradio_upload(path):
        raise ValueError(refusal)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        raise ValueError(refusal) from None
    return _open_bytes(data, what)


def _decode_string(text: str, what: str) -> Target:
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


def decode_target_image(item: Any, what: str = "targets") -> Target:
    """One target in any accepted form -> a PIL image (as given) or an EncodedImage."""
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


def decode_target_images(value: Any) -> list[Target]:
    """None, one item, or a list of items -> list of targets (see ``decode_target_image``)."""
    if value is None or value == "" or value == []:
        return []
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    check_target_count(len(items))
    return [decode_target_image(item, f"targets[{i}]") for i, item in enumerate(items)]
