"""Command line: a full pinning run, on the built-in model by default."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from .config import (CMA_WEIGHTS, HYPERBATCH_WEIGHT_TYPES, LOSS_VARIANTS, MAX_VALIDATION_BATCHES, SEED_SCHEDULES,
                     UNIT_MODES, ConfigError, PinningConfig)
from .rendering import GenerationSettings

EXAMPLE_POSITIVE = "a red circle, on a blue background"
EXAMPLE_NEGATIVE = "green"


class _DefaultsFormatter(argparse.HelpFormatter):
    """Append '(default: X)' where a default says something (not to flags)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if any(action.default is v for v in (None, False, True, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _auto_int(text: str) -> Optional[int]:
    value = int(text)
    return None if value == 0 else value


def _auto_float(text: str) -> Optional[float]:
    value = float(text)
    return None if value == 0 else value


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="prompt-pinning",
        description="Find the attention weights that pin a prompt to a visual target "
        "(CMA-ES over per-unit weights, scored with LDR-FLIP).",
        formatter_class=_DefaultsFormatter,
    )
    add = p.add_argument
    g = p.add_argument_group("prompt and target")
    g.add_argument("--prompt", default=EXAMPLE_POSITIVE, help="positive prompt (A1111 syntax)")
    g.add_argument("--negative", default=EXAMPLE_NEGATIVE, help="negative prompt")
    g.add_argument("--target", action="append", default=[], metavar="IMAGE",
                   help="target image (repeatable); default: the unmodified prompt's first batch")
    g.add_argument("--units", choices=UNIT_MODES, default="word",
                   help="pinnable unit: each word, or each comma-separated phrase")

    g = p.add_argument_group("generation")
    g.add_argument("--seed", type=int, default=1, help="image seed; image i uses seed + i")
    g.add_argument("--subseed", type=int, default=0, help="variation seed")
    g.add_argument("--batch-size", type=int, default=8, help="images per individual")
    g.add_argument("--steps", type=int, default=12, help="sampling steps")
    g.add_argument("--cfg-scale", type=float, default=3.0, help="classifier-free guidance scale")
    g.add_argument("--width", type=int, default=64, help="image width")
    g.add_argument("--height", type=int, default=64, help="image height")
    g.add_argument("--sampler", default="DPM++ 2M", help="sampler name (see --list-samplers)")
    g.add_argument("--scheduler", default="karras", help="sigma schedule: karras or exponential")
    g.add_argument("--list-samplers", action="store_true", help="list sampler names and exit")

    g = p.add_argument_group("optimizer (CMA-ES); 0 means auto")
    g.add_argument("--no-cma-logging", dest="cma_logging", action="store_false",
                   help="turn off the per-generation CMA logbook line")
    g.add_argument("--cma-seed", type=_auto_int, default=None,
                   help="NumPy seed for CMA sampling (default: from seed and subseed)")
    g.add_argument("--generations", type=_auto_int, default=None,
                   help="number of generations (auto: max(16, int(16 * floor(log N))); at least 16 "
                   "so that CMA can search when N <= 2)")
    g.add_argument("--initial-std", type=float, default=0.05, help="CMA initial population STD")
    g.add_argument("--initial-radius", type=float, default=0.25,
                   help="radius of the uniform distribution of the initial centroid")
    g.add_argument("--lambda", dest="lambda_", type=_auto_int, default=None,
                   help="children per generation (auto: int(4 + 3 log N))")
    g.add_argument("--mu", type=_auto_int, default=None, help="parents kept (auto: int(lambda / 2))")
    g.add_argument("--weights", choices=CMA_WEIGHTS, default="superlinear", help="recombination weights")
    for name, formula in (("cs", "(mueff + 2) / (N + mueff + 3)"),
                          ("damps", "1 + 2 max(0, sqrt((mueff - 1) / (N + 1)) - 1) + cs"),
                          ("ccum", "4 / (N + 4)"), ("ccov1", "2 / ((N + 1.3)^2 + mueff)"),
                          ("ccovmu", "2 (mueff - 2 + 1 / mueff) / ((N + 2)^2 + mueff)")):
        g.add_argument(f"--{name}", type=_auto_float, default=None, help=f"auto: {formula}")

    g = p.add_argument_group("size limiter (multi-objective CMA)")
    g.add_argument("--size-limit", type=float, default=0.0,
                   help="max L2 distance from the original weights; 0 disables")
    g.add_argument("--size-limit-error", type=_auto_float, default=None, help="auto: size limit / 100")
    g.add_argument("--size-limit-weight", type=_auto_float, default=None, help="auto: size limit * 10")

    g = p.add_argument_group("hyperbatch loss weights")
    g.add_argument("--no-hyperbatch-weights", dest="hyperbatch_weights", action="store_false",
                   help="disable hyperbatch weights")
    g.add_argument("--no-hyperbatch-force", dest="hyperbatch_force", action="store_false",
                   help="do not apply hyperbatch weights with a plain sampler")
    g.add_argument("--hyperbatch-weight-type", choices=HYPERBATCH_WEIGHT_TYPES, default="Geometric",
                   help="how levels are weighted")
    g.add_argument("--hyperbatch-weight-scale", type=float, default=1.0, help="weight scaling factor")

    g = p.add_argument_group("generalisation")
    g.add_argument("--validation-batches", type=int, default=1, metavar=f"0..{MAX_VALIDATION_BATCHES}",
                   help="batches of held-out seeds the best candidates are also rendered on; the result "
                   "is the lowest validation loss (about 10%% more renders per batch); 0 = off")
    g.add_argument("--seed-schedule", choices=SEED_SCHEDULES, default="rotating",
                   help="fixed: the same seeds every generation; rotating: fresh seeds each generation")
    g.add_argument("--loss-variant", choices=LOSS_VARIANTS, default="union",
                   help="union: targets + batch, all pairs; target: target x batch pairs only; "
                   "consistency: batch pairs only, no target")

    g = p.add_argument_group("output")
    g.add_argument("--outdir", type=Path, default=Path("outputs"),
                   help="output root; runs go to OUTDIR/txt2img-images/prompt_pins/")
    g.add_argument("--resume", type=Path, default=None, metavar="RUN_DIR", help="continue a run folder")
    g.add_argument("--max-images-per-call", type=_auto_int, default=None,
                   help="renderer memory budget (auto: from free memory)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def config_from_args(args: argparse.Namespace) -> PinningConfig:
    generation = GenerationSettings(
        seed=args.seed, subseed=args.subseed, batch_size=args.batch_size, steps=args.steps,
        cfg_scale=args.cfg_scale, width=args.width, height=args.height,
        sampler=args.sampler, scheduler=args.scheduler,
    )
    return PinningConfig(
        positive=args.prompt, negative=args.negative, generation=generation,
        targets=[Path(t) for t in args.target], unit_mode=args.units,
        cma_logging=args.cma_logging, cma_seed=args.cma_seed, generations=args.generations,
        initial_std=args.initial_std, initial_radius=args.initial_radius,
        size_limit=args.size_limit, size_limit_error=args.size_limit_error,
        size_limit_weight=args.size_limit_weight, lambda_=args.lambda_, mu=args.mu,
        weights=args.weights, cs=args.cs, damps=args.damps, ccum=args.ccum,
        ccov1=args.ccov1, ccovmu=args.ccovmu,
        hyperbatch_weights_enabled=args.hyperbatch_weights,
        hyperbatch_weights_force_allowed=args.hyperbatch_force,
        hyperbatch_weight_type=args.hyperbatch_weight_type,
        hyperbatch_weight_scale=args.hyperbatch_weight_scale,
        outdir=args.outdir / "txt2img-images", max_images_per_call=args.max_images_per_call,
        resume=args.resume, validation_batches=args.validation_batches,
        seed_schedule=args.seed_schedule, loss_variant=args.loss_variant,
    ).validate()


class _ProgressBar:
    """tqdm bar over evaluated individuals, fed by the run's progress callback."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, unit="individual", dynamic_ncols=True)
        if self.bar.total != total:
            self.bar.total = total
        self.bar.set_description(stage)
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _list_samplers() -> str:
    from hyperbatch import SAMPLERS

    return "\n".join(SAMPLERS)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.list_samplers:
        sys.stdout.write(_list_samplers() + "\n")
        return 0
    bar = _ProgressBar(args.progress)
    try:
        config = config_from_args(args)
        result = _run(config, args, bar)
    except (ValueError, OSError) as error:  # bad input: one line, no traceback
        bar.close()
        sys.stderr.write(f"{parser.prog}: error: {error}\n")
        return 2
    except KeyboardInterrupt as interrupt:  # second Ctrl-C: the run still kept its best
        bar.close()
        sys.stderr.write(f"{parser.prog}: interrupted\n")
        result = getattr(interrupt, "pinning_result", None)
        if result is not None:
            sys.stdout.write(format_result(result))
        return 130
    bar.close()
    sys.stdout.write(format_result(result))
    return 0 if result.stop_reason in ("completed", "interrupted") else 1


def _run(config: PinningConfig, args: argparse.Namespace, bar: _ProgressBar):
    import signal
    import threading

    from .builtin import BuiltinRenderer
    from .reports import ReportWriter
    from .run import run_pinning

    _check_sampler(config.generation.sampler, config.generation.scheduler)
    renderer = BuiltinRenderer(max_images_per_call=config.max_images_per_call)
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):  # first Ctrl-C: stop cleanly, keep the best so far
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        logging.getLogger(__name__).warning("stopping after the current step (Ctrl-C again to abort)")

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        return run_pinning(config, renderer, sink=ReportWriter(), should_stop=stop.is_set,
                           progress=bar)
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_sampler(sampler: str, scheduler: str) -> None:
    """Refuse an unknown sampler or schedule before the run starts."""
    from hyperbatch import get_sampler
    from hyperbatch.sigmas import SCHEDULES

    get_sampler(sampler)
    if scheduler.lower() not in (*SCHEDULES, "automatic"):
        raise ValueError(f"--scheduler: unknown schedule {scheduler!r}; "
                         f"valid: {', '.join(sorted(SCHEDULES))}, automatic")


def format_result(result) -> str:
    lines = [
        "",
        f"stopped:         {result.stop_reason}",
        f"original prompt: {result.original_positive}",
        f"original neg.:   {result.original_negative}",
    ]
    if result.best is not None:
        lines += [
            f"pinned prompt:   {result.best.positive}",
            f"pinned neg.:     {result.best.negative}",
        ]
    lines += [
        f"best loss:       {result.best_loss:.6f}",
        f"baseline loss:   {result.baseline_loss:.6f}  (unmodified prompt)",
    ]
    if result.selected_by == "validation":
        lines += [
            f"validation loss: {result.best_validation_loss:.6f}  (pinned prompt, held-out seeds; "
            f"unmodified prompt: {result.baseline_validation_loss:.6f})",
        ]
    lines += [
        f"report:          {Path(result.run_dir) / 'index.html'}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
