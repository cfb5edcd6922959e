"""One pinning run started from the txt2img/img2img Script.

``run_from_script(p, args, is_img2img)`` checks the arguments, copies ``p``
(the caller's object is never changed), fixes its seeds once, runs the
engine with an ``A1111Renderer`` and a report writer under the WebUI's output
folder, drives A1111's progress state and returns a ``Processed`` holding the
best individual's images. ``modules.*`` is imported inside functions only.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image

from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.options import MAX_IMAGES_PER_CALL
from prompt_pinning.run.records import RunResult
from prompt_pinning.rendering import GenerationSettings

from .args import parse_script_args
from .public import host_failure, outputs_folders, public_message, public_path
from .renderer import A1111Renderer

logger = logging.getLogger(__name__)


def generation_settings(p: Any, is_img2img: bool) -> GenerationSettings:
    """The shared settings of every individual, read from a seed-fixed ``p``."""
    return GenerationSettings(
        seed=int(p.seed), subseed=int(p.subseed), subseed_strength=float(p.subseed_strength or 0.0),
        batch_size=int(p.batch_size), steps=int(p.steps), cfg_scale=float(p.cfg_scale),
        width=int(p.width), height=int(p.height), sampler=str(p.sampler_name),
        scheduler=str(getattr(p, "scheduler", None) or "Automatic"),
        denoising_strength=float(p.denoising_strength) if is_img2img and p.denoising_strength else 1.0,
    )


def inpaint_mask(p: Any, options: dict[str, Any]) -> dict[str, Any]:
    """With an inpaint mask source, the target mask is the mask drawn in img2img (``p.image_mask``)."""
    source = options.get("target_mask_source")
    if source not in ("inpaint mask", "inverted inpaint mask"):
        return options
    drawn = getattr(p, "image_mask", None)
    if drawn is None:
        raise ConfigError("target_mask_source", f"{source!r} uses the mask drawn in img2img's inpaint tab, "
                          "and this request has none (txt2img, or img2img without a mask); draw a mask, "
                          "or choose 'mask image' and give target_mask")
    if options.get("target_mask") is not None:
        raise ConfigError("target_mask", f"give no mask image with target_mask_source {source!r}: "
                          "the inpaint mask is the target mask")
    return {**options, "target_mask": drawn}


def build_config(p: Any, parsed: dict[str, Any], is_img2img: bool) -> PinningConfig:
    options = inpaint_mask(p, dict(parsed))
    cmatrix = options.pop("cmatrix")
    return PinningConfig(
        positive=p.prompt, negative=p.negative_prompt or "",
        generation=generation_settings(p, is_img2img),
        cmatrix=None if cmatrix is None else np.asarray(cmatrix, dtype=np.float64),
        outdir=Path(p.outpath_samples or "outputs"),
        **options,
    ).validate()


def command_line_budget() -> Optional[int]:
    try:
        from modules import shared
    except ImportError:
        return None
    value = getattr(getattr(shared, "cmd_opts", None), "prompt_pinning_max_images_per_call", None)
    if isinstance(value, int) and value > MAX_IMAGES_PER_CALL:
        raise ConfigError("--prompt-pinning-max-images-per-call",
                          f"must be <= {MAX_IMAGES_PER_CALL:,} (the bound of max_images_per_call), got {value:,}")
    return value if isinstance(value, int) and value > 0 else None


SCORED_STAGES = ("baseline", "centroid", "generation ")  # renders that add a row to the report's individuals


def progress_line(stage: str, individuals: int, done: int, total: int, since: str = "") -> str:
    """The job text: the stage, the individuals scored (the report's count) and the renders made."""
    if stage in ("starting", "resumed"):
        first = "rendering your prompt (baseline)" if stage == "starting" else "resuming"
        return f"Prompt pinning: {first} · {done}/{total} renders"
    plural = "" if individuals == 1 else "s"
    return f"Prompt pinning: {stage} done · {individuals} individual{plural} scored{since} · {done}/{total} renders"


class HostProgress:
    """Engine progress -> A1111's job count, job text, console total bar and ETA clock."""

    def __init__(self, renderer: A1111Renderer, settings: GenerationSettings, steps_per_call: int):
        self.renderer = renderer
        self.settings = settings
        self.steps_per_call = steps_per_call
        self.done = 0  # renders made (the panel's cost line times them)
        self.individuals = 0
        self.since = ""  # " since resuming": the journal's earlier individuals are not counted here
        self.first_done: Optional[tuple[float, int]] = None  # (time, host calls) when the first render ended

    def plan(self, renders: list[tuple[int, int]]) -> None:
        """Size the job count and total bar from the engine's render calls still to come.

        ``renders``: (individuals, how many such render calls) pairs, a few whatever the run's length.
        The host's ETA divides the time since ``state.time_start`` by the share of jobs done: it
        starts here, at the first render, so the checks and set-up before it do not inflate it.
        """
        import time

        from modules import shared

        calls = sum(self.renderer.calls_needed(n, self.settings) * count for n, count in renders)
        shared.state.job_count = calls
        shared.state.time_start = time.time()
        self.first_done = None
        shared.total_tqdm.updateTotal(calls * self.steps_per_call)

    def steady_clock(self) -> None:
        """After a render: set the host's ETA clock to the seconds per sampler call, so that its ETA
        is that time per call still to come.

        The host counts a call as half done after the first of two steps, while most of a small
        render's time is spent before that step (conditioning); and the first render also carries
        the warm-up. So the time per call is taken over whole calls, after the first render once
        there are more.
        """
        import time

        from modules import shared

        now, calls = time.time(), shared.state.job_no
        if calls <= 0:
            return
        if self.first_done is None:
            self.first_done = (now, calls)
            per_call = (now - shared.state.time_start) / calls
        elif calls > self.first_done[1]:
            per_call = (now - self.first_done[0]) / (calls - self.first_done[1])
        else:
            return
        shared.state.time_start = now - per_call * calls

    def __call__(self, stage: str, done: int, total: int) -> None:
        from modules import shared

        # reported after each render: the stage named is the one just finished
        self.individuals += int(done > self.done and stage.startswith(SCORED_STAGES))
        self.since = " since resuming" if stage == "resumed" else self.since
        if done > self.done:
            self.steady_clock()
        self.done = done
        shared.state.textinfo = progress_line(stage, self.individuals, done, total, self.since)
        if done >= total and 0 < shared.state.job_no < shared.state.job_count:
            # the plan counts the result's render even when the result is the baseline, whose
            # batch it already has: the job count and the console bar end at the calls made
            shared.state.job_count = shared.state.job_no
            shared.total_tqdm.updateTotal(shared.state.job_no * self.steps_per_call)


def steps_per_call(settings: GenerationSettings, is_img2img: bool) -> int:
    """Sampling steps of one process_images call, as A1111 counts them."""
    if is_img2img and settings.denoising_strength < 1.0:
        return int(min(settings.denoising_strength, 0.999) * settings.steps) + 1
    return int(settings.steps)


def run_settings(config: PinningConfig) -> GenerationSettings:
    """The settings the run renders with: a resumed run keeps its own, not the UI's.

    A resume folder that cannot be continued raises ``ResumeError`` (an HTTP 422
    over the API) naming the file, before anything is rendered.
    """
    if config.resume is None:
        return config.generation
    from prompt_pinning.run.checkpoint import check_run_folder, load_run_config

    saved, _ = load_run_config(check_run_folder(Path(config.resume)))
    return saved.generation


def resume_roots() -> list[Path]:
    """``<outputs>/prompt_pins`` of the WebUI's txt2img and img2img output folders (its options)."""
    from modules import shared

    from prompt_pinning.run.rundir import runs_root

    opts = shared.opts
    names = ("outdir_samples", "outdir_txt2img_samples", "outdir_img2img_samples")
    folders = [getattr(opts, name, "") for name in names]
    return [runs_root(folder) for folder in dict.fromkeys(f for f in folders if isinstance(f, str) and f.strip())]


def confine_resume(config: PinningConfig) -> PinningConfig:
    """From the UI and the API, resume (or start from) only a run folder inside the WebUI's outputs.

    A relative name (of either) is read against the outputs folder first (infotexts name
    runs that way: ``txt2img-images/prompt_pins/00000003``), then the WebUI's folder.
    """
    from prompt_pinning.run.checkpoint import confined_run_dir

    def in_outputs(path: Path) -> Path:
        if not path.is_absolute():
            path = next((folder / path for folder in outputs_folders([config.outdir])
                         if (folder / path).is_dir()), path)
        return confined_run_dir(path, resume_roots())

    if config.resume is not None:
        config.resume = in_outputs(Path(config.resume))
    if config.start_from is not None:  # the same rule for the run a new one starts from
        from prompt_pinning.run.checkpoint import ResumeError
        from prompt_pinning.options import ConfigError
        from prompt_pinning.search.start_from import parse_start_from

        folder, number = parse_start_from(config.start_from)
        try:
            config.start_from = f"{in_outputs(folder)}:{number}"
        except ResumeError as error:
            raise ConfigError("start_from", str(error).replace("resume only continues", "only")) from None
    return config


def stop_requested() -> bool:
    from modules import shared

    state = shared.state
    return bool(state.interrupted or state.skipped or getattr(state, "stopping_generation", False))


def make_report_writer():
    from prompt_pinning.reports import ReportWriter

    return ReportWriter()


def run_from_script(p: Any, args: Sequence[Any], is_img2img: bool):
    """The Script's ``run``: returns a ``modules.processing.Processed``."""
    from modules import processing, shared

    shared.state.textinfo = "Prompt pinning: checking the prompt and the settings"  # from the first second
    parsed = parse_script_args(args)
    base = copy.copy(p)
    base.extra_generation_params = dict(getattr(p, "extra_generation_params", None) or {})
    base.comments = dict(getattr(p, "comments", None) or {})
    processing.fix_seed(base)  # once: every individual shares these seeds
    if int(getattr(base, "n_iter", 1) or 1) > 1:
        base.comment("Prompt pinning uses one batch per individual; Batch count was ignored "
                     "(raise lambda_ for more samples).")
        base.n_iter = 1
    config = confine_resume(build_config(base, parsed, is_img2img))
    budget = config.max_images_per_call or command_line_budget()
    from prompt_pinning.prompt.networks import has_network_tags

    renderer = A1111Renderer(base, max_images_per_call=budget,
                             networks_vary=bool(config.network_units) and has_network_tags(config.positive))
    settings = run_settings(config)
    # The engine reports its total before the first render, so the bar covers the baseline.
    progress = HostProgress(renderer, settings, steps_per_call(settings, is_img2img))
    from .cost import Stopwatch, record_speed

    clock = Stopwatch()
    try:
        result = _run_engine(config, renderer, progress)
    finally:
        renderer.release()
    record_speed(clock.seconds(), progress.done * settings.batch_size, progress.steps_per_call,
                 (settings.width, settings.height))
    processed = make_processed(base, result, renderer)
    _save_best_images(base, processed)
    shared.state.textinfo = None
    return processed


@contextlib.contextmanager
def _cma_log_shown(enabled: bool):
    """The WebUI's root logger hides INFO: for the run, the engine's log gets its own console
    handler (and does not also go to the root); the logger is left as it was afterwards."""
    engine_log = logging.getLogger("prompt_pinning")
    if not enabled or engine_log.handlers:
        yield
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("prompt pinning: %(message)s"))
    level, propagate = engine_log.level, engine_log.propagate
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    engine_log.propagate = False
    try:
        yield
    finally:
        engine_log.removeHandler(handler)
        engine_log.setLevel(level)
        engine_log.propagate = propagate


