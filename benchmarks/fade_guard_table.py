"""One table row per bench_quality.py JSON file: how each fade guard setting did.

    python benchmarks/fade_guard_table.py benchmarks/quality_fade_guard/*.json

Per configuration in each file: the guard's form, weight and tolerance and
CMA's initial step as the file records them (files written before the forms
existed used the batch form; the oldest name their settings only in the file
name), the mean held-out improvement (FLIP alone), the share of runs beating
random search, the prompts losing more than 10% of their held-out contrast or
colourfulness, the worst such change, the "subject kept" regression measure and
the subject's own pixels: the worst prompt's separation and colour kept and the
prompts keeping less than 90% of either (n/a in files from before that measure;
see subject_measures.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from prompt_pinning.options import OPTION


def settings(record: dict, config: str) -> str:
    """form, weight, tolerance, initial std as the runs used them ('?' where the file does not say;
    'off' for a configuration that turns the guard off)."""
    used = {**record.get("options", {}), **dict(record.get("settings", {}).get("set", []))}
    used.setdefault("fade_guard_form", "batch")  # files from before the forms
    named = [part[6:] for part in config.split(":") if part.startswith("guard=")]
    if named:
        used["fade_guard"] = float(named[0])
    if used.get("fade_guard") == 0:
        return "off (FLIP alone)"
    return " ".join(f"{used[k]:g}" if isinstance(used.get(k), (int, float)) else str(used.get(k, "?"))
                    for k in ("fade_guard_form", "fade_guard", "fade_tolerance", "initial_std"))


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def rows(paths: list[Path]) -> list[str]:
    out = ["| file | configuration | form, guard, tolerance, initial std | runs | held-out improvement "
           "| beats random | prompts faded | worst contrast / colourfulness | subject kept (mean, worst) "
           "| worst subject separation / colour kept | prompts keeping < 90% of their subject |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        for config, s in record["summaries"].items():
            lost = s.get("prompts_losing_subject")
            lost = "n/a" if lost is None else f"{lost}/{s['prompts']}"
            out.append(
                f"| {path.name} | {config} | {settings(record, config)} | {s['runs']} "
                f"| {100 * s['mean_heldout_improvement']:.1f}% | {100 * s['beats_random']:.1f}% "
                f"| {s['prompts_faded']}/{s['prompts']} | {100 * s['worst_contrast_change']:+.1f}% / "
                f"{100 * s['worst_colour_change']:+.1f}% | {s['mean_subject_kept']:.2f}, {s['worst_subject_kept']:.2f} "
                f"| {_share(s.get('worst_subject_separation'))} / {_share(s.get('worst_subject_colour'))} "
                f"| {lost} |")
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1].strip())
    print("\n".join(rows([Path(p) for p in sys.argv[1:]])))
    print(f"\n(defaults now: form {OPTION['fade_guard_form'].default}, guard {OPTION['fade_guard'].default:g}, "
          f"tolerance {OPTION['fade_tolerance'].default:g}, initial std {OPTION['initial_std'].default:g})")
