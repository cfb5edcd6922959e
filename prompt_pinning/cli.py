"""Command line: a full pinning run, on the built-in model by default."""
from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from .config import ConfigError, PinningConfig
from .options import GENERATION_DEFAULTS, GROUPS, OPTIONS, Option
from .rendering import GenerationSettings
from .cli_renderers import (add_diffusers_arguments, add_webui_arguments, check_sampler, diffusers_renderer,
                            webui_renderer)
from .cli_summary import format_result

EXAMPLE_POSITIVE = "a red circle, on a blue background"
# Torch threads of the built-in model. The demo on 2 shared x86_64 cores took 9-70 s with one
# thread and 34-389 s with two (same result, load average 1 to 13; README "Options").
DEFAULT_THREADS = 1


class _DefaultsFormatter(argparse.HelpFormatter):
    """Append '(default: X)' where a default says something (not to flags)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if any(action.default is v for v in (None, False, True, argparse.SUPPRESS)) or action.default == []:
            return text
        return text + " (default: %(default)s)"


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option in one line, without the usage block."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _help(option: Option) -> str:
    """The schema's hint, computed default and range (argparse treats % as a format)."""
    text = option.full_hint()
    if option.kind == "bool":
        text = f"turn off (on by default): {text[0].lower()}{text[1:]}"
    return text.replace("%", "%%")


def _add_option(group, option: Option) -> None:
    """One schema option as a command-line argument (dest: the PinningConfig field)."""
    common = {"dest": option.name, "help": _help(option)}
    if option.kind == "images":  # several paths after one flag, and the flag may be repeated
        common["help"] += " Give several paths after one --target, or repeat it."
        group.add_argument(option.cli, action="extend", nargs="+", default=[], metavar="IMAGE", **common)
    elif option.kind == "text":
        group.add_argument(option.cli, default=option.default, metavar="TAGS", **common)
    elif option.kind == "mask":
        group.add_argument(option.cli, type=Path, default=None, metavar="IMAGE", **common)
    elif option.kind == "bool":  # the flag turns a default-on option off
        group.add_argument(option.cli, action="store_false" if option.default else "store_true", **common)
    elif option.kind == "choice":
        group.add_argument(option.cli, choices=option.choices, default=option.default, **common)
    elif option.kind in ("int", "float"):
        group.add_argument(option.cli, type=int if option.kind == "int" else float,
                           default=option.default, **common)
    elif option.kind == "matrix":
        group.add_argument(option.cli, default=None, metavar="JSON_OR_FILE", **common)
    else:
        group.add_argument(option.cli, type=Path, default=None, metavar="RUN_DIR", **common)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="prompt-pinning",
        description="Find the attention weights that pin a prompt to a visual target "
        "(CMA-ES over per-unit weights, scored with LDR-FLIP). Options with a computed "
        "default take 0 for auto.",
        formatter_class=_DefaultsFormatter,
    )
    groups = {"Target": p.add_argument_group("target")}
    g = groups["Target"]
    g.add_argument("--prompt", default=EXAMPLE_POSITIVE, help="positive prompt (A1111 syntax)")
    g.add_argument("--negative", default="", help="negative prompt (default: none)")

    d = GENERATION_DEFAULTS
    g = p.add_argument_group("generation (the renderer call; the same defaults as PinningConfig)")
    g.add_argument("--seed", type=int, default=d["seed"], help="image seed; image i uses seed + i")
    g.add_argument("--subseed", type=int, default=d["subseed"], help="variation seed")
    g.add_argument("--batch-size", type=int, default=d["batch_size"], help="images per individual")
    g.add_argument("--steps", type=int, default=d["steps"], help="sampling steps")
    g.add_argument("--cfg-scale", type=float, default=d["cfg_scale"], help="classifier-free guidance scale")
    g.add_argument("--width", type=int, default=d["width"], help="image width")
    g.add_argument("--height", type=int, default=d["height"], help="image height")
    g.add_argument("--sampler", default=d["sampler"], help="sampler name (see --list-samplers)")
    g.add_argument("--scheduler", default=d["scheduler"], help="sigma schedule: karras or exponential")
    g.add_argument("--list-samplers", action="store_true", help="list sampler names and exit")

    groups.update({name: p.add_argument_group(name.lower()) for name in GROUPS if name not in groups})
    for option in OPTIONS:
        _add_option(groups[option.group], option)

    g = groups["Output"]
    g.add_argument("--outdir", type=Path, default=Path("outputs"),
                   help="output root; runs go to OUTDIR/txt2img-images/prompt_pins/")
    g.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help="torch threads for the built-in model, in this process only; 0 = torch's "
                        "default (one per core, slow when other processes share the cores)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    g.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_webui_arguments(p)
    add_diffusers_arguments(p)
    from .distributed.cli_ray import add_ray_arguments

    add_ray_arguments(p)
    return p


