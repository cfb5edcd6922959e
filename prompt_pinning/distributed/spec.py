"""RendererSpec: what a Ray actor or task builds its renderer from (a picklable recipe).

A renderer itself holds models, HTTP sessions and locks; a spec holds only its kind and
options, so it travels to any node of a Ray cluster and a restarted actor rebuilds the
same renderer from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

KINDS = ("builtin", "diffusers", "webui", "factory")


@dataclass(frozen=True)
class RendererSpec:
    """``kind`` "builtin" (``target`` unused), "diffusers" (``target``: the pipeline folder or
    checkpoint file), "webui" (``target``: the instance URLs, one actor each) or "factory"
    (``target``: "package.module:callable", a renderer of your own, importable on every node,
    called with ``options["kwargs"]``). ``options``: builtin ``max_images_per_call``,
    ``threads``; diffusers ``device``, ``dtype``, ``config`` (a single file's configs folder),
    ``max_images_per_call``; webui ``tokenizer``, ``vocab``,
    ``auth_file``, ``timeout``; any kind ``threads`` (torch threads of the Ray worker process)."""

    kind: str
    target: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"renderer kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "diffusers" and not self.target:
            raise ValueError("renderer kind diffusers: give the pipeline folder or checkpoint file")
        if self.kind == "webui" and (isinstance(self.target, str) or not self.target):
            raise ValueError("renderer kind webui: give a list of one or more WebUI URLs")
        if self.kind == "factory" and not (isinstance(self.target, str) and
                                           all(part.strip() for part in self.target.partition(":")[::2])):
            raise ValueError(f"renderer kind factory: give 'package.module:callable', got {self.target!r}")

    @property
    def uses_gpu(self) -> bool:
        """A diffusers renderer on a GPU takes one per actor (``num_gpus``); the others take CPUs."""
        return self.kind == "diffusers" and self.options.get("device") != "cpu"

    def instances(self) -> list["RendererSpec"]:
        """One spec per actor where the kind fixes the count (a WebUI instance each), else []."""
        if self.kind != "webui":
            return []
        return [replace(self, target=[url]) for url in self.target]

    def build(self):
        """The renderer this spec describes (in the process that calls it)."""
        if self.kind == "builtin":
            from ..builtin import BuiltinRenderer

            return BuiltinRenderer(max_images_per_call=self.options.get("max_images_per_call"))
        if self.kind == "diffusers":
            from ..diffusers import load_diffusers_renderer

            more = {k: self.options[k] for k in ("config", "max_images_per_call") if self.options.get(k) is not None}
            return load_diffusers_renderer(self.target, device=self.options.get("device"),
                                           dtype=self.options.get("dtype"), **more)
        if self.kind == "factory":
            import importlib

            module, _, name = self.target.partition(":")
            return getattr(importlib.import_module(module), name)(**self.options.get("kwargs", {}))
        return self.webui_renderer(list(self.target))

    def webui_renderer(self, urls: list[str]):
        from ..remote import WebUIApiRenderer, default_tokenizer

        return WebUIApiRenderer(urls, tokenizer=default_tokenizer(self.options.get("tokenizer", "clip"),
                                                                  self.options.get("vocab")),
                                auth_file=self.options.get("auth_file"),
                                timeout=self.options.get("timeout", 600.0), device=self.options.get("device"))

    def driver_view(self) -> Optional[Any]:
        """What the driver itself needs of the renderer, where it cannot come from an actor: the
        WebUI client over every instance (its checks compare them; its tokenizer asks them)."""
        return self.webui_renderer(list(self.target)) if self.kind == "webui" else None
