"""One running WebUI, reached through its HTTP API (A1111 v1.10.1, started with ``--api``).

``WebUIInstance`` reads what must agree between instances (model, VAE, the
options that change images, samplers and schedulers) and renders one
individual per ``/sdapi/v1/txt2img`` (or img2img) request. HTTP goes through
``requests``; nothing here parses HTTP by hand.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence
from urllib.parse import urlsplit

import numpy as np
import torch

from ..options import GENERATION_LIMITS
from ..rendering import GenerationSettings, RenderedBatch

CHECK_TIMEOUT = 30.0  # seconds for the small GET requests
INTERRUPT_TIMEOUT = 5.0
# Options of the WebUI that change the images of a request with the same settings and seeds.
IMAGE_OPTIONS = ("sd_model_checkpoint", "sd_checkpoint_hash", "sd_vae", "CLIP_stop_at_last_layers",
                 "eta_noise_seed_delta", "randn_source", "emphasis", "comma_padding_backtrack")
# Hashes a render's info carries; every response of a run must carry the same ones.
RESPONSE_HASHES = ("sd_model_hash", "sd_vae_hash")


class InstanceFault(Exception):
    """An instance failed a request (error, time-out, gone, or a wrong answer): re-send elsewhere."""


class WebUIRequestError(ValueError):
    """The WebUI refused the request itself (HTTP 422): no other instance would take it."""


def check_url(url: str) -> str:
    """A WebUI base URL (``http(s)://host[:port][/path]``), without a trailing slash."""
    if not isinstance(url, str):
        raise ValueError(f"--webui: a URL must be a string, got {url!r}")
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--webui: {url!r} is not a WebUI URL; expected http://host:port or https://host:port")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"--webui: {parts.hostname}: credentials do not belong in the URL; put user:password "
                         "in the PROMPT_PINNING_WEBUI_AUTH environment variable or a --webui-auth-file")
    if parts.query or parts.fragment:
        raise ValueError(f"--webui: {url!r}: a WebUI URL takes no query or fragment")
    return url.strip().rstrip("/")


def expected_seeds(settings: GenerationSettings) -> list[int]:
    """The seeds A1111 gives image i of a request with one seed: seed + i, or all seed with variation."""
    step = 1 if settings.subseed_strength == 0 else 0
    return [settings.seed + step * i for i in range(settings.batch_size)]


