"""One table row per bench_quality.py JSON file: how each fade guard setting did.

    python benchmarks/fade_guard_table.py benchmarks/quality_fade_guard/*.json

Per configuration in each file (the file's name says the guard's weight,
tolerance and CMA's initial step where they differ from the defaults of the
time): the mean held-out improvement (FLIP alone), the share of runs beating random search, the prompts losing more than
10% of their held-out contrast or colourfulness, the worst such change and the
"subject kept" measure (see subject_measures.py).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from prompt_pinning.options import OPTION


def rows(paths: list[Path]) -> list[str]:
    out = ["| file | configuration | runs | held-out improvement | beats random "
           "| prompts faded | worst contrast / colourfulness | subject kept (mean, worst) |",
           "|---|---|---|---|---|---|---|---|"]
    for path in paths:
        record = json.loads(path.read_text(encoding="utf-8"))
        for config, s in record["summaries"].items():
            out.append(
                f"| {path.name} | {config} | {s['runs']} | {100 * s['mean_heldout_improvement']:.1f}% | {100 * s['beats_random']:.1f}% "
                f"| {s['prompts_faded']}/{s['prompts']} | {100 * s['worst_contrast_change']:+.1f}% / "
                f"{100 * s['worst_colour_change']:+.1f}% | {s['mean_subject_kept']:.2f}, {s['worst_subject_kept']:.2f} |")
    return out


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1].strip())
    print("\n".join(rows([Path(p) for p in sys.argv[1:]])))
    print(f"\n(defaults now: guard {OPTION['fade_guard'].default:g}, tolerance "
          f"{OPTION['fade_tolerance'].default:g}, initial std {OPTION['initial_std'].default:g})")
