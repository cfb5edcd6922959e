"""RenderActor: one renderer in one Ray worker process (``ray.remote`` is applied by ``remote_class``).

The actor runs two threads (``max_concurrency=2``): renders and forwarded calls go one at a
time under a lock, and ``stop`` can reach a render while it runs; the renderer's progress callback
then raises RenderInterrupted there. Calls that change what the renderer returns (a
tagger turns tag posteriors on) come with every render as ``setup`` and are applied
once per actor process, so an actor that Ray restarted renders as before.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Optional, Sequence

from ..rendering import GenerationSettings, RenderedBatch, RenderInterrupted
from .spec import RendererSpec

# Renderer methods the driver may call through an actor (what the engine asks with getattr).
FORWARDED = ("extra_networks", "network_strength_range", "tagger", "check")
Setup = tuple[tuple[str, tuple], ...]


def set_worker_threads(spec: RendererSpec) -> None:
    """Torch threads of a Ray worker process (ours alone, as the command line's is), from the spec."""
    threads = spec.options.get("threads")
    if threads:
        import torch

        torch.set_num_threads(int(threads))


class RenderActor:
    def __init__(self, spec: RendererSpec):
        self.spec = spec
        set_worker_threads(spec)
        self.renderer = spec.build()
        self.applied: set[tuple[str, tuple]] = set()
        self.stopped: set[int] = set()
        self.lock = threading.Lock()
        self.rendering: Optional[int] = None
        self.renders = 0

    def describe(self, tokenizer: bool = True) -> dict[str, Any]:
        """What the driver shows of this renderer: name, tokenizer (where it asks for it),
        fingerprint, what it offers."""
        settings = getattr(self.renderer, "host_settings", None)
        return {"name": self.renderer.name, "tokenizer": self.renderer.tokenizer if tokenizer else None,
                "host_settings": dict(settings()) if callable(settings) else None,
                "methods": [m for m in FORWARDED if callable(getattr(self.renderer, m, None))],
                "negative_networks": bool(getattr(self.renderer, "negative_networks", True)),
                "pid": os.getpid()}

    def call(self, method: str, *args: Any) -> Any:
        if method not in FORWARDED:
            raise ValueError(f"RenderActor.call: {method!r} is not one of {', '.join(FORWARDED)}")
        with self.lock:  # not while a render runs on the actor's other thread
            return getattr(self.renderer, method)(*args)

    def state(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "rendering": self.rendering, "renders": self.renders,
                "stopped": sorted(self.stopped)}

    def stop(self, call: int) -> None:
        """Stop render call ``call`` here: now if it runs, or before it starts."""
        self.stopped.add(call)

    def render(self, call: int, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               setup: Setup = ()) -> list[RenderedBatch]:
        with self.lock:
            if call in self.stopped:
                raise RenderInterrupted("stop requested")
            for step in setup:
                if step not in self.applied:
                    getattr(self.renderer, step[0])(*step[1])
                    self.applied.add(step)
            self.rendering = call

            def check(*_: object) -> None:
                if call in self.stopped:
                    raise RenderInterrupted("stop requested")

            try:
                batches = self.renderer.render(list(prompts), settings, check)
            finally:
                self.rendering = None
            self.renders += 1
            return batches


_REMOTE = None


def remote_class():
    """``RenderActor`` as a Ray actor class (made once; Ray is imported only here)."""
    global _REMOTE
    if _REMOTE is None:
        import ray

        _REMOTE = ray.remote(max_concurrency=2)(RenderActor)
    return _REMOTE
