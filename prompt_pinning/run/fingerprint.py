"""What made a run's images: the renderer's fingerprint, saved with the run and checked on resume.

``render_fingerprint(renderer)`` is the renderer kind plus what the renderer's
``host_settings()`` says (model and VAE hashes, image-changing host options,
hashes of init images and masks, the fan-out instance set). A part the renderer
cannot know is recorded as ``"unknown"``. A resume compares the saved
fingerprint with the renderer's and refuses any difference, naming the part;
``INFORMATION`` parts (which instances rendered) are recorded but not compared,
so a fan-out run can be continued on other instances with the same settings.

Every render call's fingerprint is journaled: a ``{"fingerprint": true, "hash", "parts"}``
line when it first appears or changes, and each line written from a render names
it by ``fingerprint_hash``. A render call whose compared parts differ from the
run's is refused before it renders (``FingerprintChanged``), so no work is lost:
the host can be put back and the run resumed.
"""
from __future__ import annotations

import hashlib
import json
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


class FingerprintChanged(RuntimeError):
    """The renderer's settings changed during a run: its images would not pair with the earlier ones."""


def fingerprint_hash(parts: dict[str, Any]) -> str:
    """A short content hash of a fingerprint (all its parts, the instance set included)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def changed_during_run(run: dict[str, Any], now: dict[str, Any]) -> None:
    """Refuse a render call whose fingerprint differs from the run's, naming each part."""
    differences = fingerprint_differences(run, now)
    if differences:
        raise FingerprintChanged(
            "the renderer's settings changed during the run, so its next images would not pair with the "
            "earlier ones: " + "; ".join(differences) + ". Every finished evaluation is kept: put the settings "
            "back and resume the run")
