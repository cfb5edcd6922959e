"""RayRenderer: the engine's Renderer over Ray actors, each owning one renderer.

A render call splits its prompt pairs into contiguous parts, one per actor by default,
and hands the next part to whichever actor is free; every part's batches go back to
their own places, so the call returns them in the order given. Renderers are
deterministic per seed (image i of every individual comes from seed + i, whatever else
shares its sampler call), so the images do not depend on which actor rendered what. The
parts depend only on the call and the actor count, so a part rendered again after a fault
is the same sampler batch (what a GPU needs to repeat its last bits).

The losses are not computed on the actors: the run scores the returned images in the
driver process (the one that called ``run_pinning``), on its GPU for a GPU renderer when
the driver has one, else on its CPU (``device``).

Faults go through Ray: actors are created with ``max_restarts`` and their calls with
``max_task_retries``, so a part whose actor died is rendered again by the restarted
actor. An actor that is gone for good (its restarts used up) leaves the call; its part
goes to another actor, and ``faults`` says which and when. With no actor left the call
raises ``NoActorLeft``: the run stops, keeping what is done, and can be resumed. A stop
request (the progress callback raising RenderInterrupted) stops the parts in flight on
their actors and cancels those still queued.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections import deque
from typing import Any, Optional, Sequence

from ..rendering import GenerationSettings, ProgressCallback, RenderedBatch, check_prompt_pairs
from .actor import FORWARDED, remote_class
from .spec import RendererSpec

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05  # how often a render call looks at the stop request
STOP_SECONDS = 10.0  # how long a stopped call waits for its parts in flight to end
CPU_ACTORS = 2  # default actor count without GPUs
START_NOTICE_SECONDS = 60  # actors not up by then are said to wait (loading a model, or no room)


class NoActorLeft(ConnectionError):
    """Every render actor is gone for good; the run cannot go on."""


def default_actor_count(spec: RendererSpec) -> int:
    """One per WebUI instance; one per GPU of the cluster for a GPU renderer; else CPU_ACTORS
    (fewer on a smaller cluster)."""
    import ray

    if spec.kind == "webui":
        return len(spec.target)
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if spec.uses_gpu else 0
    return gpus or max(1, min(CPU_ACTORS, int(resources.get("CPU", 1))))


def actor_resources(spec: RendererSpec, num_cpus: float = 1.0) -> dict[str, float]:
    """One GPU for a GPU renderer where the cluster has GPUs; no CPU for a WebUI client (its
    instance renders); else ``num_cpus``."""
    import ray

    if spec.uses_gpu and ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    return {"num_cpus": 0 if spec.kind == "webui" else num_cpus}


def _check_room(resources: dict[str, float], count: int) -> None:
    """Refuse more actors than the cluster can ever place (they would wait for ever)."""
    import ray

    total = ray.cluster_resources()
    for key, name in (("num_gpus", "GPU"), ("num_cpus", "CPU")):
        need = resources.get(key, 0) * count
        if need > total.get(name, 0) + 1e-9:
            raise ValueError(f"--ray-actors: {count} actors need {need:g} {name}s; the Ray cluster has "
                             f"{total.get(name, 0):g}")


def _started(refs: list, resources: dict[str, float]) -> list:
    """The actors' first answers; a log line while Ray cannot place them all (resources in use)."""
    import ray

    ready, _ = ray.wait(refs, num_returns=len(refs), timeout=START_NOTICE_SECONDS)
    if len(ready) < len(refs):
        log.warning("ray: %d of %d actors are up after %d s; each needs %s, the cluster has %s free",
                    len(ready), len(refs), START_NOTICE_SECONDS, resources, ray.available_resources())
    return ray.get(refs)


def split(count: int, parts: int) -> list[range]:
    """``count`` indices in at most ``parts`` contiguous ranges of near-equal size."""
    parts = max(1, min(parts, count))
    size, extra = divmod(count, parts)
    edges = list(itertools.accumulate([0] + [size + (k < extra) for k in range(parts)]))
    return [range(a, b) for a, b in zip(edges, edges[1:])]