def _run_engine(config: PinningConfig, renderer: A1111Renderer, progress: HostProgress) -> RunResult:
    from prompt_pinning.run import run_pinning

    with _cma_log_shown(config.cma_logging):
        return run_pinning(config, renderer, sink=make_report_writer(), should_stop=stop_requested,
                           progress=progress, raise_errors=False)


def tensor_to_pil(images) -> list[Image.Image]:
    array = (images.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0).round().astype(np.uint8)
    return [Image.fromarray(a) for a in array]


def report_path(result: RunResult) -> str:
    """The report, named relative to the outputs folder (never the server's absolute path)."""
    run_dir = Path(result.run_dir).resolve()
    return public_path(run_dir / "index.html", outputs_folders([run_dir.parent.parent]))


def report_link(base: Any, result: RunResult) -> str:
    """The comment that names the report where the host's ``file=`` route finds it."""
    from .links import report_comment

    return report_comment(Path(result.run_dir) / "index.html", report_path(result),
                          is_api=bool(getattr(base, "is_api", False)))


def run_params(result: RunResult) -> dict[str, Any]:
    """Infotext keys that describe the run and its paired results (each loss next to the
    unmodified prompt's on the same seeds; see docs/loss.md)."""
    from prompt_pinning.reports.infotext import VALIDATION_LOSS_KEY
    from prompt_pinning.run.paired import seed_ranges

    params: dict[str, Any] = {"Prompt pinning": Path(result.run_dir).name}
    if result.paired is not None:
        params.update({"Pinning loss": f"{result.paired.result:.6g}",
                       "Pinning baseline loss": f"{result.paired.baseline:.6g}",
                       "Pinning loss seeds": result.paired.seed_text()})
        if result.paired.improvement is not None:
            params["Pinning improvement"] = f"{result.paired.improvement * 100:+.1f}%"
    for name, score in (("your seeds", result.user_seeds), ("shown seeds", result.shown)):
        if score is None or score in (result.paired,) or (name == "shown seeds" and score == result.user_seeds):
            continue
        params[f"Pinning {name} loss"] = f"{score.result:.6g}"
        params[f"Pinning {name} baseline loss"] = f"{score.baseline:.6g}"
        params[f"Pinning {name}"] = seed_ranges(score.seeds) if score.seeds else score.basis
        if score.improvement is not None:
            params[f"Pinning {name} improvement"] = f"{score.improvement * 100:+.1f}%"
    if result.selected_by == "validation":
        params[VALIDATION_LOSS_KEY] = f"{result.best_validation_loss:.6g}"
        params["Pinning baseline validation loss"] = f"{result.baseline_validation_loss:.6g}"
    params.update({"Pinning generations": len(result.generations), "Pinning stop": public_message(result.stop_reason),
                   "Pinning report": report_path(result)})
    resolved = result.config.get("resolved") or {}
    for key in ("N", "cma_seed", "lambda_", "mu", "initial_std", "initial_radius", "size_limit",
                "hyperbatch_weight_type", "hyperbatch_weight_scale"):
        value = resolved.get(key) if resolved.get(key) is not None else result.config.get(key)
        if value not in (None, ""):
            params[f"Pinning {key}"] = value
    return params


