"""Does the built-in model answer attention weights the way Stable Diffusion does?

Measures every target of the built-in model's quality, prints a table and
writes the figures as JSON:

- continuity: one word's weight swept over 0.5..1.5 in 41 steps, 8 seeds,
  20 steps, CFG 5, for every word of prompts that cover every tag. Per sweep:
  distinct batches (bit for bit) and the largest step between neighbouring
  weights as a share of the sweep's total change (the sum of all steps; a
  step's change is the batch's mean absolute pixel difference).
- meaning: in colour-word sweeps, whether the colour's share of pixels at 1.5
  is above its share at 0.5 (soft per-pixel palette membership, and the hard
  nearest-palette share); in size-word sweeps, whether the object's area
  moves in the word's direction.
- faithfulness: the unmodified prompts' images read back by a classifier
  (background colour from the border, shape colour and shape by template
  matching of the object mask), and distinct layouts per batch of 8.
- pinning: share of evaluations with a loss no other evaluation has, in
  short runs with the CLI's default options.
- speed: one individual (8 images, 64x64, 20 steps, CFG 5) on one thread,
  and with --demo the CLI demo on two threads.
- determinism: repeated calls and packing, bit for bit; the denoiser's output
  on one and two torch threads (the renderer always samples on one).

    OMP_NUM_THREADS=1 python benchmarks/bench_builtin_quality.py [--quick] [--demo] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from prompt_pinning.builtin import conditioning as cnd
from prompt_pinning.builtin.latents import encode
from prompt_pinning.builtin.layouts import (
    MAX_TILT, PALETTE, SHAPES, STRIPE_PERIOD, UPRIGHT_SHAPES, draw_layouts, neutral_geometry, shape_distance,
)
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.builtin.tokenizer import split_words
from prompt_pinning.builtin.vocabulary import BACKGROUND_WORDS, COLOUR_WORDS, WORD_TAGS
from prompt_pinning.rendering import GenerationSettings

# Together these name every shape, every colour as shape and as background,
# every size and every position.
PROMPTS = (
    "a red circle on a blue background",
    "a large green ring on a white background",
    "a small yellow triangle on a black background, left",
    "purple stripes on a grey background, top",
    "an orange cross on a brown background, right",
    "a pink diamond on a green background, bottom",
    "a medium white square on a red background, center",
    "a blue circle on an orange background",
    "a large brown square on a pink background",
    "a small grey diamond on a purple background",
    "a black ring on a yellow background",
)
QUICK_PROMPTS = PROMPTS[:2]
SWEEP = np.linspace(0.5, 1.5, 41)
QUICK_SWEEP = np.linspace(0.5, 1.5, 5)
SETTINGS = GenerationSettings(seed=1, batch_size=8, steps=20, cfg_scale=5.0, sampler="DPM++ 2M")
PIN_PROMPTS = ("a red circle on a blue background", "a large green ring on a white background",
               "a small yellow triangle on a black background, left")
PALETTE_RGB = torch.tensor(list(PALETTE.values()))
PALETTE_NAMES = list(PALETTE)
SOFT_TEMPERATURE = 0.1  # soft palette membership: softmax of -|pixel - colour|^2 / (2 T^2)
OBJECT_THRESHOLD = 0.2  # a pixel this far (RGB distance) from the background is the object's
ROTATIONS = 48
TARGETS = {"distinct": 35 / 41, "max_step_share": 0.25, "colour_meaning": 0.8, "size_meaning": 0.8,
           "faithful": 0.7, "layouts": 4, "distinct_losses": 0.9, "seconds": 1.0, "demo_seconds": 60.0}


# -- prompts ------------------------------------------------------------------------------------
def weighted_prompt(words: list[str], index: int, weight: float) -> str:
    return " ".join(f"({w}:{weight:.6f})" if i == index else w for i, w in enumerate(words))


def prompt_tags(prompt: str) -> dict:
    """What the prompt asks for: shape, shape colour, background colour, size word, size direction."""
    words = [word for word, _ in cnd.word_weights(prompt)]
    found = {"shape": None, "colour": None, "background": None}
    for i, word in enumerate(words):
        tag = WORD_TAGS.get(word)
        if tag in SHAPES:
            found["shape"] = tag
        elif word in COLOUR_WORDS:
            background = i + 1 < len(words) and words[i + 1] in BACKGROUND_WORDS
            found["background" if background else "colour"] = tag
    return found


def word_role(words: list[str], index: int) -> str:
    word, tag = words[index], WORD_TAGS.get(words[index])
    if word in COLOUR_WORDS:
        return "bg colour" if index + 1 < len(words) and words[index + 1] in BACKGROUND_WORDS else "colour"
    if tag in ("large", "small"):
        return tag
    if tag in SHAPES:
        return "shape"
    if tag in ("left", "right", "top", "bottom", "center", "medium"):
        return "place/size"
    return "other"


# -- reading images ---------------------------------------------------------------------------
def soft_share(images: torch.Tensor, colour: str) -> float:
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3)
    distance = torch.cdist(pixels, PALETTE_RGB) ** 2
    membership = torch.softmax(-distance / (2 * SOFT_TEMPERATURE**2), dim=1)
    return float(membership[:, PALETTE_NAMES.index(colour)].mean())


def hard_share(images: torch.Tensor, colour: str) -> float:
    pixels = images.permute(0, 2, 3, 1).reshape(-1, 3)
    return float((torch.cdist(pixels, PALETTE_RGB).argmin(1) == PALETTE_NAMES.index(colour)).float().mean())


def nearest_colour(rgb: torch.Tensor) -> str:
    return PALETTE_NAMES[int(torch.cdist(rgb[None].float(), PALETTE_RGB).argmin())]


def background_and_mask(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(background rgb: median of the border, object mask (H, W) bool)."""
    border = torch.cat([image[:, 0], image[:, -1], image[:, :, 0], image[:, :, -1]], dim=1)
    background = border.median(dim=1).values
    mask = (image - background[:, None, None]).norm(dim=0) > OBJECT_THRESHOLD
    return background, mask


