"""A1111-style infotext: the text the WebUI's PNG Info tab reads from a PNG.

Layout: the prompt (any number of lines), then ``Negative prompt: ...`` when there
is one, then one line of ``Key: value`` pairs separated by ", ". A value holding a
comma, colon or newline is written as a JSON string. The text is stored in the
PNG text chunk named ``parameters``.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional

from PIL import PngImagePlugin

PNG_KEY = "parameters"
VALIDATION_LOSS_KEY = "Pinning validation loss"  # the loss on the run's held-out validation seeds
NEGATIVE_PREFIX = "Negative prompt:"

# The WebUI names schedulers by label in infotext ("Schedule type: Karras").
_SCHEDULER_LABELS = {
    "automatic": "Automatic",
    "uniform": "Uniform",
    "karras": "Karras",
    "exponential": "Exponential",
    "polyexponential": "Polyexponential",
    "sgm_uniform": "SGM Uniform",
    "kl_optimal": "KL Optimal",
    "align_your_steps": "Align Your Steps",
    "simple": "Simple",
    "normal": "Normal",
    "ddim": "DDIM",
    "beta": "Beta",
}
# A key the WebUI parser accepts: a word character, then word characters, spaces, "-" or "/".
_KEY = re.compile(r"\w[\w \-/]+")
# One "Key: value" pair of the parameter line (quoted JSON string or text up to a comma).
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def quote_value(value: Any) -> str:
    text = _format_number(value) if isinstance(value, float) else str(value)
    if "," in text or ":" in text or "\n" in text:
        return json.dumps(text, ensure_ascii=False)
    return text


def _format_number(value: float) -> str:
    return repr(int(value)) if value.is_integer() else f"{value:.6g}"


def scheduler_label(name: str) -> str:
    return _SCHEDULER_LABELS.get(str(name).lower(), str(name))


def generation_params(settings: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """The WebUI's standard keys from a GenerationSettings dict, for one image's seed."""
    params: dict[str, Any] = {
        "Steps": settings.get("steps"),
        "Sampler": settings.get("sampler"),
        "Schedule type": scheduler_label(settings["scheduler"]) if settings.get("scheduler") else None,
        "CFG scale": settings.get("cfg_scale"),
        "Seed": seed,
        "Size": _size(settings),
    }
    if settings.get("subseed_strength"):
        params["Variation seed"] = settings.get("subseed")
        params["Variation seed strength"] = settings.get("subseed_strength")
    strength = settings.get("denoising_strength")
    if strength is not None and strength < 1.0:
        params["Denoising strength"] = strength
    return params


def _size(settings: Mapping[str, Any]) -> Optional[str]:
    if settings.get("width") is None or settings.get("height") is None:
        return None
    return f"{settings['width']}x{settings['height']}"


def build_infotext(positive: str, negative: str, params: Mapping[str, Any]) -> str:
    """Infotext for one image. ``params`` keys must be WebUI-style names; None values are left out."""
    pairs = []
    for key, value in params.items():
        if value is None:
            continue
        if not _KEY.fullmatch(key):
            raise ValueError(f"infotext key {key!r}: use letters, digits, spaces, '-' or '/' (2+ characters)")
        pairs.append(f"{key}: {quote_value(value)}")
    negative_line = f"\n{NEGATIVE_PREFIX} {negative}" if negative else ""
    return f"{positive}{negative_line}\n{', '.join(pairs)}".strip()


def png_info(infotext: str) -> PngImagePlugin.PngInfo:
    """A PngInfo holding the infotext in the ``parameters`` text chunk.

    Pillow stores text that Latin-1 cannot hold as an international (UTF-8) chunk.
    """
    info = PngImagePlugin.PngInfo()
    info.add_text(PNG_KEY, infotext)
    return info


def parse_infotext(text: str) -> dict[str, Any]:
    """Read infotext back the way the WebUI's PNG Info does: Prompt, Negative prompt, then keys."""
    lines = text.strip().split("\n")
    params_line = lines[-1] if len(_PAIR.findall(lines[-1])) >= 3 else ""
    prompt_lines = lines[:-1] if params_line else lines
    positive, negative, in_negative = [], [], False
    for line in prompt_lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PREFIX):
            in_negative = True
            line = line[len(NEGATIVE_PREFIX):].strip()
        (negative if in_negative else positive).append(line)
    result: dict[str, Any] = {"Prompt": "\n".join(positive), "Negative prompt": "\n".join(negative)}
    for key, value in _PAIR.findall(params_line):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        result[key.strip()] = value
    return result