def quote(value: Any) -> str:
    text = str(value)
    if any(c in text for c in ',:"\n'):
        import json

        return json.dumps(text)
    return text


def with_params(infotext: str, params: dict[str, Any]) -> str:
    extra = ", ".join(f"{key}: {quote(value)}" for key, value in params.items())
    return f"{infotext}, {extra}" if infotext else extra


def fallback_infotext(positive: str, negative: str, settings: dict[str, Any], seed: int) -> str:
    from prompt_pinning.reports.infotext import build_infotext, generation_params

    from .hosts import host_lora_hashes

    return build_infotext(positive, negative, {**generation_params(settings, seed), **host_lora_hashes(positive)})


def with_run_settings(base: Any, settings: dict[str, Any], seeds: list[int]) -> Any:
    """A copy of ``base`` labelled with the run's own settings (a resumed run's may differ from the form's)."""
    shown = copy.copy(base)
    shown.comments = dict(base.comments)
    shown.steps, shown.cfg_scale = settings["steps"], settings["cfg_scale"]
    shown.width, shown.height = settings["width"], settings["height"]
    shown.sampler_name, shown.scheduler = settings["sampler"], settings["scheduler"]
    shown.subseed_strength = settings["subseed_strength"]
    shown.seed, shown.subseed = (seeds[0] if seeds else settings["seed"]), settings["subseed"]
    return shown


