"""Basic-auth credentials for WebUIs started with ``--api-auth user:password``.

Credentials come from the environment variable ``PROMPT_PINNING_WEBUI_AUTH``
(``user:password``, for every instance) or from a file, never from the
command line (where other users of the machine can read them). A file holds
one line ``user:password`` for every instance and/or lines
``URL user:password`` for one instance; ``#`` starts a comment line.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional

from .client import check_url

AUTH_ENV = "PROMPT_PINNING_WEBUI_AUTH"
Credentials = tuple[str, str]


def _pair(text: str, where: str) -> Credentials:
    user, colon, password = text.strip().partition(":")
    if not colon or not user:
        raise ValueError(f"{where}: credentials must be user:password (as the WebUI's --api-auth takes them)")
    return user, password


def read_credentials(auth_file: Optional[Path] = None,
                     environ: Mapping[str, str] = os.environ) -> dict[Optional[str], Credentials]:
    """URL (None: every instance) -> (user, password), from the file if given, else the environment."""
    found: dict[Optional[str], Credentials] = {}
    if auth_file is not None:
        path = Path(auth_file)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ValueError(f"--webui-auth-file: cannot read {path}: {error.strerror or error}") from None
        for number, line in enumerate(lines, start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"--webui-auth-file {path} line {number}"
            first, _, rest = line.partition(" ")
            if rest.strip():
                found[check_url(first)] = _pair(rest, where)
            else:
                found[None] = _pair(first, where)
        return found
    text = environ.get(AUTH_ENV, "")
    if text.strip():
        found[None] = _pair(text, AUTH_ENV)
    return found


def credentials_for(url: str, found: Mapping[Optional[str], Credentials]) -> Optional[Credentials]:
    return found.get(check_url(url), found.get(None))