class RayRenderer:
    """Render on ``actors`` Ray actors built from ``spec`` (Ray must be initialised: ``connect``).

    Each actor takes one GPU for a GPU renderer, else ``num_cpus`` CPUs (none for a WebUI
    client: its instance renders); ``parts_per_actor`` > 1 splits a call finer, so that a
    faster actor takes more parts."""

    def __init__(self, spec: RendererSpec, actors: Optional[int] = None, *, max_restarts: int = 3,
                 max_task_retries: int = 3, parts_per_actor: int = 1, num_cpus: float = 1.0,
                 device: Optional[str] = None):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayRenderer: Ray is not running here; call prompt_pinning.distributed.connect first")
        per_instance = spec.instances()
        if per_instance and actors not in (None, len(per_instance)):
            raise ValueError(f"--ray-actors: a WebUI renderer has one actor per instance ({len(per_instance)}), "
                             f"got {actors}")
        count = len(per_instance) or (actors if actors is not None else default_actor_count(spec))
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"--ray-actors: must be a whole number >= 1, got {actors!r}")
        if parts_per_actor < 1:
            raise ValueError(f"parts_per_actor: must be >= 1, got {parts_per_actor!r}")
        self.spec, self.parts_per_actor = spec, parts_per_actor
        self.view = spec.driver_view()
        resources = actor_resources(spec, num_cpus)
        _check_room(resources, count)
        self.resources = resources
        actor_class = remote_class().options(max_restarts=max_restarts, max_task_retries=max_task_retries,
                                             **resources)
        self.actors = [actor_class.remote(per_instance[k] if per_instance else spec) for k in range(count)]
        self.live = list(range(count))
        described = _started([actor.describe.remote(self.view is None) for actor in self.actors], resources)
        self._described = described[0]
        self._check_alike(described)
        self.name = self.view.name if self.view is not None else self._described["name"]
        self.tokenizer = self.view.tokenizer if self.view is not None else self._described["tokenizer"]
        self.device = device if device is not None else _driver_device(spec)
        self.faults: list[dict[str, Any]] = []
        self.rendered = [0] * count  # individuals per actor
        self._setup: tuple[tuple[str, tuple], ...] = ()
        self._calls = itertools.count()
        self.last_call: Optional[int] = None  # the id the actors know the latest render call by

    def _check_alike(self, described: list[dict[str, Any]]) -> None:
        """Refuse actors whose fingerprints differ (which instance each serves may)."""
        from ..run.fingerprint import fingerprint_differences

        first = described[0]["host_settings"] or {}
        for k, info in enumerate(described[1:], start=1):
            differences = fingerprint_differences(first, info["host_settings"] or {})
            if differences:
                raise ValueError(f"ray: actor {k} would render other images than actor 0 ("
                                 + "; ".join(d.replace("the run used", "actor 0 has").replace("this renderer", "this one")
                                             for d in differences)
                                 + "); every node needs the same model and settings")

    # -- what the engine asks of a renderer ------------------------------------------
    def host_settings(self) -> dict[str, Any]:
        if self.view is not None:
            return self.view.host_settings()
        return dict(self._described["host_settings"] or {})

    @property
    def negative_networks(self) -> bool:
        """Whether the renderer applies the negative prompt's extra networks (the WebUIs do not)."""
        if self.view is not None:
            return bool(getattr(self.view, "negative_networks", True))
        return bool(self._described.get("negative_networks", True))

    def report_info(self) -> dict[str, Any]:
        return {"renderer": self.name, "ray": {"actors": len(self.actors), "resources": self.resources,
                                               "rendered": list(self.rendered), "faults": list(self.faults)}}

    def __getattr__(self, method: str):
        """The renderer's optional methods (``FORWARDED``), where it has them: on the driver's
        view, else on an actor (a call that changes later renders is replayed on every actor)."""
        if method not in FORWARDED:
            raise AttributeError(method)
        view = self.__dict__.get("view")
        if view is not None:
            if not callable(getattr(view, method, None)):
                raise AttributeError(method)
            return getattr(view, method)
        if method not in self.__dict__.get("_described", {}).get("methods", ()):
            raise AttributeError(method)

        def forwarded(*args: Any) -> Any:
            import ray

            value = ray.get(self.actors[self.live[0]].call.remote(method, *args))
            if method == "tagger":  # turns tag posteriors on: every actor, restarted ones too
                self._setup = tuple(dict.fromkeys((*self._setup, (method, args))))
            return value

        return forwarded

    # -- rendering ----------------------------------------------------------------------
    def render(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               progress: Optional[ProgressCallback] = None) -> list[RenderedBatch]:
        import ray

        prompts = check_prompt_pairs(prompts)
        if not prompts:
            return []
        call = self.last_call = next(self._calls)
        results: list[Optional[RenderedBatch]] = [None] * len(prompts)
        # the parts follow from the call alone, never from which actors are left
        pending = deque(split(len(prompts), len(self.actors) * self.parts_per_actor))
        idle = deque(self.live)
        running: dict[Any, tuple[int, range]] = {}
        done, per = 0, settings.batch_size * settings.steps
        try:
            while pending or running:
                self._require_actors()
                while pending and idle:
                    k, part = idle.popleft(), pending.popleft()
                    ref = self.actors[k].render.remote(call, [prompts[i] for i in part], settings, self._setup)
                    running[ref] = (k, part)
                if progress is not None:
                    progress(done * per, len(prompts) * per)  # raises RenderInterrupted on a stop request
                ready, _ = ray.wait(list(running), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    k, part = running.pop(ref)
                    batches = self._collect(ref, k, part, pending)
                    if batches is None:
                        continue
                    for i, batch in zip(part, batches):
                        results[i] = batch
                    done += len(part)
                    self.rendered[k] += len(part)
                    idle.append(k)
        except BaseException:
            self._stop(call, running)
            raise
        if progress is not None:
            progress(done * per, len(prompts) * per)
        return results  # type: ignore[return-value]

    def _collect(self, ref, k: int, part: range, pending: deque) -> Optional[list[RenderedBatch]]:
        """A part's batches; None when its actor is gone (the part goes back to ``pending``)."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            batches = ray.get(ref)
        except (RayActorError, RayTaskError) as error:
            # gone: Ray's restarts and retries are used up, or the actor's WebUI instance failed
            # (its client drops it for good, as the work queue without Ray does)
            cause = getattr(error, "cause", None)
            if isinstance(error, RayTaskError) and not (self.spec.kind == "webui"
                                                       and isinstance(cause, ConnectionError)):
                # the renderer's own error, as it would be raised without Ray
                raise (cause if isinstance(cause, Exception) else error) from None
            pending.appendleft(part)
            self._lost(k, part, error)
            return None
        if len(batches) != len(part):
            raise RuntimeError(f"ray actor {k}: returned {len(batches)} batches for {len(part)} prompts")
        return batches

    def _lost(self, k: int, part: range, error: BaseException) -> None:
        if k in self.live:
            self.live.remove(k)
        cause = getattr(error, "cause", None) or error
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        self.faults.append({"actor": k, "time": _now(), "reason": reason,
                            "individuals_rerendered": [part.start, part.stop]})
        log.warning("ray actor %d is gone (%s); individuals %d-%d rendered again elsewhere, %d actor(s) left",
                    k, reason, part.start, part.stop - 1, len(self.live))

    def _require_actors(self) -> None:
        if not self.live:
            said = "; ".join(f"actor {f['actor']} at {f['time']}: {f['reason']}" for f in self.faults)
            raise NoActorLeft(f"every Ray actor is gone ({said}); the run keeps what was done and can be resumed")

    def _stop(self, call: int, running: dict[Any, tuple[int, range]]) -> None:
        """Stop the call's parts on their actors (a part not yet started there ends at once), wait
        for them to end, then cancel what is still running. Cancelling first would let a part's
        reference resolve while its actor still renders it."""
        import ray

        if not running:
            return
        for ref, (k, _) in running.items():
            self.actors[k].stop.remote(call)
        _, left = ray.wait(list(running), num_returns=len(running), timeout=STOP_SECONDS)
        for ref in left:
            ray.cancel(ref)

    def shutdown(self) -> None:
        """End the actors (Ray ends them too when the driver exits)."""
        import ray

        for actor in self.actors:
            ray.kill(actor)


def _driver_device(spec: RendererSpec) -> Optional[str]:
    """Where the driver scores: its GPU for a GPU renderer when it has one; the built-in model's
    images are scored on the CPU, as without Ray."""
    from ..remote.renderer import _default_device

    return None if spec.kind == "builtin" else _default_device()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")
