"""Is the subject still there? Held-out image measures for bench_quality.py.

Per run, on the held-out seeds, for the unmodified prompt's images and the
result's: contrast and colourfulness (``prompt_pinning.score.fade_guard``), and
"subject kept", a same-seed measure. For each seed, both images are centred
(each channel's mean removed), and the result's centred image is regressed on
the unmodified prompt's: ``<r, b> / <b, b>``. 1 means the seed's picture keeps
its shape-against-background contrast where it was; 0 means it has faded into
a flat image (or into something unrelated); values between are the share kept.

"Subject separation" and "subject colour" (``prompt_pinning.score.subject``):
per seed, on the pixels where the unmodified prompt's subject stands (those that
differ from its border's colour), the share the result keeps of the subject's
separation from the rest of its own image, and of the subject's colourfulness
(only where the unmodified subject is coloured). A background that grows
stronger cannot hide a subject that fades: the demo's red circles turning mauve
keep about half of their colour. The target: every prompt keeps at least 90% of
both (``SUBJECT_TARGET``).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from prompt_pinning.score import subject
from prompt_pinning.score.fade_guard import colourfulness, contrast

FADE_LIMIT = 0.10  # no prompt loses more than 10% of contrast or colourfulness
SUBJECT_TARGET = 0.90  # every prompt keeps at least 90% of its subject's separation and colour


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
            "contrast_baseline", "contrast_result", "colour_baseline", "colour_result", "subject_kept",
            "subject_separation", "subject_colour")}

    def add(self, baseline: torch.Tensor, result: torch.Tensor) -> None:
        baseline, result = baseline.detach().float().cpu(), result.detach().float().cpu()
        self.values["contrast_baseline"] += contrast(baseline).tolist()
        self.values["contrast_result"] += contrast(result).tolist()
        self.values["colour_baseline"] += colourfulness(baseline).tolist()
        self.values["colour_result"] += colourfulness(result).tolist()
        self.values["subject_kept"] += subject_kept(result, baseline).tolist()
        separation, colour = subject.kept(result, subject.profile(baseline))
        self.values["subject_separation"] += [None if np.isnan(x) else float(x) for x in separation]
        self.values["subject_colour"] += [None if np.isnan(x) else float(x) for x in colour]

    def record(self) -> dict[str, list[float]]:
        return {f"heldout_{k}": v for k, v in self.values.items()}


def _change(runs, name: str) -> float:
    before = np.mean(np.concatenate([r[f"heldout_{name}_baseline"] for r in runs]))
    after = np.mean(np.concatenate([r[f"heldout_{name}_result"] for r in runs]))
    return float(after / before - 1.0) if before > 0 else 0.0


def _shares(runs, name: str) -> np.ndarray:
    """Every image's share kept (None: the image does not count) of a prompt's runs."""
    return np.array([x for r in runs for x in r.get(f"heldout_subject_{name}", []) if x is not None], dtype=float)


def _mean(values: np.ndarray) -> Optional[float]:
    return float(values.mean()) if values.size else None


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
            "subject_separation": _mean(_shares(mine, "separation")),
            "subject_colour": _mean(_shares(mine, "colour")),
        }
    return out


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fading figures of one configuration: per prompt and the worst prompt."""
    prompts = per_prompt(runs)
    worst_contrast = min(p["contrast_change"] for p in prompts.values())
    worst_colour = min(p["colour_change"] for p in prompts.values())
    faded = sum(1 for p in prompts.values() if min(p["contrast_change"], p["colour_change"]) < -FADE_LIMIT)
    separation = [p["subject_separation"] for p in prompts.values() if p.get("subject_separation") is not None]
    colour = [p["subject_colour"] for p in prompts.values() if p.get("subject_colour") is not None]
    lost = sum(1 for p in prompts.values() if any(
        p.get(k) is not None and p[k] < SUBJECT_TARGET for k in ("subject_separation", "subject_colour")))
    return {"worst_subject_separation": min(separation, default=None),
            "worst_subject_colour": min(colour, default=None), "prompts_losing_subject": lost,
            "per_prompt_images": prompts, "worst_contrast_change": worst_contrast,
            "worst_colour_change": worst_colour, "prompts_faded": faded,
            "mean_subject_kept": float(np.mean([p["subject_kept"] for p in prompts.values()])),
            "worst_subject_kept": float(min(p["subject_kept"] for p in prompts.values()))}


def prompt_table(name: str, fading: dict[str, Any]) -> str:
    """Markdown table: per prompt, the held-out loss change beside the image measures."""
    pct = lambda x: f"{100 * x:+.1f}%"  # noqa: E731
    lines = [f"{name}: held-out images, result against the unmodified prompt",
             "| prompt | loss change | contrast | colourfulness | subject kept (mean, worst run) "
             "| subject separation kept | subject colour kept |",
             "|---|---|---|---|---|---|---|"]
    share = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    for prompt, p in fading["per_prompt_images"].items():
        label = prompt + (f" (negative: {p['negative']})" if p["negative"] else "")
        lines.append(f"| {label} | {pct(p['loss_change'])} | {p['contrast_before']:.3f}, {pct(p['contrast_change'])} "
                     f"| {p['colour_before']:.3f}, {pct(p['colour_change'])} "
                     f"| {p['subject_kept']:.2f}, {p['subject_kept_worst_run']:.2f} "
                     f"| {share(p.get('subject_separation'))} | {share(p.get('subject_colour'))} |")
    return "\n".join(lines)
