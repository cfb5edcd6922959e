"""``python -m prompt_pinning sweep PROMPTS.txt --ray ADDRESS [run options]``: one pinning run per
prompt line, each a Ray task in its own folder, and a summary table.

The sweep folder is ``OUTDIR/sweeps/<PROMPTS file name without suffix>``; each prompt's run
lives in ``runs/<slug>-<hash>/prompt_pins/<run>`` (named by the prompt's text, so adding or
moving lines keeps every finished run). Rerunning the same command skips finished prompts,
resumes interrupted or failed runs (the engine replays their journal) and starts the rest.
``sweep.json`` keeps the sweep's options and renderer (kind, model path or URLs): a rerun with
other options or another model is refused.

A task renders and scores on its own node: the run's renderer is built there from a
RendererSpec (a GPU per task for a diffusers model on GPUs, else a CPU), so the output
folder must be one that every node sees (a shared file system) beyond one machine.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections import Counter, deque
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Sequence

from ..run.checkpoint import CONFIG_FILE, STATE_FILE
from ..run.files import read_json, write_json_atomic
from ..run.rundir import existing_run_numbers, number_name, runs_root
from .summary import summary_row, write_tables

log = logging.getLogger(__name__)

PROG = "prompt-pinning sweep"
SWEEP_FILE = "sweep.json"
MAX_PROMPTS = 100_000
MAX_PROMPT_BYTES = 32 * 2**20  # read whole: 100,000 prompts of ~300 characters
# Options that say how to run, not what: a rerun may change them.
NOT_RECORDED = {"positive", "outdir", "resume"}


def read_prompts(path: Path) -> list[str]:
    """One prompt per non-empty line; lines starting with # are comments."""
    try:
        size = Path(path).stat().st_size
        if size > MAX_PROMPT_BYTES:
            raise ValueError(f"PROMPTS: {path}: {size} bytes; at most {MAX_PROMPT_BYTES} bytes "
                             f"(split it into several sweeps)")
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"PROMPTS: {path}: cannot be read as UTF-8 text ({error})") from None
    prompts = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"PROMPTS: {path}: holds no prompt (one per line; # starts a comment)")
    if len(prompts) > MAX_PROMPTS:
        raise ValueError(f"PROMPTS: {path}: {len(prompts)} prompts; at most {MAX_PROMPTS}")
    repeated = sorted(p for p, n in Counter(prompts).items() if n > 1)
    if repeated:
        raise ValueError(f"PROMPTS: {path}: a prompt is listed twice: {repeated[0]!r}")
    return prompts


def prompt_folder(prompt: str) -> str:
    """A prompt's run home: readable words and a hash of the whole text."""
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40].strip("-") or "prompt"
    return f"{slug}-{hashlib.sha256(prompt.encode('utf-8')).hexdigest()[:10]}"


def latest_run(home: Path) -> Optional[Path]:
    numbers = existing_run_numbers(runs_root(home))
    return runs_root(home) / number_name(numbers[-1]) if numbers else None


def finished(run_dir: Optional[Path]) -> bool:
    if run_dir is None or not (run_dir / STATE_FILE).is_file() or not (run_dir / "final_result.json").is_file():
        return False
    return read_json(run_dir / STATE_FILE).get("stop_reason") == "completed"


def pin_prompt(config, spec, home: str) -> dict[str, Any]:
    """One prompt's run (a Ray task): skipped when finished, resumed when begun, else started."""
    from ..reports.writer import ReportWriter
    from ..run import run_pinning
    from .actor import set_worker_threads

    home_path = Path(home)
    found = latest_run(home_path)
    if finished(found):
        return summary_row(config.positive, found, "done before")
    resume = found if found is not None and (found / CONFIG_FILE).is_file() else None
    try:
        set_worker_threads(spec)
        renderer = spec.build()
        check = getattr(renderer, "check", None)  # a WebUI's: its sampler, size, model (a resume: at its first render)
        if callable(check) and resume is None:
            check(config.generation)
        run_config = replace(config, outdir=home_path, resume=resume)
        result = run_pinning(run_config, renderer, sink=ReportWriter(worker="thread"), raise_errors=False)
    except Exception as error:  # bad input or a run that cannot be resumed: the other prompts go on
        log.error("sweep: %r failed: %s", config.positive, error)
        return {"prompt": config.positive, "status": f"error: {type(error).__name__}: {error}"}
    status = result.stop_reason if resume is None else f"{result.stop_reason} (resumed)"
    return summary_row(config.positive, Path(result.run_dir), status)


def sweep_parser():
    from ..cli import build_parser

    parser = build_parser()
    parser.prog = PROG
    parser.description = ("One pinning run per line of PROMPTS (a text file), as Ray tasks, with a summary "
                          "table; rerunning the same command resumes the sweep. The run options are the "
                          "pinning command's; --prompt comes from the file.")
    parser.add_argument("prompts", type=Path, metavar="PROMPTS", help="text file, one prompt per line")
    return parser


