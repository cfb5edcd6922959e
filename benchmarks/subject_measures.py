"""Is the subject still there? Held-out image measures for bench_quality.py.

Per run, on the held-out seeds, for the unmodified prompt's images and the
result's: contrast and colourfulness (``prompt_pinning.score.fade_guard``), and
"subject kept", a same-seed measure. For each seed, both images are centred
(each channel's mean removed), and the result's centred image is regressed on
the unmodified prompt's: ``<r, b> / <b, b>``. 1 means the seed's picture keeps
its shape-against-background contrast where it was; 0 means it has faded into
a flat image (or into something unrelated); values between are the share kept.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prompt_pinning.score.fade_guard import colourfulness, contrast

FADE_LIMIT = 0.10  # the target: no prompt loses more than 10% of contrast or colourfulness


def subject_kept(result: torch.Tensor, baseline: torch.Tensor) -> np.ndarray:
    """(B,) per seed: the result's centred image regressed on the baseline's of the same seed."""
    r = result.double() - result.double().mean(dim=(2, 3), keepdim=True)
    b = baseline.double() - baseline.double().mean(dim=(2, 3), keepdim=True)
    num, den = (r * b).flatten(1).sum(dim=1), (b * b).flatten(1).sum(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.ones_like(den)).numpy()


class HeldoutImages:
    """Accumulates a run's held-out image measures, batch block by block."""

    def __init__(self):
        self.values: dict[str, list[float]] = {k: [] for k in (
            "contrast_baseline", "contrast_result", "colour_baseline", "colour_result", "subject_kept")}

    def add(self, baseline: torch.Tensor, result: torch.Tensor) -> None:
        baseline, result = baseline.detach().float().cpu(), result.detach().float().cpu()
        self.values["contrast_baseline"] += contrast(baseline).tolist()
        self.values["contrast_result"] += contrast(result).tolist()
        self.values["colour_baseline"] += colourfulness(baseline).tolist()
        self.values["colour_result"] += colourfulness(result).tolist()
        self.values["subject_kept"] += subject_kept(result, baseline).tolist()

    def record(self) -> dict[str, list[float]]:
        return {f"heldout_{k}": v for k, v in self.values.items()}


def _change(runs, name: str) -> float:
    before = np.mean(np.concatenate([r[f"heldout_{name}_baseline"] for r in runs]))
    after = np.mean(np.concatenate([r[f"heldout_{name}_result"] for r in runs]))
    return float(after / before - 1.0) if before > 0 else 0.0


def per_prompt(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per prompt, over its runs: held-out loss change, contrast and colourfulness change, subject kept."""
    out = {}
    for prompt in sorted({r["prompt"] for r in runs}, key=[r["prompt"] for r in runs].index):
        mine = [r for r in runs if r["prompt"] == prompt]
        base = np.mean([np.mean(r["heldout_baseline"]) for r in mine])
        result = np.mean([np.mean(r["heldout_result"]) for r in mine])
        kept = np.concatenate([r["heldout_subject_kept"] for r in mine])
        out[prompt] = {
            "negative": mine[0]["negative"], "loss_change": float(result / base - 1.0),
            "contrast_before": float(np.mean(np.concatenate([r["heldout_contrast_baseline"] for r in mine]))),
            "contrast_change": _change(mine, "contrast"),
            "colour_before": float(np.mean(np.concatenate([r["heldout_colour_baseline"] for r in mine]))),
            "colour_change": _change(mine, "colour"),
            "subject_kept": float(kept.mean()),
            "subject_kept_worst_run": float(min(np.mean(r["heldout_subject_kept"]) for r in mine)),
        }
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fading figures of one configuration: per prompt and the worst prompt."""
    prompts = per_prompt(runs)
    worst_contrast = min(p["contrast_change"] for p in prompts.values())
    worst_colour = min(p["colour_change"] for p in prompts.values())
    faded = sum(1 for p in prompts.values() if min(p["contrast_change"], p["colour_change"]) < -FADE_LIMIT)
    return {"per_prompt_images": prompts, "worst_contrast_change": worst_contrast,
            "worst_colour_change": worst_colour, "prompts_faded": faded,
            "mean_subject_kept": float(np.mean([p["subject_kept"] for p in prompts.values()])),
            "worst_subject_kept": float(min(p["subject_kept"] for p in prompts.values()))}


def prompt_table(name: str, fading: dict[str, Any]) -> str:
    """Markdown table: per prompt, the held-out loss change beside the image measures."""
    pct = lambda x: f"{100 * x:+.1f}%"  # noqa: E731
    lines = [f"{name}: held-out images, result against the unmodified prompt",
             "| prompt | loss change | contrast | colourfulness | subject kept (mean, worst run) |",
             "|---|---|---|---|---|"]
    for prompt, p in fading["per_prompt_images"].items():
        label = prompt + (f" (negative: {p['negative']})" if p["negative"] else "")
        lines.append(f"| {label} | {pct(p['loss_change'])} | {p['contrast_before']:.3f}, {pct(p['contrast_change'])} "
                     f"| {p['colour_before']:.3f}, {pct(p['colour_change'])} "
                     f"| {p['subject_kept']:.2f}, {p['subject_kept_worst_run']:.2f} |")
    return "\n".join(lines)
