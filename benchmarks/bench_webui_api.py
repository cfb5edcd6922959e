"""Wall time of a generation rendered through one, two and three WebUI instances.

The instances are fake WebUI servers on 127.0.0.1 (fake_webui_api.py) that
take a fixed ``--delay`` per request, as a GPU of constant speed would. The
ideal time on k instances is ceil(individuals / k) * delay; what the renderer
adds beyond it (HTTP, PNG encoding and decoding, the work queue) is printed
as the overhead per individual. ``--delay 0`` measures that cost alone.

    OMP_NUM_THREADS=1 python benchmarks/bench_webui_api.py
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fake_webui_api import FakeWebUI  # noqa: E402
from prompt_pinning.remote import WebUIApiRenderer  # noqa: E402
from prompt_pinning.rendering import GenerationSettings  # noqa: E402


def measure(instances: int, individuals: int, delay: float, settings: GenerationSettings, repeats: int) -> dict:
    """Best wall time of ``repeats`` render calls of ``individuals`` over ``instances`` fakes."""
    fakes = [FakeWebUI(delay=delay).start() for _ in range(instances)]
    try:
        renderer = WebUIApiRenderer([f.url for f in fakes], timeout=60, device="cpu")
        renderer.check(settings)  # with several instances, one canary render each (not counted below)
        canaries = [len(f.renders) for f in fakes]
        prompts = [(f"a red circle {k}", "green") for k in range(individuals)]
        best = math.inf
        for _ in range(repeats):
            started = time.perf_counter()
            batches = renderer.render(prompts, settings)
            best = min(best, time.perf_counter() - started)
        assert len(batches) == individuals
        shares = [(len(f.renders) - c) // repeats for f, c in zip(fakes, canaries)]
    finally:
        for fake in fakes:
            fake.stop()
    ideal = math.ceil(individuals / instances) * delay
    return {"instances": instances, "wall": best, "ideal": ideal,
            "overhead_ms": 1000 * (best - ideal) / individuals, "shares": shares}


def png_costs(settings: GenerationSettings, repeats: int = 3) -> tuple[float, float]:
    """CPU seconds per individual: the server's PNG encoding, and this side's decoding."""
    from fake_webui_api import _png, fake_image
    from prompt_pinning.remote.client import decode_image

    body = {"width": settings.width, "height": settings.height}
    images = [fake_image("a red circle", "green", seed, body) for seed in settings.seeds()]
    encode = decode = math.inf
    for _ in range(repeats):
        started = time.process_time()
        texts = [_png(image) for image in images]
        middle = time.process_time()
        for text in texts:
            decode_image(text, size=(settings.width, settings.height))
        encode, decode = min(encode, middle - started), min(decode, time.process_time() - middle)
    return encode, decode


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay", type=float, default=0.25, help="seconds each fake takes per individual")
    parser.add_argument("--individuals", type=int, default=12, help="individuals per render call (a generation)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", type=int, default=64, help="image width and height")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    settings = GenerationSettings(seed=1, batch_size=args.batch_size, steps=20, width=args.size, height=args.size,
                                  scheduler="karras")
    print(f"{args.individuals} individuals of {args.batch_size} images at {args.size}x{args.size}, "
          f"{args.delay:g} s per individual per instance, best of {args.repeats}")
    print("| instances | wall s | ideal s | speed-up | overhead per individual | individuals per instance |")
    print("|---|---|---|---|---|---|")
    rows = [measure(k, args.individuals, args.delay, settings, args.repeats) for k in (1, 2, 3)]
    for row in rows:
        print(f"| {row['instances']} | {row['wall']:.3f} | {row['ideal']:.3f} | {rows[0]['wall'] / row['wall']:.2f} "
              f"| {row['overhead_ms']:.1f} ms | {', '.join(map(str, row['shares']))} |")
    encode, decode = png_costs(settings)
    print(f"PNG per individual (CPU): encoding {1000 * encode:.1f} ms (the WebUI's side, here the fake's), "
          f"decoding {1000 * decode:.1f} ms (this side)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
