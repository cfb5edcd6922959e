"""Rendering through the HTTP API of one or more running WebUIs (one per GPU).

``WebUIApiRenderer(["http://127.0.0.1:7860", "http://127.0.0.1:7861"])`` is a
Renderer for ``run_pinning``; the command line builds one from ``--webui URL``.
"""
from .auth import AUTH_ENV, read_credentials
from .client import InstanceFault, WebUIInstance, WebUIRequestError, check_url
from .renderer import InstanceMismatch, NoInstanceLeft, WebUIApiRenderer, default_tokenizer

__all__ = ["AUTH_ENV", "InstanceFault", "InstanceMismatch", "NoInstanceLeft", "WebUIApiRenderer",
           "WebUIInstance", "WebUIRequestError", "check_url", "default_tokenizer", "read_credentials"]
