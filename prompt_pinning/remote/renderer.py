"""WebUIApiRenderer: the engine's Renderer over one or more running WebUIs.

A render call is a work queue: one worker thread per live instance takes the
next individual when it has returned the last one, so a faster card renders
more. Every individual is one request with the run's settings and seeds, and
its images land in its own slot: the result does not depend on which instance
rendered what.

Before the first render, every instance is asked for its model, VAE and the
options that change images, and for its samplers and schedulers; a difference
is refused naming the instance. Each answer also names the model and VAE
hashes; an answer whose hashes differ from the first one's counts as a fault.

Faults: an instance that errors, times out, goes away or answers wrongly is
dropped for the rest of the run (a log line and ``faults`` say which and when)
and its individual is re-sent to another. With no instance left the call
raises ``NoInstanceLeft`` (a ConnectionError): the run stops, keeping what is
done. A stop request sends ``/sdapi/v1/interrupt`` to every live instance.
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

from ..rendering import GenerationSettings, ProgressCallback, RenderedBatch, check_prompt_pairs
from .auth import Credentials, credentials_for, read_credentials
from .client import (IMAGE_OPTIONS, InstanceFault, InstanceInfo, WebUIInstance, WebUIRequestError,
                     encode_png)

log = logging.getLogger(__name__)

MAX_INSTANCES = 64
POLL_SECONDS = 0.05  # how often the waiting thread looks at the stop request
JOIN_SECONDS = 10.0  # how long a stopped render waits for requests in flight to end


CANARY_PROMPT = ("a red circle on a blue background", "")
CANARY_SIZE = 64
CANARY_TOLERANCE = 2 / 255  # two PNG levels: kernels that are not bit-exact on one card


class InstanceMismatch(ValueError):
    """Two instances would render different images for the same request."""


class NoInstanceLeft(ConnectionError):
    """Every instance has failed; the run cannot go on."""


class _Tokenizer:
    """The client-side tokenizer, with what the instances say about prompts (see run_parts.build_vector)."""

    def __init__(self, tokenizer, renderer: "WebUIApiRenderer"):
        self.inner, self.renderer = tokenizer, renderer

    def encode(self, text: str) -> list[int]:
        return self.inner.encode(text)

    def token_strings(self, ids):
        return self.inner.token_strings(ids)

    @property
    def comma_padding_backtrack(self) -> int:
        from ..prompt.tokenizers import COMMA_PADDING_BACKTRACK

        value = self.renderer.connect().options.get("comma_padding_backtrack")
        return COMMA_PADDING_BACKTRACK if value is None else int(value)

    def embeddings(self) -> dict[str, int]:
        return dict(self.renderer.connect().embeddings)


def default_tokenizer(kind: str = "clip", vocab_path: Optional[Path] = None):
    """The CLIP BPE as SD1.x and SDXL's first encoder split text ("clip"), or as SD2.x does ("open_clip");
    ``vocab_path``: its vocabulary file, else the one open-clip-torch ships."""
    from ..prompt.tokenizers import VOCAB_FILE, ClipBpeTokenizer

    if kind not in ("clip", "open_clip"):
        raise ValueError(f"--webui-tokenizer: {kind!r} is not one of clip (SD1.x, SDXL), open_clip (SD2.x)")
    if vocab_path is not None and not Path(vocab_path).is_file():
        raise ValueError(f"--webui-vocab: {vocab_path}: no such file; give CLIP's {VOCAB_FILE}")
    try:
        return ClipBpeTokenizer(vocab_path, flavor="hf" if kind == "clip" else "open_clip")
    except (OSError, EOFError, UnicodeDecodeError, KeyError, IndexError) as error:
        if isinstance(error, FileNotFoundError) and vocab_path is None:
            raise
        raise ValueError(f"--webui-vocab: {vocab_path}: not CLIP's {VOCAB_FILE} ({type(error).__name__})") from None


class WebUIApiRenderer:
    """Render through the API of the WebUIs at ``urls`` (one per GPU), as one work queue."""

    name = "webui-api"
    negative_networks = False  # the WebUIs apply positive prompts' networks only (as A1111Renderer)

    def __init__(self, urls: Sequence[str], *, tokenizer=None, auth: Optional[Credentials] = None,
                 auth_file: Optional[Path] = None, timeout: float = 600.0, init_images: Optional[Sequence] = None,
                 device: Optional[str] = None):
        if isinstance(urls, str) or not urls:
            raise ValueError("webui: give a list of one or more WebUI URLs (http://host:port)")
        if len(urls) > MAX_INSTANCES:
            raise ValueError(f"webui: at most {MAX_INSTANCES} instances, got {len(urls)}")
        if not timeout > 0:
            raise ValueError(f"--webui-timeout: must be > 0 seconds, got {timeout!r}")
        found = {None: auth} if auth is not None else read_credentials(auth_file)
        self.instances = [WebUIInstance(url, credentials_for(url, found), timeout) for url in urls]
        seen = [i.url for i in self.instances]
        if len(set(seen)) != len(seen):
            raise ValueError(f"webui: an instance is listed twice: {seen}")
        self.tokenizer = _Tokenizer(tokenizer if tokenizer is not None else default_tokenizer(), self)
        self.init_images = [encode_png(image) for image in init_images] if init_images else None
        self.device = device if device is not None else _default_device()
        self.faults: list[dict[str, Any]] = []
        self._info: Optional[InstanceInfo] = None
        self._checked: set[tuple[str, ...]] = set()
        self._hashes: dict[str, Any] = {}
        self._lock = threading.Lock()

    # -- before the run --------------------------------------------------------
    def connect(self) -> InstanceInfo:
        """Read every instance and refuse one that differs from the first (once per renderer)."""
        if self._info is not None:
            return self._info
        infos = []
        for instance in self.instances:
            try:
                infos.append(instance.describe())
            except InstanceFault as error:
                raise NoInstanceLeft(f"webui {instance.url}: cannot be read ({error}); is it running with --api?") \
                    from None
        first = infos[0]
        for instance, info in zip(self.instances[1:], infos[1:]):
            for key in IMAGE_OPTIONS:
                if _known(info.options.get(key)) != _known(first.options.get(key)):
                    raise InstanceMismatch(
                        f"webui {instance.url}: {key} is {info.options.get(key)!r} there but "
                        f"{first.options.get(key)!r} on {self.instances[0].url}; every instance needs the same "
                        "model, VAE and image settings")
            if info.embeddings != first.embeddings:
                raise InstanceMismatch(f"webui {instance.url}: its textual-inversion embeddings differ from "
                                       f"{self.instances[0].url}'s ({sorted(info.embeddings)} vs {sorted(first.embeddings)})")
            _compare_loras(instance.url, info, self.instances[0].url, first)
        self._infos = dict(zip((i.url for i in self.instances), infos))
        self._info = first
        return first

    def extra_networks(self) -> dict[str, list[str]]:
        """The networks the instances have, by kind (names and aliases of LoRAs); a kind an
        instance does not list is left out."""
        info = self.connect()
        found: dict[str, list[str]] = {}
        if info.loras is not None:
            found["lora"] = sorted(set(info.loras) | info.lora_aliases)
        if info.hypernetworks is not None:
            found["hypernet"] = sorted(info.hypernetworks)
        return found

    def check(self, settings: GenerationSettings) -> None:
        """Before the run (the command line calls it): refuse a sampler or scheduler that an instance
        does not have, and an instance whose canary render differs from the first instance's."""
        self._check_samplers(settings)
        if (settings.sampler, settings.scheduler, "canary") not in self._checked:
            self._canary(settings)
            self._checked.add((settings.sampler, settings.scheduler, "canary"))

    def _check_samplers(self, settings: GenerationSettings) -> None:
        self.connect()
        key = (settings.sampler, settings.scheduler)
        if key in self._checked:
            return
        for instance in self.instances:
            info = self._infos[instance.url]
            if settings.sampler not in info.samplers:
                raise InstanceMismatch(f"webui {instance.url}: has no sampler {settings.sampler!r} "
                                       f"(it has: {', '.join(sorted(filter(None, info.samplers)))})")
            if info.schedulers is not None and settings.scheduler not in info.schedulers:
                raise InstanceMismatch(f"webui {instance.url}: has no scheduler {settings.scheduler!r} "
                                       f"(it has: {', '.join(sorted(info.schedulers))})")
        self._checked.add(key)

    def _canary(self, settings: GenerationSettings) -> None:
        """Every instance renders one tiny request with the run's sampler; all must give the first
        instance's images, else the instance is refused (what no option shows: attention, precision...)."""
        if len(self.instances) < 2:
            return
        tiny = settings.with_(batch_size=1, width=CANARY_SIZE, height=CANARY_SIZE, steps=min(settings.steps, 3))
        answers = []
        for instance in self.instances:
            try:
                answers.append(instance.render(CANARY_PROMPT, tiny, self.init_images))
            except InstanceFault as error:
                raise InstanceMismatch(f"webui {instance.url}: the canary request before the run failed ({error})") \
                    from None
        (first, first_hashes), reference = answers[0], self.instances[0].url
        for instance, (batch, hashes) in zip(self.instances[1:], answers[1:]):
            named = [f"{k} {hashes.get(k)!r} there, {first_hashes.get(k)!r} on {reference}"
                     for k in sorted(set(hashes) | set(first_hashes)) if hashes.get(k) != first_hashes.get(k)]
            difference = float((batch.images - first.images).abs().max())
            if named or difference > CANARY_TOLERANCE:
                raise InstanceMismatch(
                    f"webui {instance.url}: the canary request ({tiny.sampler}, {tiny.steps} steps, seed {tiny.seed}) "
                    f"gives other images than on {reference} (largest pixel difference {difference:.3f}"
                    + (f"; {'; '.join(named)}" if named else "; no option differs: attention backend, precision "
                       "or an extension?") + "); every instance must render the same images")

    def host_settings(self) -> dict[str, Any]:
        """The run's fingerprint here: every instance's image options (equal: ``connect``), the
        init images' hashes and the instance set (recorded, not compared on resume)."""
        from ..run.fingerprint import image_hash

        options = self.connect().options
        return {**{key: _known(options.get(key)) for key in IMAGE_OPTIONS},
                "init_images": [image_hash(str(image).encode("ascii")) for image in self.init_images]
                if self.init_images else [],
                "instances": [instance.url for instance in self.instances]}

    def report_info(self) -> dict[str, Any]:
        """The instances, how many individuals each rendered, and the faults (for the run's report)."""
        return {"renderer": self.name,
                "instances": [{"url": i.url, "rendered": i.rendered, "failed": i.failed is not None}
                              for i in self.instances],
                "faults": list(self.faults)}

    # -- rendering ---------------------------------------------------------------
    def render(self, prompts: Sequence[tuple[str, str]], settings: GenerationSettings,
               progress: Optional[ProgressCallback] = None) -> list[RenderedBatch]:
        prompts = check_prompt_pairs(prompts)
        self._check_samplers(settings)
        if not prompts:
            return []
        pending: "queue.Queue[int]" = queue.Queue()
        for k in range(len(prompts)):
            pending.put(k)
        events: "queue.Queue[tuple]" = queue.Queue()
        stop = threading.Event()
        live = [i for i in self.instances if i.failed is None]
        if not live:
            raise NoInstanceLeft(self._nothing_left())
        traces = hyperbatch_traces(settings)
        threads = [threading.Thread(target=self._work, args=(i, prompts, settings, traces, pending, events, stop),
                                    name=f"webui {i.url}", daemon=True) for i in live]
        for thread in threads:
            thread.start()
        try:
            return self._collect(prompts, settings, events, progress, live)
        except BaseException:
            stop.set()
            for instance in live:
                if instance.failed is None:
                    instance.interrupt()
            raise
        finally:
            stop.set()
            for thread in threads:
                thread.join(JOIN_SECONDS)

    def _collect(self, prompts, settings, events, progress, live) -> list[RenderedBatch]:
        results: list[Optional[RenderedBatch]] = [None] * len(prompts)
        done, per = 0, settings.batch_size * settings.steps
        while done < len(prompts):
            if progress is not None:
                progress(done * per, len(prompts) * per)  # raises RenderInterrupted on a stop request
            try:
                kind, instance, k, value = events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if kind == "error":
                raise value
            if kind == "fault":
                self._fault(instance, k, value)
                if all(i.failed is not None for i in live):
                    raise NoInstanceLeft(self._nothing_left())
                continue
            results[k] = value
            done += 1
        if progress is not None:
            progress(done * per, len(prompts) * per)
        return results  # type: ignore[return-value]

    def _work(self, instance: WebUIInstance, prompts, settings, traces, pending, events, stop) -> None:
        """One instance's loop: take the next individual, render it, hand it back."""
        while not stop.is_set():
            try:
                k = pending.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            try:
                batch, hashes = instance.render(prompts[k], settings, self.init_images)
                self._check_hashes(instance, hashes)
            except InstanceFault as fault:
                pending.put(k)  # before the fault is seen, so a live instance can take it
                events.put(("fault", instance, k, fault))
                instance.interrupt()  # it may still be rendering (a time-out)
                return
            except BaseException as error:  # a refused request, or a bug: end the render call
                events.put(("error", instance, k, error))
                return
            if stop.is_set():
                return
            batch.traces = None if traces is None else traces.copy()
            events.put(("done", instance, k, batch))

    def _check_hashes(self, instance: WebUIInstance, hashes: dict[str, Any]) -> None:
        with self._lock:
            for key, value in hashes.items():
                known = self._hashes.setdefault(key, (value, instance.url))
                if known[0] != value:
                    raise InstanceFault(f"its answer names {key} {value!r}, but {known[1]} rendered with {known[0]!r}")

    def _fault(self, instance: WebUIInstance, k: int, fault: InstanceFault) -> None:
        instance.drop(str(fault))
        self.faults.append({**instance.failed, "individual_resent": k})
        left = sum(i.failed is None for i in self.instances)
        log.warning("webui %s failed at %s (%s); individual %d re-sent, %d instance(s) left",
                    instance.url, instance.failed["time"], fault, k, left)

    def _nothing_left(self) -> str:
        said = "; ".join(f"{f['instance']} at {f['time']}: {f['reason']}" for f in self.faults)
        return f"every WebUI instance failed ({said}); the run keeps what was done and can be resumed"


