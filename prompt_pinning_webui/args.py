"""The Script's arguments, read from the option schema (``prompt_pinning.options``).

``script_args`` arrive positionally (UI components or the API's
``script_args`` list) in the order of ``OPTIONS``. The first ``STABLE_ARGUMENTS``
never move and later ones are appended, so an older client may send only a
prefix of at least that length: the missing arguments take their defaults. ``parse_script_args``
checks each one with the schema's own checks and returns keyword arguments for
``PinningConfig``; a bad value raises ``ScriptArgumentError`` naming the
argument by position, label and name. Numbers of 0 or empty mean "auto" where
the option has a computed default (``options.normalize``).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from prompt_pinning.options import OPTIONS, STABLE_ARGUMENTS, ConfigError, Option, check, script_arg_names, text_to_number

ARGUMENTS: tuple[Option, ...] = OPTIONS  # script_args order
ARGUMENT_INDEX = {option.name: i for i, option in enumerate(ARGUMENTS)}


class ScriptArgumentError(ValueError):
    """A script argument of the wrong type or out of range."""

    def __init__(self, index: int, option: Option, message: str):
        super().__init__(f"script_args[{index}] ({option.label!r}, {option.name}): {message}")
        self.index = index
        self.name = option.name
        self.reason = message


def default_args() -> list[Any]:
    """The script_args list that gives every default (what the UI starts with)."""
    return [option.ui_default for option in ARGUMENTS]


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _as_number(option: Option, value: Any) -> Any:
    """Numbers may arrive as text, and whole numbers as floats (JSON, gr.Number)."""
    if isinstance(value, str):
        value = text_to_number(option, value)
    if option.kind == "int" and isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return value


def parse_argument(index: int, option: Option, value: Any) -> Any:
    """One script argument, checked by the schema; errors name its position."""
    try:
        if option.kind == "images":
            return _parse_images(value)
        if option.kind == "mask":
            return _parse_mask(value)
        if _is_empty(value):
            if option.kind == "text":
                return ""
            if option.auto or option.kind in ("path", "matrix"):
                return None
            raise ConfigError(option.name, "must not be empty")
        if option.kind in ("int", "float"):
            value = _as_number(option, value)
        value = check(option, value)
        return value.strip() if isinstance(value, str) and option.kind == "path" else value
    except (ConfigError, ValueError) as error:
        reason = getattr(error, "reason", str(error))
        raise ScriptArgumentError(index, option, reason) from None


def _parse_images(value: Any) -> list:
    from .images import decode_target_images

    return decode_target_images(value)


def _parse_mask(value: Any) -> Any:
    """One mask image (upload, base64 or data URL), decoded like target images; empty: none."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f"expected one mask image, got a list of {len(value)}")
        value = value[0]
    from PIL import Image

    from .images import decode_target_image

    # checked from its header by the allowed decoders, then decoded: one image, within the pixel limit;
    # a PIL image (the UI's own component) is taken as it is, like a target
    image = decode_target_image(value, "target_mask")
    return image if isinstance(image, Image.Image) else image.decode()


def parse_script_args(args: Sequence[Any]) -> dict[str, Any]:
    """Check positional script_args; return {name: value} for PinningConfig.

    "targets" holds decoded PIL images; "resume" a path string or None.
    """
    args = list(args)
    if not STABLE_ARGUMENTS <= len(args) <= len(ARGUMENTS):
        raise ValueError(
            f"Prompt pinning takes {STABLE_ARGUMENTS} to {len(ARGUMENTS)} script_args (missing trailing ones "
            f"take their defaults), got {len(args)}. Expected, in order: {script_arg_names(ARGUMENTS)}"
        )
    args += [option.ui_default for option in ARGUMENTS[len(args):]]  # an older client's short list
    return {option.name: parse_argument(i, option, value)
            for i, (option, value) in enumerate(zip(ARGUMENTS, args))}
