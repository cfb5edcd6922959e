"""Does the demo's pin keep its subject? The red circles of ``make demo``, measured.

    python benchmarks/demo_subject.py RUN_DIR [--heldout-batches 8]

RUN_DIR is a finished run of the built-in model (``make demo`` prints it). The
unmodified prompt and the pinned one are rendered on the run's own seeds and on
held-out seed blocks (far from every training and validation block); per seed,
on the pixels where the unmodified image's subject stands
(``prompt_pinning.score.subject``), it prints the share of the subject's
colourfulness and separation from its background the pin keeps, and the
subject's mean colour before and after. The target: at least 90% of the colour.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.score import subject
from prompt_pinning.search.seed_blocks import block_settings

HELDOUT_FIRST_BLOCK = 10_000
TARGET = 0.90


def subject_colour(images: torch.Tensor, profile: subject.SubjectProfile) -> np.ndarray:
    """(3,) mean colour of the subject's pixels over the batch, at the working size."""
    work = subject.work_images(images)
    masks = torch.from_numpy(profile.masks)
    pixels = [work[i][:, masks[i]] for i in range(len(work)) if masks[i].any()]
    return torch.cat(pixels, dim=1).mean(dim=1).numpy() if pixels else np.zeros(3)


def measure(run_dir: Path, heldout_batches: int) -> dict:
    final = json.loads((run_dir / "final_result.json").read_text(encoding="utf-8"))
    saved = json.loads((run_dir / "run_config.json").read_text(encoding="utf-8"))["config"]
    settings = GenerationSettings(**saved["generation"])
    unmodified = (final["original_prompt"], final["original_negative_prompt"])
    pinned = (final["best"]["pos"], final["best"]["neg"])
    renderer = BuiltinRenderer()
    out = {"unmodified": list(unmodified), "pinned": list(pinned), "blocks": {}}
    for name, blocks in (("your seeds", [0]),
                         ("held-out", [HELDOUT_FIRST_BLOCK + h for h in range(heldout_batches)])):
        colour, separation, before, after = [], [], [], []
        for block in blocks:
            base, pin = renderer.render([unmodified, pinned], block_settings(settings, block))
            profile = subject.profile(base.images)
            sep, col = subject.kept(pin.images, profile)
            separation += [x for x in sep if not np.isnan(x)]
            colour += [x for x in col if not np.isnan(x)]
            before.append(subject_colour(base.images, profile))
            after.append(subject_colour(pin.images, profile))
        out["blocks"][name] = {"colour_kept": float(np.mean(colour)) if colour else None,
                               "separation_kept": float(np.mean(separation)) if separation else None,
                               "subject_rgb_before": [round(float(x), 2) for x in np.mean(before, axis=0)],
                               "subject_rgb_after": [round(float(x), 2) for x in np.mean(after, axis=0)]}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--heldout-batches", type=int, default=8)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    result = measure(args.run_dir, args.heldout_batches)
    print(f"unmodified: {result['unmodified'][0]!r} (negative {result['unmodified'][1]!r})")
    print(f"pinned:     {result['pinned'][0]!r} (negative {result['pinned'][1]!r})")
    ok = True
    for name, m in result["blocks"].items():
        print(f"{name:>10}: subject colour kept {m['colour_kept']:.2f}, separation kept {m['separation_kept']:.2f}; "
              f"subject RGB {m['subject_rgb_before']} -> {m['subject_rgb_after']}")
        ok &= m["colour_kept"] is not None and m["colour_kept"] >= TARGET
    print(f"target (colour kept >= {TARGET:.2f} on every block set): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
