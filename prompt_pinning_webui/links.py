"""The report's address as the host's ``/file=`` route resolves it.

Both hosts hand ``file=PATH`` to Gradio, which reads a relative PATH against the
WebUI's working directory (its folder) and serves it only from allowed places:
Gradio 3.41 (A1111 v1.10.1) any file under that folder or an allowed path;
Gradio 4.40 (Forge) only allowed paths. Allowed paths are
``--gradio-allowed-path`` (default: the WebUI's data folder).
Gradio compares paths without resolving symbolic links, so an extension linked into
``extensions/`` from elsewhere is served under the WebUI's folder: so are paths here.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .hosts import current_host

REPORT_LABEL = "Prompt pinning report: "
UNSERVED_LABEL = "Prompt pinning report (outside the folders the WebUI serves): "


def allowed_folders() -> list[Path]:
    try:
        from modules import shared

        paths = getattr(shared.cmd_opts, "gradio_allowed_path", None) or []
    except ImportError:
        paths = []
    folders = [_absolute(p) for p in paths if isinstance(p, str) and p.strip()]
    if current_host().serves_working_dir:
        folders.append(_absolute(os.getcwd()))
    return folders


def _absolute(path: Path | str) -> Path:
    """Absolute and without ``..``, symbolic links kept (as Gradio compares paths)."""
    return Path(os.path.abspath(path))


def served_path(path: Path | str) -> Optional[str]:
    """``path`` as ``file=`` takes it: relative to the working directory when inside it,
    else absolute; None when the host would refuse it."""
    absolute = _absolute(path)
    if not any(absolute.is_relative_to(folder) for folder in allowed_folders()):
        return None
    cwd = _absolute(os.getcwd())
    return absolute.relative_to(cwd).as_posix() if absolute.is_relative_to(cwd) else absolute.as_posix()


def report_comment(report: Path | str, public_name: str, is_api: bool) -> str:
    """The comment the page turns into a link (javascript/prompt_pinning.js).

    An API reply names no absolute server path: there such a report is named by ``public_name``.
    """
    served = served_path(report)
    if served is None:
        return UNSERVED_LABEL + public_name
    return REPORT_LABEL + (public_name if is_api and served.startswith("/") else served)
