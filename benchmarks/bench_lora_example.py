"""The README's worked example of pinning a LoRA strength on the built-in model.

Target: four images of "a red circle <lora:size:1.3>" (seeds 101-104). The run
starts from "a red circle <lora:size:0.5>" and pins, once with the LoRA's
strength as a unit (network_units) and once with the words alone, for several
CMA seeds. Prints the pinned strength and the loss on the held-out validation
seeds, unmodified and pinned.

    python benchmarks/bench_lora_example.py [--generations 30] [--cma-seeds 5]
"""
from __future__ import annotations

import argparse
import tempfile

from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run import run_pinning

SETTINGS = GenerationSettings(seed=1, batch_size=4, steps=8, width=32, height=32, cfg_scale=3.0, sampler="DPM++ 2M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--cma-seeds", type=int, default=5)
    args = parser.parse_args()
    renderer = BuiltinRenderer()
    target = renderer.render([("a red circle <lora:size:1.3>", "")], SETTINGS.with_(seed=101))[0].images
    print("units        cma seed  size strength  held-out loss: unmodified -> pinned")
    with tempfile.TemporaryDirectory() as outdir:
        for networks in (True, False):
            for seed in range(1, args.cma_seeds + 1):
                config = PinningConfig("a red circle <lora:size:0.5>", outdir=outdir, generation=SETTINGS,
                                       targets=list(target), network_units=networks, cma_logging=False,
                                       generations=args.generations, cma_seed=seed)
                result = run_pinning(config, renderer)
                size = [u.pinned_weight for u in result.units if u.kind != "word"]
                score = result.paired
                print(f"{'words + LoRA' if networks else 'words only':<12} {seed:>8}  "
                      f"{f'{size[0]:.3f}' if size else '(0.5 fixed)':>13}  {score.baseline:.4f} -> {score.result:.4f} "
                      f"({score.improvement * 100:+.1f}%, {score.basis})")


if __name__ == "__main__":
    main()