def encode_png(image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


MAX_ANSWER_PIXELS = GENERATION_LIMITS["width"][1] * GENERATION_LIMITS["height"][1]  # the largest render allowed
MAX_CHECK_BYTES = 32 * 2**20  # a GET answer (options, samplers, schedulers, embeddings)
ANSWER_BYTES_PER_PIXEL = 8  # base64 of an image file: at most 6 bytes a pixel even for noise as JPEG or RGBA PNG


def answer_limit(settings: GenerationSettings) -> int:
    """The most bytes a render's answer may hold: its batch and a grid, plus 1 MiB of info."""
    return (settings.batch_size + 1) * settings.width * settings.height * ANSWER_BYTES_PER_PIXEL + 2**20


def decode_image(text: str, label: str = "image", size: Optional[tuple[int, int]] = None) -> torch.Tensor:
    """A base64 image (optionally a data URL) -> (3, H, W) float32 in [0, 1]. Its header is read
    first (``score.targets.open_image``): a wrong format, or a ``size`` (width, height) other than
    the one asked for, is refused before anything is decoded. ValueError names ``label``."""
    from ..score.targets import load_opened, open_image

    if not isinstance(text, str):
        raise ValueError(f"{label}: expected base64 text, got {type(text).__name__}")
    if text.startswith("data:"):
        text = text.split(",", 1)[1]
    # a WebUI answers in PNG (or JPEG/WebP when set so): no other decoder runs on its bytes
    image = open_image(base64.b64decode(text, validate=True), label, MAX_ANSWER_PIXELS)
    if size is not None and image.size != tuple(size):
        image.close()
        raise ValueError(f"{label}: {image.width}x{image.height} for a render of {size[0]}x{size[1]}")
    array = np.asarray(load_opened(image, label).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def read_body(response, limit: int, path: str) -> bytes:
    """The response's body, refused (InstanceFault) once it passes ``limit`` bytes, unpacked or not."""
    import requests

    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        response.close()
        raise InstanceFault(f"{path}: an answer of {int(declared):,} bytes; at most {limit:,} are read")
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(2**16):
            size += len(chunk)
            if size > limit:
                response.close()
                raise InstanceFault(f"{path}: the answer passes {limit:,} bytes; at most that is read")
            chunks.append(chunk)
    except requests.RequestException as error:
        raise InstanceFault(f"{path}: {type(error).__name__}: {error}") from error
    return b"".join(chunks)


@dataclass
class InstanceInfo:
    """What an instance said before the run: its image options, samplers and schedulers."""

    options: dict[str, Any]
    samplers: set[str]
    schedulers: Optional[set[str]]  # None: the WebUI has no /sdapi/v1/schedulers (before 1.9)
    embeddings: dict[str, int] = field(default_factory=dict)
    loras: Optional[dict[str, str]] = None  # name -> fingerprint (lora_fingerprint); None: not listed
    hypernetworks: Optional[set[str]] = None
    lora_aliases: set[str] = field(default_factory=set)  # a tag may name a LoRA by its alias too


def lora_fingerprint(entry: dict) -> str:
    """What stands for a LoRA file's hash: the hosts' /sdapi/v1/loras gives name, alias, path and the
    file's own metadata, no hash; kohya's ``sshs_model_hash`` where the metadata has it, else a
    digest of the whole metadata and the alias."""
    metadata = entry.get("metadata") or {}
    if isinstance(metadata, dict) and metadata.get("sshs_model_hash"):
        return f"sshs_model_hash {metadata['sshs_model_hash']}"
    text = json.dumps([entry.get("alias"), metadata], sort_keys=True, default=str)
    return "metadata " + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class WebUIInstance:
    """One WebUI base URL with its own HTTP session (and basic auth, if given)."""

    def __init__(self, url: str, auth: Optional[tuple[str, str]] = None, timeout: float = 600.0):
        import requests

        self.url = check_url(url)
        self.timeout = float(timeout)
        self.session = requests.Session()
        self.session.auth = auth
        self.session.trust_env = False  # no proxy from the environment: the URL is the user's own
        self.rendered = 0
        self.failed: Optional[dict[str, Any]] = None  # when and why it was dropped

    def __repr__(self) -> str:
        return f"WebUIInstance({self.url!r})"

    # -- requests ------------------------------------------------------------
    def _call(self, method: str, path: str, timeout: float, payload: Optional[dict] = None,
              limit: int = MAX_CHECK_BYTES) -> Any:
        import requests

        try:
            response = self.session.request(method, self.url + path, json=payload, timeout=(CHECK_TIMEOUT, timeout),
                                            stream=True)
        except requests.Timeout as error:
            raise InstanceFault(f"no answer to {path} within {timeout:g} s") from error
        except requests.RequestException as error:
            raise InstanceFault(f"{path}: {type(error).__name__}: {error}") from error
        with response:
            body = read_body(response, limit, path)
        text = body.decode("utf-8", "replace")
        if response.status_code == 422:
            raise WebUIRequestError(f"{self.url}{path} refused the request: {text[:500]}")
        if response.status_code == 401:
            raise InstanceFault(f"{path}: HTTP 401, the credentials were refused (see --webui-auth-file)")
        if response.status_code != 200:
            raise InstanceFault(f"{path}: HTTP {response.status_code}: {text[:200]}")
        try:
            return json.loads(text)
        except ValueError as error:
            raise InstanceFault(f"{path}: the answer is not JSON") from error

    def get(self, path: str) -> Any:
        return self._call("GET", path, CHECK_TIMEOUT)

    def describe(self) -> InstanceInfo:
        """Options, samplers, schedulers and embeddings (InstanceFault if it cannot be read)."""
        options = self.get("/sdapi/v1/options")
        samplers = set()
        for entry in self.get("/sdapi/v1/samplers"):
            samplers.add(entry.get("name"))
            samplers.update(entry.get("aliases") or [])
        try:
            schedulers: Optional[set[str]] = set()
            for entry in self.get("/sdapi/v1/schedulers"):
                schedulers.update(filter(None, (entry.get("name"), entry.get("label"))))
        except InstanceFault as error:
            if "HTTP 404" not in str(error):
                raise
            schedulers = None
        try:
            loaded = (self.get("/sdapi/v1/embeddings") or {}).get("loaded") or {}
        except InstanceFault:
            loaded = {}
        embeddings = {name: int((entry or {}).get("vectors") or 1) for name, entry in loaded.items()}
        loras = self._listing("/sdapi/v1/loras")
        hypernetworks = self._listing("/sdapi/v1/hypernetworks")
        return InstanceInfo({k: options.get(k) for k in IMAGE_OPTIONS}, samplers, schedulers, embeddings,
                            None if loras is None else {str(e.get("name")): lora_fingerprint(e) for e in loras},
                            None if hypernetworks is None else {str(e.get("name")) for e in hypernetworks},
                            {str(e["alias"]) for e in loras or () if e.get("alias")})

    def _listing(self, path: str) -> Optional[list[dict]]:
        """A list of networks, or None where the host has no such list (its extension is off)."""
        try:
            found = self.get(path)
        except InstanceFault as error:
            if "HTTP 404" not in str(error):
                raise
            return None
        if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
            raise InstanceFault(f"{path}: expected a list of objects")
        return found

    def interrupt(self) -> None:
        """Ask the instance to stop its current job; failures are ignored (it may be gone)."""
        import requests

        try:
            self.session.post(self.url + "/sdapi/v1/interrupt", timeout=(INTERRUPT_TIMEOUT, INTERRUPT_TIMEOUT))
        except requests.RequestException:
            pass

    # -- one individual ------------------------------------------------------
    def payload(self, prompt: tuple[str, str], settings: GenerationSettings,
                init_images: Optional[Sequence[str]]) -> dict[str, Any]:
        body = {
            "prompt": prompt[0], "negative_prompt": prompt[1],
            "seed": settings.seed, "subseed": settings.subseed, "subseed_strength": settings.subseed_strength,
            "batch_size": settings.batch_size, "n_iter": 1, "steps": settings.steps,
            "cfg_scale": settings.cfg_scale, "width": settings.width, "height": settings.height,
            "sampler_name": settings.sampler, "scheduler": settings.scheduler,
            "save_images": False, "send_images": True, "do_not_save_samples": True, "do_not_save_grid": True,
        }
        if init_images:
            body.update(init_images=list(init_images), denoising_strength=settings.denoising_strength)
        return body

    def render(self, prompt: tuple[str, str], settings: GenerationSettings,
               init_images: Optional[Sequence[str]] = None) -> tuple[RenderedBatch, dict[str, Any]]:
        """One individual's batch and the hashes its answer names (InstanceFault on a bad answer)."""
        path = "/sdapi/v1/img2img" if init_images else "/sdapi/v1/txt2img"
        answer = self._call("POST", path, self.timeout, self.payload(prompt, settings, init_images),
                            answer_limit(settings))
        try:
            info = json.loads(answer.get("info") or "{}")
            first = int(info.get("index_of_first_image") or 0)
            encoded = list(answer.get("images") or [])[first:]
        except (ValueError, TypeError, AttributeError) as error:
            raise InstanceFault(f"{path}: unreadable answer ({type(error).__name__}: {error})") from error
        if len(encoded) != settings.batch_size:  # counted, and each size read from its header, before decoding
            raise InstanceFault(f"{path}: {len(encoded)} images for a batch of {settings.batch_size}")
        try:
            images = [decode_image(text, f"{path}: image {k}", (settings.width, settings.height))
                      for k, text in enumerate(encoded)]
        except (ValueError, TypeError, OSError) as error:
            raise InstanceFault(f"unreadable answer ({error})") from error
        seeds = expected_seeds(settings)
        shapes = {tuple(image.shape[1:]) for image in images}
        if shapes != {(settings.height, settings.width)}:
            raise InstanceFault(f"{path}: images of {sorted(shapes)} (H, W) for {settings.height}x{settings.width}")
        if info.get("all_seeds") is not None and list(info["all_seeds"])[:len(seeds)] != seeds:
            raise InstanceFault(f"{path}: seeds {info['all_seeds']} instead of {seeds}")
        texts = list(info.get("infotexts") or [])[first:]
        self.rendered += 1
        batch = RenderedBatch(images=torch.stack(images), seeds=seeds,
                              infotexts=texts if len(texts) == len(images) else [])
        return batch, {k: info.get(k) for k in RESPONSE_HASHES if info.get(k)}

    def drop(self, reason: str) -> None:
        self.failed = {"instance": self.url, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reason": reason,
                       "rendered": self.rendered}