def read_cmatrix(text: Optional[str]) -> Optional[list]:
    """--cmatrix: JSON text (a list of lists), or the path of a JSON file holding one."""
    if text is None or text.strip() == "" or text.strip().startswith("["):
        return text
    path = Path(text)
    if not path.is_file():
        raise ConfigError("cmatrix", f"must be JSON (a list of lists) or a JSON file; {text!r} is neither")
    return path.read_text(encoding="utf-8")


def config_from_args(args: argparse.Namespace) -> PinningConfig:
    generation = GenerationSettings(
        seed=args.seed, subseed=args.subseed, batch_size=args.batch_size, steps=args.steps,
        cfg_scale=args.cfg_scale, width=args.width, height=args.height,
        sampler=args.sampler, scheduler=args.scheduler,
    )
    options = {option.name: getattr(args, option.name) for option in OPTIONS}
    options["targets"] = [Path(t) for t in options["targets"]]
    options["cmatrix"] = read_cmatrix(options["cmatrix"])
    return PinningConfig(
        positive=args.prompt, negative=args.negative, generation=generation,
        outdir=args.outdir / "txt2img-images", **options,
    ).validate()


class _ProgressBar:
    """tqdm bar over evaluated individuals, fed by the run's progress callback.

    One call draws at most once: the stage goes in without a redraw, and the
    count moves with ``update`` (which redraws no more often than tqdm's interval).
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=stage, unit="individual", dynamic_ncols=True)
        self.bar.total = total
        self.bar.set_description_str(stage, refresh=False)
        self.bar.update(done - self.bar.n)

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
    reports = None
    flags = flag_names(parser)
    try:
        check_resume_flags(parser, args)
        config = config_from_args(args)
        set_threads(args.threads)
        from .report_command import StoppableReports

        reports = StoppableReports()
        with _logs_above_the_bar(args.progress):
            result = _run(config, args, bar, reports)
    except (ValueError, OSError) as error:  # bad input or every --webui instance gone: one line
        bar.close()
        sys.stderr.write(f"{parser.prog}: error: {with_flag(str(error), flags)}\n")
        result = getattr(error, "pinning_result", None)  # a run that stopped keeps what it did
        if result is not None:
            sys.stdout.write(format_result(result, _unfinished(reports)))
        return 2
    except KeyboardInterrupt as interrupt:  # second Ctrl-C: the run still kept its best
        bar.close()
        sys.stderr.write(f"{parser.prog}: interrupted\n")
        result = getattr(interrupt, "pinning_result", None)
        if result is not None:
            sys.stdout.write(format_result(result, _unfinished(reports)))
        return 130
    bar.close()
    sys.stdout.write(format_result(result, _unfinished(reports)))
    return 0 if result.stop_reason in ("completed", "interrupted") else 1


# Flags that a resume still uses; every other one is the run's saved setting.
RESUME_FLAGS = {"resume", "threads", "progress", "verbose", "list_samplers", "webui", "webui_auth_file",
                "webui_timeout", "webui_tokenizer", "webui_vocab", "diffusers", "diffusers_config",
                "diffusers_device", "ray", "ray_actors"}
CONFIG_KEYS = {"positive": "prompt"}  # config keys whose flag has another name


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Config key (and argparse dest) -> its command-line flag."""
    flags = {a.dest: a.option_strings[-1] for a in parser._actions if a.option_strings}
    flags.update({key: flags[dest] for key, dest in CONFIG_KEYS.items()})
    return flags