class ShapeClassifier:
    """Template matching: every shape at every rotation, centred on the mask's centroid, area matched.

    Square and diamond are only tried near upright (a square turned by 45
    degrees is a diamond); stripes also at four phases of their period.
    """

    def __init__(self, size: int = 64):
        self.size = size
        q = torch.linspace(-1.5, 1.5, 301)
        qy, qx = torch.meshgrid(q, q, indexing="ij")
        cell = (3.0 / 300) ** 2
        one = torch.ones(())
        self.unit_area = {s: float((shape_distance(s, qx, qy, one) < 0).sum()) * cell for s in SHAPES}

    def __call__(self, mask: torch.Tensor) -> str | None:
        area = float(mask.sum())
        if area < 6:
            return None
        h, w = mask.shape
        ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
        cx, cy = float(xs[mask].mean()), float(ys[mask].mean())
        unit = float(min(h, w))
        dx, dy = (xs - cx) / unit, (ys - cy) / unit
        best, best_iou = None, -1.0
        for shape in SHAPES:
            if shape in UPRIGHT_SHAPES:
                angles = torch.linspace(-MAX_TILT, MAX_TILT, 9)
            else:
                angles = torch.arange(ROTATIONS) * (2 * math.pi / ROTATIONS)
            cos_r, sin_r = angles.cos()[:, None, None], angles.sin()[:, None, None]
            qx, qy = cos_r * dx + sin_r * dy, -sin_r * dx + cos_r * dy
            r = torch.tensor(math.sqrt(area / self.unit_area[shape]) / unit)
            if shape == "stripes":  # shift the bands by quarter periods
                period = STRIPE_PERIOD * float(r)
                qx = torch.cat([qx + period * k / 4 for k in range(4)])
                qy = qy.repeat(4, 1, 1)
            template = shape_distance(shape, qx, qy, r) < 0
            inter = (template & mask).sum((1, 2)).float()
            union = (template | mask).sum((1, 2)).float()
            iou = float((inter / union).max())
            if iou > best_iou:
                best, best_iou = shape, iou
        return best


def read_image(image: torch.Tensor, classify: ShapeClassifier) -> dict:
    background, mask = background_and_mask(image)
    colour = nearest_colour(image[:, mask].median(dim=1).values) if mask.any() else None
    return {"background": nearest_colour(background), "colour": colour, "shape": classify(mask),
            "area": float(mask.float().mean())}


