"""LDR-FLIP speed: 16 photographs at 512x512, all 120 pairs.

Prints, for the same 120 pairs:
- this implementation on the CPU (``--threads``, default 2): per-image work once, then the pairs;
- flip-evaluator (NVIDIA's C++ library) evaluating the pairs one by one;
- this implementation on CUDA, when a GPU is present;
- the pinning objective for 8 cached targets + 8 images (also 120 pairs).

Usage: python benchmarks/bench_flip.py [--threads 2] [--size 512] [--repeats 3] [--fe-pairs 120]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prompt_pinning.score import flip  # noqa: E402
from prompt_pinning.score.loss import PinningLoss  # noqa: E402


def photographs(n: int, size: int) -> torch.Tensor:
    """n crops of scikit-image's sample photographs, shifted against each other."""
    import skimage.data as data
    from skimage.transform import resize

    sources = [data.hubble_deep_field(), data.retina(), data.astronaut(), data.immunohistochemistry()]
    crops = []
    for k in range(n):
        photo = sources[k % len(sources)].astype(np.float32) / 255.0
        if min(photo.shape[:2]) < size + 40:
            scale = (size + 40) / min(photo.shape[:2])
            photo = resize(photo, (round(photo.shape[0] * scale), round(photo.shape[1] * scale)), order=1)
        top, left = 5 * (k // len(sources)) + 3, 7 * (k // len(sources)) + 2
        crops.append(photo[top:top + size, left:left + size].astype(np.float32))
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()


def all_pair_means(images: torch.Tensor) -> tuple[torch.Tensor, float, float]:
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    features = flip.preprocess(images)
    sync()
    middle = time.perf_counter()
    means = flip.pair_means(features, features, *flip.all_pairs(len(images)))
    sync()
    return means, middle - start, time.perf_counter() - middle


def timed(images: torch.Tensor, repeats: int) -> tuple[torch.Tensor, list[tuple[float, float]]]:
    means, _, _ = all_pair_means(images)  # warm-up
    runs = []
    for _ in range(repeats):
        means, pre, pairs = all_pair_means(images)
        runs.append((pre, pairs))
    return means, runs


def report(label: str, runs: list[tuple[float, float]]) -> float:
    totals = [p + q for p, q in runs]
    best = min(range(len(runs)), key=lambda k: totals[k])
    pre, pairs = runs[best]
    print(f"{label}: {totals[best] * 1e3:9.1f} ms best of {len(runs)} (median {statistics.median(totals) * 1e3:.1f} ms); "
          f"per-image work {pre * 1e3:.1f} ms, pairs {pairs * 1e3:.1f} ms")
    return totals[best]


def flip_evaluator_loop(images: torch.Tensor, n_pairs: int) -> tuple[np.ndarray, float, float]:
    import flip_evaluator

    arrays = [np.ascontiguousarray(im.permute(1, 2, 0).numpy()) for im in images]
    ia, ib = flip.all_pairs(len(arrays))
    means = []
    cpu_start = time.process_time()
    start = time.perf_counter()
    for i, j in list(zip(ia.tolist(), ib.tolist()))[:n_pairs]:
        errmap, _, _ = flip_evaluator.evaluate(arrays[i], arrays[j], "LDR", applyMagma=False, computeMeanError=False)
        means.append(errmap.mean(dtype=np.float64))
    wall = time.perf_counter() - start
    return np.array(means), wall, time.process_time() - cpu_start


def objective(images: torch.Tensor, repeats: int) -> list[float]:
    loss = PinningLoss(images[:8], hyperbatch_weights=False)
    loss.evaluate(images[8:])
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        loss.evaluate(images[8:])
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fe-pairs", type=int, default=None, help="flip-evaluator pairs to time (default all)")
    parser.add_argument("--skip-cpu", action="store_true", help="only the CUDA figures")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    images = photographs(args.images, args.size)
    n_pairs = args.images * (args.images - 1) // 2
    print(f"{args.images} images {args.size}x{args.size}, {n_pairs} pairs; torch {torch.__version__}, "
          f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads")

    ours_cpu = None
    if not args.skip_cpu:
        cpu_start = time.process_time()
        ours_cpu, runs = timed(images, args.repeats)
        cpu_seconds = (time.process_time() - cpu_start) / (args.repeats + 1)
        cpu_best = report("this implementation, CPU", runs)
        fe_pairs = n_pairs if args.fe_pairs is None else min(args.fe_pairs, n_pairs)
        fe_means, fe_seconds, fe_cpu = flip_evaluator_loop(images, fe_pairs)
        fe_total = fe_seconds * n_pairs / fe_pairs
        note = "" if fe_pairs == n_pairs else f" (timed {fe_pairs} pairs, scaled to {n_pairs})"
        print(f"flip-evaluator, pair by pair:   {fe_total * 1e3:9.1f} ms{note}; {fe_seconds / fe_pairs * 1e3:.1f} ms per pair")
        print(f"speed-up over flip-evaluator on this CPU: {fe_total / cpu_best:.1f}x wall-clock; "
              f"{fe_cpu * n_pairs / fe_pairs / cpu_seconds:.1f}x in CPU time "
              f"({cpu_seconds:.2f} s vs {fe_cpu * n_pairs / fe_pairs:.2f} s of CPU per {n_pairs} pairs)")
        rel = np.abs(ours_cpu.numpy()[:fe_pairs] - fe_means) / fe_means
        print(f"agreement with flip-evaluator: largest relative difference of a pair mean {rel.max():.2e}")
        torch.set_num_threads(1)  # CPU work without thread synchronisation: robust on a busy machine
        start = time.process_time()
        all_pair_means(images)
        one_thread = time.process_time() - start
        torch.set_num_threads(args.threads)
        print(f"this implementation, 1 thread: {one_thread:.2f} s of CPU "
              f"({fe_cpu * n_pairs / fe_pairs / one_thread:.1f}x less than flip-evaluator)")
        seconds = objective(images, args.repeats) if args.images == 16 else [float("nan")]
        print(f"objective, 8 cached targets + 8 images (120 pairs, 92 computed), CPU: {min(seconds) * 1e3:.1f} ms")

    if torch.cuda.is_available():
        gpu = images.cuda()
        ours_gpu, runs = timed(gpu, max(10, args.repeats))
        report(f"this implementation, CUDA ({torch.cuda.get_device_name()})", runs)
        if ours_cpu is not None:
            print(f"CUDA vs CPU: largest relative difference {((ours_gpu - ours_cpu).abs() / ours_cpu).max():.2e}")
        seconds = objective(gpu, max(10, args.repeats)) if args.images == 16 else [float("nan")]
        print(f"objective, 8 cached targets + 8 images (120 pairs, 92 computed), CUDA: {min(seconds) * 1e3:.1f} ms "
              f"(median {statistics.median(seconds) * 1e3:.1f} ms)")
    else:
        print("CUDA: not available here")


if __name__ == "__main__":
    main()