def stop_message(result: RunResult) -> str:
    if result.stop_reason == "completed":
        return ""
    if result.stop_reason == "interrupted":
        return ("Prompt pinning was interrupted; the candidate selected so far is shown, on the seeds "
                "it was rendered with.")
    return (f"Prompt pinning stopped with an error ({public_message(result.stop_reason)}); everything "
            "completed before it is saved in the report, and the candidate selected so far is shown.")


def make_processed(base: Any, result: RunResult, renderer: A1111Renderer):
    from modules import processing

    best = result.best
    if best is None and result.stop_reason == "interrupted":
        return _interrupted_before_any_image(base, result)
    if best is None:
        raise host_failure(result.stop_reason, renderer_settings(base))
    images = tensor_to_pil(best.images)
    settings = result.config["generation"]
    host_texts = renderer.infotexts.get((best.positive, best.negative, tuple(best.seeds))) or []
    params = run_params(result)
    texts = [with_params(host_texts[i] if i < len(host_texts)
                         else fallback_infotext(best.positive, best.negative, settings, seed), params)
             for i, seed in enumerate(best.seeds)]
    shown = with_run_settings(base, settings, list(best.seeds))
    shown.prompt, shown.negative_prompt = best.positive, best.negative
    from .result_line import pinned_lines

    shown.comments = {**dict.fromkeys(pinned_lines(result), 1), **shown.comments}  # read first
    message = stop_message(result)
    if message:
        shown.comment(message)
    shown.comment(report_link(base, result))
    subseeds = [int(settings["subseed"]) + i for i in range(len(images))]
    return processing.Processed(
        shown, images, seed=best.seeds[0], info=texts[0], subseed=subseeds[0],
        all_prompts=[best.positive] * len(images), all_negative_prompts=[best.negative] * len(images),
        all_seeds=list(best.seeds), all_subseeds=subseeds, infotexts=texts,
    )