def classifier_accuracy(classify: ShapeClassifier, count: int = 84) -> float:
    """Shape accuracy of the classifier on undisturbed layouts drawn in random palette colours."""
    from prompt_pinning.builtin.layouts import coverage
    layouts = draw_layouts()
    rng = np.random.default_rng(0)
    index = torch.arange(count)
    mask, shade = coverage(layouts, neutral_geometry(), 64, 64, 64, 64, select=index)
    right = 0
    for k in range(count):
        fg, bg = rng.choice(len(PALETTE), 2, replace=False)
        image = PALETTE_RGB[fg][:, None, None] * mask[k] + PALETTE_RGB[bg][:, None, None] * shade[k] * (1 - mask[k])
        right += classify(background_and_mask(image)[1]) == SHAPES[int(layouts.shape[k])]
    return right / count


def layout_ids(renderer: BuiltinRenderer, images: torch.Tensor) -> list[int]:
    """The layout each image shows: the most likely layout of its re-encoded structure channel."""
    model = renderer.denoiser(images.shape[3], images.shape[2])
    sigma = torch.full((images.shape[0],), 0.02, dtype=torch.float64)
    return model.layout_weights(encode(images), sigma).argmax(1).tolist()


# -- measurements -----------------------------------------------------------------------------
def sweeps(renderer, prompts, weights, settings) -> list[dict]:
    out = []
    for prompt in prompts:
        words = split_words(prompt)
        for index, word in enumerate(words):
            batches = [b.images for b in renderer.render([(weighted_prompt(words, index, w), "") for w in weights],
                                                          settings)]
            steps = [float((b - a).abs().mean()) for a, b in zip(batches, batches[1:])]
            total = sum(steps)
            role = word_role(words, index)
            entry = {"prompt": prompt, "word": word, "role": role,
                     "distinct": len({b.numpy().tobytes() for b in batches}),
                     "max_step_share": max(steps) / total if total > 0 else 1.0, "total_change": total}
            if role in ("colour", "bg colour"):
                colour = WORD_TAGS[word]
                entry["soft_share"] = [soft_share(batches[0], colour), soft_share(batches[-1], colour)]
                entry["hard_share"] = [hard_share(batches[0], colour), hard_share(batches[-1], colour)]
                entry["meaning_ok"] = entry["soft_share"][1] > entry["soft_share"][0]
                entry["hard_ok"] = entry["hard_share"][1] > entry["hard_share"][0]
            if role in ("large", "small"):
                areas = [float(np.mean([float(background_and_mask(im)[1].float().mean()) for im in b]))
                         for b in (batches[0], batches[-1])]
                entry["area"] = areas
                entry["meaning_ok"] = (areas[1] > areas[0]) == (role == "large")
            out.append(entry)
            print(f"  sweep {prompt!r:58} {word!r:14} distinct {entry['distinct']:2d}/{len(weights)} "
                  f"max step {entry['max_step_share']:.3f}", flush=True)
    return out


def faithfulness(renderer, prompts, settings, seed_sets) -> dict:
    classify = ShapeClassifier()
    checks, layouts_per_batch, examples = [], [], []
    for prompt in prompts:
        wanted = prompt_tags(prompt)
        for seed in seed_sets:
            images = renderer.render([(prompt, "")], settings.with_(seed=seed))[0].images
            layouts_per_batch.append(len(set(layout_ids(renderer, images))))
            for image in images:
                seen = read_image(image, classify)
                ok = all(seen[k] == wanted[k] for k in ("shape", "colour", "background") if wanted[k])
                checks.append({k: seen[k] == wanted[k] for k in ("shape", "colour", "background") if wanted[k]})
                checks[-1]["all"] = ok
                if not ok and len(examples) < 12:
                    examples.append({"prompt": prompt, "seed": seed, "wanted": wanted, "seen": seen})
    share = lambda key: float(np.mean([c[key] for c in checks if key in c]))
    return {"images": len(checks), "all_three": share("all"), "shape": share("shape"),
            "colour": share("colour"), "background": share("background"),
            "min_layouts_per_batch": min(layouts_per_batch), "mean_layouts_per_batch": float(np.mean(layouts_per_batch)),
            "classifier_accuracy_on_layouts": classifier_accuracy(classify), "misses": examples}