def with_flag(message: str, flags: dict[str, str]) -> str:
    """An error that starts with a config key ('batch_size: ...') names its flag instead."""
    key, sep, rest = message.partition(":")
    first, space, tail = key.partition(" ")
    if first in flags:
        return f"{flags[first]}{space}{tail}{sep}{rest}"
    return message


def check_resume_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--resume continues with the run's saved settings: refuse flags that it would ignore."""
    if args.resume is None:
        return
    flags = flag_names(parser)
    given = [flags[a.dest] for a in parser._actions if a.option_strings and a.dest not in RESUME_FLAGS
             and a.dest != "help" and getattr(args, a.dest) != a.default]
    if given:
        raise ConfigError("--resume", f"continues the run with its saved settings, so {', '.join(given)} "
                          "would be ignored; leave them out (start a new run to change them)")


def set_threads(threads: int) -> None:
    """Torch's thread count for this (command-line) process; the engine never sets it."""
    if threads < 0:
        raise ConfigError("--threads", f"must be >= 0 (0 = torch's default), got {threads}")
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


def _logs_above_the_bar(progress: bool):
    """Log lines go above the progress bar instead of through it."""
    if not progress:
        return contextlib.nullcontext()
    from tqdm.contrib.logging import logging_redirect_tqdm

    return logging_redirect_tqdm()


def _run(config: PinningConfig, args: argparse.Namespace, bar: _ProgressBar, reports):
    """The run, its report drawn by ``reports`` (a StoppableReports, stopped by the first Ctrl-C)."""
    import signal

    from .builtin import BuiltinRenderer
    from .run import run_pinning

    if args.webui and args.diffusers:
        raise ConfigError("--diffusers", "renders on this machine; leave out --webui (or --diffusers)")
    for flag, value in (("--diffusers-config", args.diffusers_config), ("--diffusers-device", args.diffusers_device)):
        if value is not None and not args.diffusers:
            raise ConfigError(flag, "applies to --diffusers PATH only; give the model's path too")
    if args.ray is not None:
        if not args.webui:  # the built-in model and diffusers sample with hyperbatch's samplers
            check_sampler(config.generation.sampler, config.generation.scheduler)
        from .distributed.cli_ray import ray_renderer

        renderer = ray_renderer(args, config)
    elif args.webui:
        renderer = webui_renderer(args, config)
    elif args.diffusers:
        renderer = diffusers_renderer(args, config)
    else:
        check_sampler(config.generation.sampler, config.generation.scheduler)
        renderer = BuiltinRenderer(max_images_per_call=config.max_images_per_call)
    stop = reports.stop
    previous = signal.getsignal(signal.SIGINT)

    def on_interrupt(signum, frame):  # first Ctrl-C: stop cleanly, keep the best so far
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        logging.getLogger(__name__).warning("stopping after the current step (Ctrl-C again to abort)")

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        return run_pinning(config, renderer, sink=reports, should_stop=stop.is_set, progress=bar)
    finally:
        signal.signal(signal.SIGINT, previous)
        shutdown = getattr(renderer, "shutdown", None)  # Ray actors: their resources go back now
        if callable(shutdown):
            shutdown()


def _unfinished(reports) -> bool:
    return bool(reports is not None and reports.unfinished)


if __name__ == "__main__":
    sys.exit(main())
