"""The report's address as the host's ``/file=`` route resolves it.

Both hosts hand ``file=PATH`` to Gradio, which reads a relative PATH against the
WebUI's working directory (its folder) and serves it only from allowed places:
Gradio 3.41 (A1111 v1.10.1) any file under that folder or an allowed path;
Gradio 4.40 (Forge) only allowed paths. Allowed paths are
``--gradio-allowed-path`` (default: the WebUI's data folder).
"""
from __future__ import annotations

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
    folders = [Path(p).resolve() for p in paths if isinstance(p, str) and p.strip()]
    if current_host().serves_working_dir:
        folders.append(Path.cwd().resolve())
    return folders


def served_path(path: Path | str) -> Optional[str]:
    """``path`` as ``file=`` takes it: relative to the working directory when inside it,
    else absolute; None when the host would refuse it."""
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(folder) for folder in allowed_folders()):
        return None
    cwd = Path.cwd().resolve()
    return resolved.relative_to(cwd).as_posix() if resolved.is_relative_to(cwd) else resolved.as_posix()


def report_comment(report: Path | str, public_name: str, is_api: bool) -> str:
    """The comment the page turns into a link (javascript/prompt_pinning.js).

    An API reply names no absolute server path: there such a report is named by ``public_name``.
    """
    served = served_path(report)
    if served is None:
        return UNSERVED_LABEL + public_name
    return REPORT_LABEL + (public_name if is_api and served.startswith("/") else served)