def pinning(prompts, generations: int, settings: GenerationSettings) -> dict:
    from prompt_pinning.run import checkpoint as ckpt
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.run import run_pinning
    losses_per_run, total, unique = [], 0, 0
    with tempfile.TemporaryDirectory() as outdir:
        for prompt in prompts:
            config = PinningConfig(positive=prompt, negative="", generation=settings, cma_logging=False,
                                   generations=generations, outdir=Path(outdir))
            result = run_pinning(config, BuiltinRenderer())
            losses = [e["loss"] for e in ckpt.read_individuals(result.run_dir)]
            counts = {}
            for loss in losses:
                counts[loss] = counts.get(loss, 0) + 1
            total += len(losses)
            unique += sum(1 for loss in losses if counts[loss] == 1)
            losses_per_run.append({"prompt": prompt, "evaluations": len(losses),
                                   "distinct": sum(1 for loss in losses if counts[loss] == 1),
                                   "best_generation": result.best.generation,
                                   "best_loss": result.best_loss, "baseline_loss": result.baseline_loss})
    return {"evaluations": total, "distinct_share": unique / max(total, 1), "runs": losses_per_run}


def speed(repeats: int) -> dict:
    renderer = BuiltinRenderer()
    pair = ("a (large:1.2) red circle on a blue background", "green")
    renderer.render([pair], SETTINGS.with_(steps=2))
    times = []
    for i in range(repeats):
        # A new weight each time: the geometry is not cached, as in a run.
        prompt = (f"a (large:{1.2 + 0.01 * i}) red circle on a blue background", "green")
        start = time.perf_counter()
        renderer.render([prompt], SETTINGS)
        times.append(time.perf_counter() - start)
    return {"threads": torch.get_num_threads(), "seconds_best": min(times), "seconds_median": float(np.median(times))}


def demo_seconds() -> float:
    with tempfile.TemporaryDirectory() as outdir:
        env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONPATH=os.environ.get("PYTHONPATH", ""))
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "prompt_pinning", "--outdir", outdir, "--no-progress"],
                       env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - start


def determinism(size: int) -> dict:
    s = GenerationSettings(seed=5, batch_size=4, steps=8, width=size, height=size, cfg_scale=5.0)
    pairs = [("a red circle on a blue background", "green"), ("(large:1.3) ring", ""), ("small (blue:0.7) cross", "red")]
    alone = [BuiltinRenderer(max_images_per_call=4).render([p], s)[0].images for p in pairs]
    again = [BuiltinRenderer(max_images_per_call=4).render([p], s)[0].images for p in pairs]
    packed = {n: BuiltinRenderer(max_images_per_call=n).render(pairs, s) for n in (3, 5, 12)}
    # The renderer samples on one thread; the denoiser itself is checked on one and two.
    model = BuiltinRenderer().denoiser(size, size)
    cond, uncond = cnd.conditioning_rows([p for p in pairs for _ in range(8)])
    x = torch.randn((len(cond), *model.image_shape), generator=torch.Generator().manual_seed(0))
    before = torch.get_num_threads()
    denoised = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        denoised[threads] = model(x, 0.5, cond=cond, uncond=uncond, cond_scale=5.0)
    torch.set_num_threads(before)
    return {
        "repeat_equal": all(torch.equal(a, b) for a, b in zip(alone, again)),
        "packing_equal": all(torch.equal(b.images, a) for n in packed for a, b in zip(alone, packed[n])),
        "threads_equal": torch.equal(denoised[1], denoised[2]),
    }


# -- report -----------------------------------------------------------------------------------
def summarise(results: dict) -> dict:
    sw = results["sweeps"]
    n_weights = results["sweep_weights"]
    colour = [s for s in sw if "meaning_ok" in s and "soft_share" in s]
    size = [s for s in sw if "meaning_ok" in s and "area" in s]
    summary = {
        "sweeps": len(sw),
        "min_distinct": min(s["distinct"] for s in sw),
        "share_sweeps_distinct_ok": float(np.mean([s["distinct"] >= math.ceil(TARGETS["distinct"] * n_weights)
                                                   for s in sw])),
        "max_step_share": max(s["max_step_share"] for s in sw),
        "share_sweeps_step_ok": float(np.mean([s["max_step_share"] <= TARGETS["max_step_share"] for s in sw])),
        "colour_meaning_soft": float(np.mean([s["meaning_ok"] for s in colour])) if colour else None,
        "colour_meaning_hard": float(np.mean([s["hard_ok"] for s in colour])) if colour else None,
        "size_meaning": float(np.mean([s["meaning_ok"] for s in size])) if size else None,
        "faithful_all_three": results["faithfulness"]["all_three"],
        "min_layouts_per_batch": results["faithfulness"]["min_layouts_per_batch"],
    }
    if "pinning" in results:
        summary["distinct_losses"] = results["pinning"]["distinct_share"]
    summary["seconds_per_individual"] = results["speed"]["seconds_best"]
    if "demo_seconds" in results:
        summary["demo_seconds"] = results["demo_seconds"]
    summary.update(results["determinism"])
    return summary