def _compare_loras(url: str, info: InstanceInfo, first_url: str, first: InstanceInfo) -> None:
    """Refuse an instance whose LoRA files differ from the first's, by name."""
    if info.loras is None and first.loras is None:
        return
    differ = f"webui {url}: its LoRAs differ from {first_url}'s: "
    if info.loras is None or first.loras is None:
        where = url if info.loras is None else first_url
        raise InstanceMismatch(f"{differ}no LoRA list on {where} (/sdapi/v1/loras answers 404: its Lora extension "
                               "is off?). Every instance needs the same LoRA files")
    mine, theirs = info.loras, first.loras
    missing, extra = sorted(set(theirs) - set(mine)), sorted(set(mine) - set(theirs))
    changed = sorted(name for name in set(mine) & set(theirs) if mine[name] != theirs[name])
    if missing or extra or changed:
        parts = [f"missing {', '.join(missing[:20])}" if missing else "",
                 f"extra {', '.join(extra[:20])}" if extra else "",
                 f"other files for {', '.join(changed[:20])} ({mine[changed[0]]} there, {theirs[changed[0]]} on "
                 f"{first_url})" if changed else ""]
        raise InstanceMismatch(f"{differ}{'; '.join(p for p in parts if p)}. Every instance needs the same LoRA files")


def hyperbatch_traces(settings: GenerationSettings):
    """A hyperbatch sampler's branch tree (the API does not return it; it follows from B and steps)."""
    import hyperbatch

    spec = hyperbatch.SAMPLERS.get(settings.sampler)
    if spec is None or not spec.hyperbatch:
        return None
    return hyperbatch.traces(settings.batch_size, settings.steps)


def _default_device() -> Optional[str]:
    """Score on this machine's GPU when it has one (FLIP is ~50x cheaper there)."""
    import torch

    return "cuda" if torch.cuda.is_available() else None


__all__ = ["InstanceMismatch", "NoInstanceLeft", "WebUIApiRenderer", "WebUIRequestError", "default_tokenizer"]


def _known(value):
    """An option's value, with "" and None alike: a WebUI started with --no-hashing, or one that has
    not loaded its checkpoint yet (Forge loads it at the first render), reports either for the hash."""
    return None if value == "" else value

