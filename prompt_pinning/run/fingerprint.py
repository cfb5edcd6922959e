"""What made a run's images: the renderer's fingerprint, saved with the run and checked on resume.

``render_fingerprint(renderer)`` is the renderer kind plus what the renderer's
``host_settings()`` says (model and VAE hashes, image-changing host options,
hashes of init images and masks, the fan-out instance set). A part the renderer
cannot know is recorded as ``"unknown"``. A resume compares the saved
fingerprint with the renderer's and refuses any difference, naming the part;
``INFORMATION`` parts (which instances rendered) are recorded but not compared,
so a fan-out run can be continued on other instances with the same settings.
"""
from __future__ import annotations

import hashlib
from typing import Any

UNKNOWN = "unknown"
INFORMATION = ("instances",)


def render_fingerprint(renderer) -> dict[str, Any]:
    settings = getattr(renderer, "host_settings", None)
    found = dict(settings()) if callable(settings) else {}
    kind = getattr(renderer, "name", None) or type(renderer).__name__
    return {"renderer": str(kind), **{k: UNKNOWN if v is None else v for k, v in found.items()}}


def fingerprint_differences(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """Each compared part that differs, named: 'model: the run used 'a', this renderer has 'b''.

    A fingerprint saved before the renderer kind was recorded is compared on its own parts only."""
    keys = set(saved) | set(now) if "renderer" in saved else set(saved)
    return [f"{k}: the run used {saved.get(k)!r}, this renderer has {now.get(k)!r}"
            for k in sorted(keys - set(INFORMATION)) if saved.get(k) != now.get(k)]


def image_hash(data: bytes) -> str:
    """A short content hash of an image's bytes (an init image, a mask)."""
    return hashlib.sha256(data).hexdigest()[:16]