def print_table(summary: dict, n_weights: int) -> None:
    need = math.ceil(TARGETS["distinct"] * n_weights)
    rows = [
        ("continuity: sweeps with >= %d/%d distinct batches" % (need, n_weights),
         f"{summary['share_sweeps_distinct_ok']:.0%} (min {summary['min_distinct']})", "100%"),
        ("continuity: largest step / sweep's total change", f"{summary['max_step_share']:.3f} "
         f"({summary['share_sweeps_step_ok']:.0%} of sweeps <= 0.25)", "<= 0.25"),
        ("meaning: colour sweeps raising their colour (soft)", _pct(summary["colour_meaning_soft"]), ">= 80%"),
        ("meaning: colour sweeps raising their colour (hard)", _pct(summary["colour_meaning_hard"]), "(info)"),
        ("meaning: size sweeps moving the area their way", _pct(summary["size_meaning"]), ">= 80%"),
        ("faithful: shape + colour + background", _pct(summary["faithful_all_three"]), ">= 70%"),
        ("faithful: fewest distinct layouts in a batch of 8", str(summary["min_layouts_per_batch"]), ">= 4"),
    ]
    if "distinct_losses" in summary:
        rows.append(("pinning: evaluations with a distinct loss", _pct(summary["distinct_losses"]), ">= 90%"))
    rows.append(("speed: one individual, s (%d thread)" % 1, f"{summary['seconds_per_individual']:.3f}", "<= 1.0"))
    if "demo_seconds" in summary:
        rows.append(("speed: CLI demo on 2 threads, s", f"{summary['demo_seconds']:.1f}", "<= 60"))
    for key in ("repeat_equal", "packing_equal", "threads_equal"):
        rows.append((f"determinism: {key.replace('_', ' ')}", str(summary[key]), "True"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'target'.ljust(width)}  {'measured':30}  wanted")
    for name, value, wanted in rows:
        print(f"{name.ljust(width)}  {value:30}  {wanted}")


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 prompts, 5-point sweeps (a step is then at least 1/4 of a sweep), 2 pinning generations")
    parser.add_argument("--size", type=int, default=64, help="image size (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps of sweeps (default 20)")
    parser.add_argument("--demo", action="store_true", help="also time the CLI demo on 2 threads")
    parser.add_argument("--no-pinning", action="store_true", help="skip the pinning runs")
    parser.add_argument("--json", type=Path, default=Path("bench_builtin_quality.json"), help="where to write figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    prompts = QUICK_PROMPTS if args.quick else PROMPTS
    weights = QUICK_SWEEP if args.quick else SWEEP
    settings = SETTINGS.with_(width=args.size, height=args.size, steps=args.steps)
    renderer = BuiltinRenderer()
    started = time.perf_counter()
    results = {"quick": args.quick, "size": args.size, "steps": args.steps, "sweep_weights": len(weights),
               "settings": settings.to_dict(), "prompts": list(prompts)}
    print("sweeps:", flush=True)
    results["sweeps"] = sweeps(renderer, prompts, weights, settings)
    results["faithfulness"] = faithfulness(renderer, prompts, settings, [1] if args.quick else [1, 101, 201])
    if not args.no_pinning:
        cli_settings = GenerationSettings(seed=1, batch_size=8, steps=12, cfg_scale=3.0, width=args.size,
                                          height=args.size, sampler="DPM++ 2M")
        results["pinning"] = pinning(PIN_PROMPTS[:1] if args.quick else PIN_PROMPTS, 2 if args.quick else 8,
                                     cli_settings)
    results["speed"] = speed(2 if args.quick else 5)
    if args.demo:
        results["demo_seconds"] = demo_seconds()
    results["determinism"] = determinism(args.size if args.quick else 64)
    results["summary"] = summarise(results)
    results["seconds"] = time.perf_counter() - started
    print_table(results["summary"], len(weights))
    args.json.write_text(json.dumps(results, indent=1))
    print(f"\nfigures written to {args.json} ({results['seconds']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
