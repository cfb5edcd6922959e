"""What a caller of the WebUI may see of the server's files: names relative to the outputs folder.

API errors and infotexts go to whoever sent the request. Run folders are named
relative to the WebUI's outputs folder (the folder that holds ``txt2img-images``
and ``img2img-images``), as in ``txt2img-images/prompt_pins/00000003``; any
other absolute path in a message is cut to its last component. A failure of the
host while rendering becomes ``HostFailure``: one line naming the cause.
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PureWindowsPath
from typing import Iterable, Optional

_SAMPLE_FOLDERS = ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples")
# An absolute path inside a message: POSIX (from a slash after a start, space, quote or bracket) or
# Windows (a drive letter or \\server). Words after a space that still hold a separator belong to
# the path ("/home/j doe/my run/x.png"): a message may lose a word, a path never leaks a part.
_CHAR = r"[^\s,;:'\"()<>\[\]]"
_ABSOLUTE = re.compile(rf"(?<![\w.~/\\-])(?:/|[A-Za-z]:[\\/]|\\\\){_CHAR}*(?: +{_CHAR}*[/\\]{_CHAR}*)*")


class HostFailure(RuntimeError):
    """The host failed while the run rendered; the message names the cause, without paths."""

    def __init__(self, message: str, out_of_memory: bool = False):
        super().__init__(message)
        self.out_of_memory = out_of_memory


def outputs_folders(extra: Iterable[Path | str] = ()) -> list[Path]:
    """The outputs folders: the parents of the WebUI's sample folders (its options) and of ``extra``."""
    folders: list[Path | str] = list(extra)
    try:
        from modules import shared

        opts = shared.opts
        folders += [getattr(opts, name, "") for name in _SAMPLE_FOLDERS]
    except (ImportError, AttributeError):
        pass
    found: list[Path] = []
    for folder in folders:
        if isinstance(folder, (str, Path)) and str(folder).strip():
            try:
                parent = Path(folder).resolve().parent
            except (OSError, RuntimeError):
                continue
            if parent not in found and parent != Path(parent.anchor):
                found.append(parent)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)  # the closest folder first


def public_path(path: Path | str, folders: Optional[list[Path]] = None) -> str:
    """``path`` relative to the outputs folder that holds it, else only its last component."""
    folders = outputs_folders() if folders is None else folders
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        return Path(path).name
    for folder in folders:
        if resolved.is_relative_to(folder):
            return resolved.relative_to(folder).as_posix()
    return Path(path).name


def public_message(text: str, folders: Optional[list[Path]] = None) -> str:
    """``text`` with every absolute path made relative to the outputs folder, or cut to its name."""
    folders = outputs_folders() if folders is None else folders
    def public(match: re.Match) -> str:
        path = match.group(0)
        if path.startswith("/") or os.name == "nt":
            name = public_path(path, folders)
        else:  # a Windows path in a message on a POSIX host: its last component only
            name = PureWindowsPath(path).name
        return name + "/" if name and path.endswith(("/", "\\")) else name or "<path>"

    return _ABSOLUTE.sub(public, str(text))


def host_failure(stop_reason: str, settings) -> HostFailure:
    """The error for a run that stopped with ``stop_reason`` ("error: Type: message") before any image."""
    cause = stop_reason[len("error: "):] if stop_reason.startswith("error: ") else stop_reason
    out_of_memory = "OutOfMemoryError" in cause or any(words in cause.lower()
                                                         for words in ("out of memory", "not enough memory"))
    size = f"{settings.width}x{settings.height}, batch size {settings.batch_size}"
    hint = (f" The host ran out of memory at {size}: lower the image size, the batch size or "
            "max_images_per_call." if out_of_memory else "")
    return HostFailure(f"the host failed before the run had any image ({public_message(cause)}).{hint}",
                       out_of_memory)