def renderer_settings(base: Any) -> Any:
    """The size and batch the run rendered at, for an error message."""
    from types import SimpleNamespace

    return SimpleNamespace(width=int(base.width), height=int(base.height), batch_size=int(base.batch_size))


def _interrupted_before_any_image(base: Any, result: RunResult):
    """An interrupt that came before the first individual was scored: no image, not an error."""
    from modules import processing

    shown = copy.copy(base)
    shown.comments = dict(base.comments)
    shown.comment("Prompt pinning was interrupted before its first image was finished.")
    shown.comment(report_link(base, result))
    text = with_params("", {"Prompt pinning": Path(result.run_dir).name, "Pinning stop": public_message(result.stop_reason),
                            "Pinning report": report_path(result)})
    return processing.Processed(shown, [], seed=int(base.seed), info=text, subseed=int(base.subseed),
                                infotexts=[text])


def _save_best_images(base: Any, processed) -> None:
    """Save the returned images where A1111 would, if the user's settings ask for it."""
    from modules import images as host_images
    from modules import shared

    opts = shared.opts
    if not getattr(opts, "samples_save", False) or getattr(base, "do_not_save_samples", False):
        return
    for image, seed, text in zip(processed.images, processed.all_seeds, processed.infotexts):
        try:
            host_images.save_image(image, base.outpath_samples, "", seed, processed.prompt,
                                   opts.samples_format, info=text, p=base)
        except Exception:  # saving is a convenience here; the report has every image
            logger.warning("could not save a pinned image to %s", base.outpath_samples, exc_info=True)
