"""A small stand-in for a WebUI's HTTP API (A1111 v1.10.1 ``--api``), for tests and benchmarks.

It listens on 127.0.0.1 only and draws each image from (prompt, negative,
seed, settings) alone, so two servers give the same images bit for bit. It can
be slow (``delay`` seconds per request), and can fail after ``fail_after``
renders: ``"error"`` answers HTTP 500, ``"hang"`` answers nothing until
interrupted (or ``hang_seconds``), ``"gone"`` shuts the server down. Every
server refuses requests beyond ``max_requests``.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

import numpy as np
from PIL import Image

OPTIONS = {"sd_model_checkpoint": "fake.safetensors [0123456789]", "sd_checkpoint_hash": "0123456789abcdef",
           "sd_vae": "Automatic", "CLIP_stop_at_last_layers": 1, "eta_noise_seed_delta": 0, "randn_source": "GPU",
           "emphasis": "Original", "comma_padding_backtrack": 20}
SAMPLERS = ["DPM++ 2M", "Euler a", "Euler", "DPM++ 2M Karras - Hyperbatch"]
SCHEDULERS = [("automatic", "Automatic"), ("karras", "Karras"), ("exponential", "Exponential")]


def fake_image(prompt: str, negative: str, seed: int, body: dict[str, Any], drift: int = 0) -> Image.Image:
    """The image a fake instance draws: a smooth pattern from a hash of everything that matters
    (``drift``: a difference of the instance that no option shows, as another attention backend)."""
    key = json.dumps([prompt, negative, seed] + [body.get(k) for k in (
        "subseed", "subseed_strength", "steps", "cfg_scale", "width", "height", "sampler_name", "scheduler")]
        + ([drift] if drift else []))
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little"))
    small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    return small.resize((int(body["width"]), int(body["height"])), Image.BILINEAR)


def _png(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


class FakeWebUI:
    """One fake instance; ``url`` once started. Use as a context manager."""

    def __init__(self, *, delay: float = 0.0, fail_after: Optional[int] = None, fail_mode: str = "error",
                 options: Optional[dict] = None, samplers=SAMPLERS, auth: Optional[tuple[str, str]] = None,
                 vae_hash: str = "fedcba9876", hang_seconds: float = 30.0, max_requests: int = 2000,
                 drift: int = 0, loras: Optional[list[dict]] = None):
        if fail_mode not in ("error", "hang", "gone"):
            raise ValueError(f"fail_mode must be error, hang or gone, got {fail_mode!r}")
        self.delay, self.fail_after, self.fail_mode = delay, fail_after, fail_mode
        self.options = {**OPTIONS, **(options or {})}
        self.samplers, self.auth, self.vae_hash = list(samplers), auth, vae_hash
        self.hang_seconds, self.max_requests = hang_seconds, max_requests
        self.drift = drift
        self.loras = None if loras is None else list(loras)  # /sdapi/v1/loras entries; None: 404 (extension off)
        self.requests = 0
        self.renders: list[tuple[str, str, int]] = []  # (prompt, negative, first seed) per answered render
        self.bodies: list[dict[str, Any]] = []  # the answered render requests, with their path
        self.interrupts = 0
        self.interrupted = threading.Event()
        self.lock = threading.Lock()
        self.server: Optional[ThreadingHTTPServer] = None
        self.url = ""

    # -- lifetime -------------------------------------------------------------
    def start(self) -> "FakeWebUI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake.handle(self, "GET")

            def do_POST(self):
                fake.handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        host, port = self.server.server_address[:2]
        self.url = f"http://{host}:{port}"  # kept after the server is gone
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        with self.lock:
            server, self.server = self.server, None
        if server is not None:
            self.interrupted.set()
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "FakeWebUI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- requests -------------------------------------------------------------
    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        with self.lock:
            self.requests += 1
            over = self.requests > self.max_requests
        if over:
            return self._send(request, 503, {"detail": "request limit of the fake server reached"})
        if self.auth is not None:
            expected = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
            if request.headers.get("Authorization") != expected:
                return self._send(request, 401, {"detail": "Incorrect username or password"})
        length = int(request.headers.get("Content-Length") or 0)
        body = json.loads(request.rfile.read(length) or b"{}") if length else {}
        path = request.path
        if method == "GET" and path == "/sdapi/v1/options":
            return self._send(request, 200, self.options)
        if method == "GET" and path == "/sdapi/v1/samplers":
            return self._send(request, 200, [{"name": s, "aliases": [], "options": {}} for s in self.samplers])
        if method == "GET" and path == "/sdapi/v1/schedulers":
            return self._send(request, 200, [{"name": n, "label": label} for n, label in SCHEDULERS])
        if method == "GET" and path == "/sdapi/v1/embeddings":
            return self._send(request, 200, {"loaded": {}, "skipped": {}})
        if method == "GET" and path == "/sdapi/v1/loras" and self.loras is not None:
            return self._send(request, 200, self.loras)
        if method == "POST" and path == "/sdapi/v1/interrupt":
            with self.lock:
                self.interrupts += 1
            self.interrupted.set()
            return self._send(request, 200, {})
        if method == "POST" and path in ("/sdapi/v1/txt2img", "/sdapi/v1/img2img"):
            return self._render(request, {**body, "path": path})
        return self._send(request, 404, {"detail": "Not Found"})

    def _render(self, request: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        with self.lock:
            failing = self.fail_after is not None and len(self.renders) >= self.fail_after
        if failing and self.fail_mode == "error":
            return self._send(request, 500, {"error": "RuntimeError", "detail": "fake failure"})
        if failing and self.fail_mode == "gone":
            request.close_connection = True
            threading.Thread(target=self.stop, daemon=True).start()
            return
        self.interrupted.clear()
        if self.interrupted.wait(self.hang_seconds if failing else self.delay) and failing:
            return self._send(request, 500, {"detail": "interrupted"})
        if body.get("sampler_name") not in self.samplers:
            return self._send(request, 422, {"detail": f"sampler not found: {body.get('sampler_name')}"})
        seed, size = int(body["seed"]), int(body["batch_size"])
        step = 1 if not body.get("subseed_strength") else 0
        seeds = [seed + step * i for i in range(size)]
        images = [_png(fake_image(body["prompt"], body["negative_prompt"], s, body, self.drift)) for s in seeds]
        info = {"all_seeds": seeds, "index_of_first_image": 0, "infotexts": [f"{body['prompt']}, Seed: {s}" for s in seeds],
                "sd_model_hash": self.options["sd_checkpoint_hash"][:10], "sd_vae_hash": self.vae_hash}
        with self.lock:
            self.renders.append((body["prompt"], body["negative_prompt"], seed))
            self.bodies.append({k: v for k, v in body.items() if k != "init_images"})
        self._send(request, 200, {"images": images, "parameters": body, "info": json.dumps(info)})

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