def sweep_main(argv: Optional[Sequence[str]] = None) -> int:
    from ..cli import EXAMPLE_POSITIVE, config_from_args, flag_names, with_flag
    from ..cli_renderers import check_sampler

    parser = sweep_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.prompt != EXAMPLE_POSITIVE:
            raise ValueError("--prompt: a sweep takes its prompts from PROMPTS, one per line")
        if args.resume is not None:
            raise ValueError("--resume: rerun the same sweep command instead; it resumes every unfinished run")
        if args.ray_actors is not None and args.ray_actors < 1:
            raise ValueError(f"--ray-actors: must be >= 1, got {args.ray_actors}")
        prompts = read_prompts(args.prompts)
        config = config_from_args(args)
        if not args.webui:
            check_sampler(config.generation.sampler, config.generation.scheduler)
        folder = args.outdir / "sweeps" / args.prompts.stem
        check_options(folder, config, prompts, renderer_of(args, config))
        rows = run_sweep(config, prompts, folder, args)
    except (ValueError, OSError) as error:
        sys.stderr.write(f"{PROG}: error: {with_flag(str(error), flag_names(parser))}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted; rerun the same command to resume\n")
        return 130
    failed = [r for r in rows if not str(r["status"]).startswith("completed") and r["status"] != "done before"]
    sys.stdout.write(f"sweep: {len(rows) - len(failed)} of {len(rows)} prompts done; table: "
                     f"{folder / 'sweep.md'}\n")
    return 1 if failed else 0


def recorded_options(config) -> dict[str, Any]:
    return {k: v for k, v in config.to_dict().items() if k not in NOT_RECORDED}


def renderer_of(args, config) -> dict[str, Any]:
    """The model the sweep renders with (its kind and path or URLs): a prompt finished on one
    model is not done on another."""
    from .cli_ray import renderer_spec

    spec = renderer_spec(args, config)
    return {"kind": spec.kind, "target": spec.target}


def check_options(folder: Path, config, prompts: list[str], renderer: dict[str, Any]) -> None:
    """Record the sweep's options and renderer, or refuse others than those it was started with."""
    options = json.loads(json.dumps({**recorded_options(config), "renderer": renderer}, default=str))
    path = folder / SWEEP_FILE
    if path.is_file():
        saved = read_json(path).get("options", {})
        differ = [f"{k} {saved.get(k)!r} then, {options.get(k)!r} now"
                  for k in sorted(set(saved) | set(options)) if saved.get(k) != options.get(k)]
        if differ:
            raise ValueError(f"--outdir: the sweep in {folder} was run with other options ({'; '.join(differ)}); "
                             "rerun it with the same options, or give another --outdir for a new sweep")
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, {"options": options, "prompts": prompts})


def run_sweep(config, prompts: list[str], folder: Path, args) -> list[dict[str, Any]]:
    """Every prompt as a Ray task, at most ``--ray-actors`` at once (default: one per GPU of the
    cluster for a GPU renderer, else one per CPU)."""
    from .cli_ray import renderer_spec
    from .cluster import connect
    from .renderer import actor_resources

    import ray

    spec = renderer_spec(args, config)
    connect(args.ray or "local")
    resources = actor_resources(spec)
    on_gpus = "num_gpus" in resources
    task = ray.remote(pin_prompt).options(**(resources if on_gpus else {"num_cpus": 1}), max_retries=2)
    limit = args.ray_actors or max(1, int(ray.cluster_resources().get("GPU" if on_gpus else "CPU", 1)))
    rows: dict[int, dict[str, Any]] = {}
    waiting = deque(enumerate(prompts))
    running: dict[Any, int] = {}
    try:
        while waiting or running:
            while waiting and len(running) < limit:
                k, prompt = waiting.popleft()
                home = folder / "runs" / prompt_folder(prompt)
                running[task.remote(replace(config, positive=prompt), spec, str(home))] = k
            (ref,), _ = ray.wait(list(running), num_returns=1)
            k = running.pop(ref)
            rows[k] = _row(ref, prompts[k])
            log.info("sweep: %d of %d: %r %s", len(rows), len(prompts), prompts[k], rows[k]["status"])
            write_tables(folder, [rows[i] for i in sorted(rows)])
    except KeyboardInterrupt:  # each run stops and keeps what it did
        for ref in running:
            ray.cancel(ref)
        ray.wait(list(running), num_returns=len(running), timeout=30)
        raise
    return [rows[i] for i in sorted(rows)]


def _row(ref, prompt: str) -> dict[str, Any]:
    import ray
    from ray.exceptions import RayError

    try:
        return ray.get(ref)
    except RayError as error:  # the task's node or worker died (after Ray's retries)
        return {"prompt": prompt, "status": f"error: {type(error).__name__}: {str(error).splitlines()[0]}"}
