"""The Script: title/show, ui() from the argument table, run() end to end on the stand-in."""
import importlib.util
import json
import re

import pytest

import forge_stand_in
import webui_stand_in

webui_stand_in.install()

import gradio  # noqa: E402  (the stand-in)
from modules import processing, shared  # noqa: E402

from prompt_pinning_webui.args import ARGUMENT_INDEX, ARGUMENTS, default_args, parse_argument  # noqa: E402
from prompt_pinning_webui.cost import run_plan  # noqa: E402
from prompt_pinning_webui.ui import elem_id  # noqa: E402

SCRIPT = webui_stand_in.REPO / "scripts" / "prompt_pinning.py"


def load_script_module():
    spec = importlib.util.spec_from_file_location("prompt_pinning.py", SCRIPT)  # as A1111 names it
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def script():
    """The Script, with ``torch.load`` wrapped by the host's checked loader as in a real WebUI."""
    from modules import safe

    webui_stand_in.reset()
    gradio.created.clear()
    with safe.active():
        yield load_script_module().Script()


def test_title_and_show(script):
    assert script.title() == "Prompt pinning"
    assert script.show(False) and script.show(True)


def test_ui_returns_one_component_per_argument_in_order_and_is_repeatable(script):
    first = script.ui(False)
    second = script.ui(False)
    for components in (first, second):
        assert [c.kwargs["elem_id"] for c in components] == [elem_id("txt2img", s.name) for s in ARGUMENTS]
        for component, option in zip(components[1:], ARGUMENTS[1:]):
            if option.auto:  # shown empty with an "auto" placeholder: the same auto as script_args' 0
                assert (component.kind, component.value, component.kwargs["placeholder"]) == ("Textbox", "", "auto")
                assert parse_argument(0, option, component.value) is None
            else:
                assert (component.kind, component.value) == (option.widget, option.ui_default)
    groups = [c.args[0] for c in gradio.created if c.kind == "Accordion"][:9]
    assert groups == ["Basic", "More options", "Target details", "Scoring", "Search (CMA-ES)",
                      "CMA-ES constants (experts)", "Stay close to your weights", "Hyperbatch", "Output and resume"]
    opened = [c.kwargs.get("open") for c in gradio.created if c.kind == "Accordion"][:9]
    assert opened == [True] + [False] * 8
    assert not any("Prompt pinning" in title for title in groups)


def test_the_open_group_holds_the_basics_and_every_option_has_a_plain_label(script):
    script.ui(False)
    basic_end = next(i for i, c in enumerate(gradio.created) if c.kind == "Accordion" and c.args[0] == "More options")
    basic = [c.kwargs.get("elem_id", "") for c in gradio.created[:basic_end] if c.kind not in ("Accordion", "Row")]
    names = [e[len("prompt_pinning_txt2img_"):] for e in basic if e.startswith("prompt_pinning_txt2img_")]
    assert names == ["intro", "targets", "target_preview", "unit_mode", "generations", "cost"]
    intro = next(c for c in gradio.created if c.kwargs.get("elem_id") == "prompt_pinning_txt2img_intro")
    assert intro.args[0].count(".") <= 2 and "How it works" in intro.args[0]
    fields = [c for c in gradio.created if c.kwargs.get("elem_id", "").startswith("prompt_pinning_txt2img_")
              and c.kind not in ("HTML", "Accordion", "Row", "Gallery", "File")]
    assert len(fields) == len(ARGUMENTS) - 2  # every option but the two uploads
    for c in fields:
        assert len(c.kwargs["info"]) <= 80, c.kwargs["info"]  # one short line; the rest is the tooltip
    labels = {c.kwargs["elem_id"]: c.label for c in fields}
    assert labels["prompt_pinning_txt2img_lambda_"] == "Candidates per generation (lambda_)"
    assert labels["prompt_pinning_txt2img_cs"] == "Step-size cumulation (cs)"


def test_the_cost_line_is_wired_once_to_the_prompt_and_the_fields_that_set_the_cost(script):
    boxes = {name: gradio.Textbox() for name in ("prompt", "neg_prompt", "batch_size", "steps", "width", "height")}
    for name, box in boxes.items():
        script.after_component(box, elem_id=f"txt2img_{name}")
    script.ui(False)
    script.ui(False)  # the API's second call adds no events
    wired = [c for c in gradio.created if any(e[3] and e[3][0].kwargs.get("elem_id", "").endswith("_cost")
                                              for e in c.events)]
    assert len(wired) == 10
    assert all(box in wired for box in boxes.values())
    _, fn, inputs, _ = boxes["prompt"].events[0]
    assert inputs[:2] == [boxes["prompt"], boxes["neg_prompt"]]
    assert inputs[-4:] == [boxes["batch_size"], boxes["steps"], boxes["width"], boxes["height"]]


@pytest.mark.parametrize("generations,lambda_", [("", ""), ("4", "6")])
def test_the_cost_line_follows_the_prompt_and_the_typed_values(script, engine_ready, generations, lambda_):
    from prompt_pinning_webui.cost import describe_cost, run_plan

    line = describe_cost("a red circle on a blue square", "green", "word", generations, lambda_, 1, 8, 20)
    n = int(re.search(r"<b>(\d+)</b> pinnable units", line).group(1))
    assert n == 8  # seven words and "green"
    plan = run_plan(n, generations, lambda_, 1)
    assert f"{plan['generations']} generations of {plan['lambda_']} candidates" in line
    assert f"about {plan['renders']:,} renders of batch 8" in line
    if generations:
        assert (plan["generations"], plan["lambda_"]) == (4, 6)
    else:
        assert (plan["generations"], plan["lambda_"]) == (32, 10)  # the formulas at N = 8
    assert "Type a prompt" in describe_cost("", "", "word")


def test_a_bad_typed_value_in_the_cost_line_names_the_fields_label(script, engine_ready):
    from prompt_pinning_webui.cost import describe_cost

    line = describe_cost("a red circle", "", "word", "", "1", 1, 2, 20)
    assert "Cannot count the cost yet: Candidates per generation (lambda_): must be &gt;= 2" in line
    assert "or empty for auto" in line and "or 0 for auto" not in line


def test_the_cost_line_gives_minutes_at_the_last_speed():
    from prompt_pinning_webui import cost

    cost._last_speed.clear()
    plan = {"generations": 2, "lambda_": 3, "renders": 100}
    assert "minutes" not in cost.cost_html(4, plan, 8, 20)
    assert "<b>1</b> pinnable unit &rarr; auto: 1 generation of 3" in cost.cost_html(1, dict(plan, generations=1), 8, 20)
    cost.record_speed(seconds=60.0, images=100, steps=20, size=(64, 64))  # 0.03 s per image-step
    assert "about 8 minutes at your last speed" in cost.cost_html(4, plan, 8, 20, (64, 64))  # 100 x 8 x 20 x 0.03 s
    # a speed measured at 64x64 gives no time for 512x512
    other = cost.cost_html(4, plan, 8, 20, (512, 512))
    assert "minutes" not in other and "no time yet at 512x512 (last run: 64x64)" in other
    line = cost.describe_cost("a red circle", "", "word", "2", "3", 1, 8, 20, 512, 768)
    assert "last run: 64x64" in line and "minutes" not in line
    cost._last_speed.clear()


def test_the_cost_lines_plan_follows_the_seed_formulas():
    d = run_plan(12)
    # one validation batch: baseline + 32 x 11 candidates, then 32 validation points + the centroid and
    # its validation, the result on the user's seeds, and the fade guard's reference on each generation's seeds
    assert (d["generations"], d["lambda_"], d["mu"]) == (32, 11, 5)
    assert d["renders"] == (1 + 32 * 11) + (1 + 32 + 2 + 1 + 32)
    tiny = run_plan(2)  # at least 16 generations; lambda_ 6 validates every 2nd
    assert (tiny["generations"], tiny["renders"]) == (16, (1 + 16 * 6) + (1 + 8 + 2 + 1 + 16))


def test_the_cost_line_keeps_to_the_option_limits_before_planning():
    import time

    from prompt_pinning.config import ConfigError

    started = time.perf_counter()
    for typed in ({"generations": "100000000"}, {"validation_batches": "100000000"}):
        with pytest.raises(ConfigError, match="generations|validation_batches"):
            run_plan(10, **typed)
    assert time.perf_counter() - started < 5  # refused, not planned (a plan of 10^8 took 36 s and 9 GB)


def test_bad_api_argument_is_an_http_error_naming_it(script, host):
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red circle", steps=2, width=16, height=16)
    p.is_api = True
    args = default_args()
    args[ARGUMENT_INDEX["initial_std"]] = -1
    with pytest.raises(Exception) as info:
        script.run(p, *args)
    assert "initial_std" in str(getattr(info.value, "detail", info.value))
    if type(info.value).__name__ == "HTTPException":
        assert info.value.status_code == 422


@pytest.fixture
def engine_ready():
    """The engine's run is importable; the host's model (a stand-in) does the tokenizing."""
    pytest.importorskip("prompt_pinning.score.loss")


@pytest.fixture(params=["a1111", "forge"])
def host(request, script):
    """The stand-in WebUI as A1111 (model loaded at start) or as Forge (loaded at the first generation)."""
    if request.param == "forge":
        forge_stand_in.install()
    yield request.param
    webui_stand_in.reset()  # later tests (in any order) start from A1111 again


def run_args(**changes):
    args = default_args()
    args[ARGUMENT_INDEX["generations"]] = 2
    args[ARGUMENT_INDEX["lambda_"]] = 3
    args[ARGUMENT_INDEX["cma_logging"]] = False
    for name, value in changes.items():
        args[ARGUMENT_INDEX[name]] = value
    return args


def txt2img_p(tmp_path, **changes):
    fields = dict(prompt="red circle, blue background", negative_prompt="green", seed=-1, subseed=-1,
                  batch_size=2, steps=3, width=16, height=16, sampler_name="DPM++ 2M",
                  outpath_samples=str(tmp_path / "txt2img-images"))
    fields.update(changes)
    return processing.StableDiffusionProcessingTxt2Img(**fields)


@pytest.mark.slow
def test_run_returns_the_best_images_with_pinning_infotext(script, host, engine_ready, tmp_path):
    p = txt2img_p(tmp_path)
    before = dict(vars(p))
    shared.state.begin()
    processed = script.run(p, *run_args())
    assert vars(p) == before  # the caller's p is untouched (its seed is still -1)
    assert len(processed.images) == 2
    seeds = {tuple(call["seeds"][:2]) for call in processing.calls}
    # fix_seed once: every call uses a block of seeds after the one fixed seed: with the default
    # rotating schedule blocks 0-2 train (baseline, 2 generations), block 3 validates
    first = min(seeds)[0]
    assert seeds == {(first + 2 * k, first + 2 * k + 1) for k in range(4)}
    report = re.search(r"Pinning report: (\S+index\.html)", processed.infotexts[0]).group(1)
    assert "txt2img-images/prompt_pins/" in report
    assert "Pinning loss: " in processed.info and "Prompt pinning report" in processed.comments
    assert "Pinning validation loss: " in processed.info  # validation is on by default
    info = processed.info
    assert re.search(r"Pinning loss seeds: validation seeds \(seeds \d+-\d+\)", info)
    user = re.search(r"Pinning your seeds: seeds (\d+)-(\d+)", info)
    assert user and [int(user.group(1)), int(user.group(2))] == processed.all_seeds[:1] + processed.all_seeds[-1:]
    assert re.search(r"Pinning your seeds improvement: [+-]\d+\.\d%", info)
    for key in ("N", "cma_seed", "lambda_", "mu"):  # resolved, so a random CMA seed can be recovered
        assert re.search(rf"Pinning {key}: \d+", info), key
    # each infotext describes its own image: the best prompt is also rendered on validation seeds
    assert [int(re.search(r"Seed: (\d+)", text).group(1)) for text in processed.infotexts] == processed.all_seeds
    assert shared.state.job_count >= 3
    assert all(call["batch_size"] <= 2 * 7 for call in processing.calls)
    if host == "forge":  # the Script loaded the checkpoint before its first render; process_images kept it
        from modules import sd_models

        assert sd_models.model_data.loads == 1


@pytest.mark.slow
def test_interrupt_returns_best_so_far_and_a_complete_report(script, host, engine_ready, tmp_path):
    def interrupt_on_third_call(p, n):
        if len(processing.calls) == 3:
            shared.state.interrupted = True

    processing.before_batch_hooks.append(interrupt_on_third_call)
    processed = script.run(txt2img_p(tmp_path), *run_args(max_images_per_call=2))
    assert len(processed.images) == 2
    assert "Pinning stop: interrupted" in processed.info
    assert "interrupted" in processed.comments
    # the images shown are compared only with the unmodified prompt on their own seeds
    shown = re.search(r"Pinning (?:shown seeds|your seeds): seeds (\d+)-(\d+)", processed.info)
    if shown:
        assert [int(shown.group(1)), int(shown.group(2))] == processed.all_seeds[:1] + processed.all_seeds[-1:]


@pytest.mark.slow
def test_process_images_error_ends_the_run_with_a_clear_message(script, engine_ready, tmp_path):
    def fail_on_second_call(p, n):
        if len(processing.calls) == 2:
            raise RuntimeError("CUDA out of memory (simulated)")

    processing.before_batch_hooks.append(fail_on_second_call)
    processed = script.run(txt2img_p(tmp_path), *run_args(max_images_per_call=2))
    assert "CUDA out of memory (simulated)" in processed.comments
    assert "error" in processed.info


def test_job_count_and_total_bar_are_set_before_the_first_render(script, engine_ready, tmp_path):
    at_first_call = []

    def record(p, n):
        if len(processing.calls) == 1:
            at_first_call.append((shared.state.job_count, shared.total_tqdm.total))

    processing.before_batch_hooks.append(record)
    shared.state.begin()
    script.run(txt2img_p(tmp_path), *run_args(generations=1, lambda_=2, max_images_per_call=2))
    calls = len(processing.calls)
    # baseline + its validation batch, the fade guard's reference on generation 1's seeds, one
    # generation of 2 + the validation of its best, the centroid + its validation, the result on
    # the user's seeds (none when it is the baseline): one individual per call
    assert calls in (1 + 1 + 1 + 2 + 1 + 1 + 1, 1 + 1 + 1 + 2 + 1 + 1 + 1 + 1)
    planned = 1 + 1 + 1 + 2 + 1 + 1 + 1 + 1
    assert at_first_call == [(planned, planned * 3)]  # 3 steps per call
    assert shared.state.job_count == calls  # at the end: the calls made


def test_the_job_count_and_bar_end_at_the_calls_made(script, engine_ready, tmp_path):
    at_first_call, texts = [], []

    def record(p, n):
        texts.append(shared.state.textinfo)
        if len(processing.calls) == 1:
            at_first_call.append(shared.state.job_count)

    processing.before_batch_hooks.append(record)
    shared.state.begin()
    # candidates far from the prompt: validation often keeps the unmodified prompt, whose batch is
    # then the result (its render, counted by the plan, is not made)
    script.run(txt2img_p(tmp_path, seed=3), *run_args(generations=1, lambda_=2, max_images_per_call=2,
                                                      validation_batches=1, fade_guard=0.0,
                                                      initial_std=3.0, initial_radius=3.0))
    calls = len(processing.calls)
    planned = at_first_call[0]
    assert planned in (calls, calls + 1)
    assert shared.state.job_count == shared.state.job_no == calls
    assert shared.total_tqdm.total == calls * 3  # 3 steps per call
    # the job text names the stage just finished, with the plan's count (the first render: the baseline)
    assert texts[1] == f"Prompt pinning: baseline done · 1 individual scored · 1/{planned} renders"


def test_a_result_that_is_the_baseline_ends_the_job_count_one_short_of_the_plan(script):
    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning_webui.webui_run import HostProgress

    class Renderer:
        def calls_needed(self, individuals, settings):
            return individuals

    progress = HostProgress(Renderer(), GenerationSettings(seed=1, batch_size=2), steps_per_call=3)
    shared.state.begin()
    progress.plan([(1, 8)])
    assert (shared.state.job_count, shared.total_tqdm.total) == (8, 24)
    for _ in range(7):  # the result is the baseline: its render is counted, not made
        shared.state.nextjob()
    progress("validation (final mean)", 7, 8)
    assert shared.state.job_count == 8  # not the end yet
    progress("result on your seeds", 8, 8)
    assert (shared.state.job_count, shared.total_tqdm.total) == (7, 21)
    shared.state.begin()  # a run that made every planned call: nothing changes
    progress.plan([(1, 8)])
    for _ in range(8):
        shared.state.nextjob()
    progress("result on your seeds", 8, 8)
    assert (shared.state.job_count, shared.total_tqdm.total) == (8, 24)


@pytest.mark.parametrize("fade_guard", [0.0, 0.5])
def test_job_count_matches_packed_render_calls(script, engine_ready, tmp_path, fade_guard):
    at_first_call = []

    def record(p, n):
        if len(processing.calls) == 1:
            at_first_call.append(shared.state.job_count)

    processing.before_batch_hooks.append(record)
    shared.state.begin()
    # batch 2, at most 8 images per call: 4 individuals per call, so 5 per generation take 2 calls
    script.run(txt2img_p(tmp_path), *run_args(generations=2, lambda_=5, max_images_per_call=8,
                                              validation_batches=0, fade_guard=fade_guard))
    calls = len(processing.calls)
    # baseline, two generations in two calls each (with the guard, each after the unmodified prompt
    # on its seeds), the search mean, the result (if not the baseline)
    per_generation = 2 + (1 if fade_guard else 0)
    assert calls in (1 + 2 * per_generation + 1, 1 + 2 * per_generation + 1 + 1)
    assert at_first_call == [1 + 2 * per_generation + 1 + 1]
    unmodified = [c["seeds"][0] for c in processing.calls if c["prompts"] == processing.calls[0]["prompts"]]
    # the baseline, then (guarded) once on each generation's block
    assert len(unmodified) == (3 if fade_guard else 1) == len(set(unmodified))


def test_a_resumed_run_plans_with_its_own_settings(script, engine_ready, tmp_path):
    import dataclasses
    from pathlib import Path

    from prompt_pinning_webui.renderer import A1111Renderer
    from prompt_pinning_webui.webui_run import run_settings

    processed = script.run(txt2img_p(tmp_path, steps=3), *run_args(generations=1, lambda_=2))
    run_dir = tmp_path / re.search(r"Pinning report: (\S+)index\.html", processed.infotexts[0]).group(1)
    ui_now = txt2img_p(tmp_path, steps=7, width=32, seed=5, subseed=5)
    renderer = A1111Renderer(ui_now, tokenizer=object())
    fresh = script_config(ui_now)
    assert run_settings(fresh).steps == 7
    settings = run_settings(dataclasses.replace(fresh, resume=run_dir))
    assert (settings.steps, settings.width) == (3, 16)


def script_config(p):
    from prompt_pinning_webui.args import parse_script_args
    from prompt_pinning_webui.webui_run import build_config

    return build_config(p, parse_script_args(run_args(generations=1, lambda_=2)), False)


def test_the_command_line_images_per_call_budget_is_bounded(monkeypatch):
    from prompt_pinning.config import ConfigError
    from prompt_pinning_webui.webui_run import command_line_budget

    monkeypatch.setattr(shared.cmd_opts, "prompt_pinning_max_images_per_call", 16)
    assert command_line_budget() == 16
    monkeypatch.setattr(shared.cmd_opts, "prompt_pinning_max_images_per_call", 10**6)
    with pytest.raises(ConfigError, match=r"--prompt-pinning-max-images-per-call: must be <= 1,024"):
        command_line_budget()


def test_the_progress_plan_of_a_very_long_run_is_counted_not_listed():
    from types import SimpleNamespace

    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning_webui.renderer import A1111Renderer
    from prompt_pinning_webui.webui_run import HostProgress

    webui_stand_in.reset()
    settings = GenerationSettings(seed=1, batch_size=2, steps=3, width=8, height=8)
    renderer = A1111Renderer(SimpleNamespace(init_images=None), max_images_per_call=8)  # 4 individuals a call
    HostProgress(renderer, settings, steps_per_call=3).plan([(1, 1), (5, 10**12)])
    assert shared.state.job_count == 1 + 2 * 10**12
    assert shared.total_tqdm.total == 3 * shared.state.job_count


def test_an_interrupt_before_the_first_image_returns_no_image_and_no_error(script, engine_ready, tmp_path):
    def interrupt_during_the_baseline(p, n):
        shared.state.interrupted = True

    processing.before_batch_hooks.append(interrupt_during_the_baseline)
    processed = script.run(txt2img_p(tmp_path), *run_args(generations=3))
    assert processed.images == []
    assert "Pinning stop: interrupted" in processed.infotexts[0] and "Pinning report: " in processed.info
    assert "interrupted before its first image" in processed.comments


@pytest.mark.parametrize("name,value,expected", [
    ("lambda_", 1, "Candidates per generation (lambda_): must be >= 2 (half of the candidates, rounded down, become "
                   "parents: 1 leaves none) or empty for auto, got 1. It takes a whole number from 2 to 1,000, or "
                   "empty for auto."),
    ("generations", 10**5, "Generations: must be <= 10,000 (each generation renders lambda_ batches; 10,000 is days "
                           "of rendering), got 100000. It takes a whole number from 1 to 10,000, or empty for auto."),
    ("cs", 2, "Step-size cumulation (cs): must be <= 1, got 2. It takes a number above 0, up to 1, or empty for auto."),
    ("initial_std", -1, "Initial step size (sigma): must be > 0, got -1. It takes a number > 0, <= 10."),
    ("seed_schedule", "daily", "Seed schedule: must be one of fixed, rotating; got 'daily'."),
])
def test_a_bad_value_in_the_panel_names_the_fields_label_and_what_it_takes(script, name, value, expected):
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red circle", steps=2, width=16, height=16)
    args = default_args()
    args[ARGUMENT_INDEX[name]] = value
    with pytest.raises(ValueError) as info:
        script.run(p, *args)
    assert type(info.value).__name__ == "InvalidSetting"
    assert str(info.value) == expected
    assert "script_args" not in str(info.value)


def test_a_limit_shared_with_other_settings_names_the_field_and_explains_itself(script):
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red circle", steps=2, width=16, height=16, batch_size=4)
    args = default_args()
    args[ARGUMENT_INDEX["lambda_"]] = 300
    with pytest.raises(ValueError) as info:
        script.run(p, *args)
    assert str(info.value).startswith("Candidates per generation (lambda_): batch size x lambda_ = 4 x 300")
    assert "It takes" not in str(info.value)


def test_a_bad_value_over_the_api_keeps_its_index(script):
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red circle", steps=2, width=16, height=16)
    p.is_api = True
    args = default_args()
    args[ARGUMENT_INDEX["lambda_"]] = 1
    with pytest.raises(Exception) as info:
        script.run(p, *args)
    assert f"script_args[{ARGUMENT_INDEX['lambda_']}]" in str(getattr(info.value, "detail", info.value))


def test_the_eta_after_each_render_is_the_time_per_call_still_to_come(monkeypatch):
    import time

    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning_webui.webui_run import HostProgress

    class Renderer:
        def calls_needed(self, individuals, settings):
            return individuals

    def host_eta():  # modules/progress.py: elapsed / share done - elapsed
        state = shared.state
        share = state.job_no / state.job_count + state.sampling_step / max(1, state.sampling_steps) / state.job_count
        elapsed = clock[0] - state.time_start
        return elapsed / share - elapsed

    clock = [1000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    progress = HostProgress(Renderer(), GenerationSettings(seed=1, batch_size=2), steps_per_call=2)
    shared.state.begin()
    progress.plan([(1, 10)])
    etas = []
    for done, seconds in enumerate([30, 10, 10, 12, 8], start=1):  # the first render carries a warm-up
        clock[0] += seconds
        shared.state.nextjob()
        progress("baseline" if done == 1 else "generation 1/9", done, 10)
        etas.append(round(host_eta(), 6))
    assert etas[0] == 30 * 9  # only the first render is known yet
    assert etas[1:] == [10 * 8, 10 * 7, 32 / 3 * 6, 10 * 5]  # the mean call since the first render
    shared.state.sampling_steps, shared.state.sampling_step = 2, 1  # half way into the next call, 5 s in
    clock[0] += 5
    assert host_eta() == pytest.approx(55 * 4.5 / 5.5, rel=1e-9)  # the host's own share: near 10 x 4.5


def test_progress_names_the_stage_from_the_first_second_and_counts_the_reports_individuals(script, engine_ready,
                                                                                           tmp_path):
    import time

    seen = []

    def watch(p, n):
        seen.append((shared.state.textinfo, shared.state.job_count, shared.state.time_start))

    processing.before_batch_hooks.append(watch)
    shared.state.time_start = 0.0  # as state.begin() set it before the checks
    started = time.time()
    processed = script.run(txt2img_p(tmp_path), *run_args(validation_batches=0))
    text, jobs, clock = seen[0]
    assert text.startswith("Prompt pinning: rendering your prompt (baseline)") and "renders" in text
    assert jobs > 0 and clock >= started  # the ETA's clock starts at the first render
    later = [t for t, _, _ in seen[1:]]
    assert any("generation 1/2 done" in t for t in later)
    # baseline + 2 generations of 3, as the report's table of individuals counts them
    run_dir = tmp_path / re.search(r"Pinning report: (\S+)index\.html", processed.infotexts[0]).group(1)
    from prompt_pinning.reports.writer import load_rows

    rows = len(load_rows(run_dir))
    counts = [int(re.search(r"(\d+) individuals? scored", t).group(1)) for t in later if "scored" in t]
    assert counts[-1] == rows  # seen before the result's render on your seeds, which scores no one


def test_the_job_text_is_set_before_the_arguments_are_checked(script):
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red circle", steps=2, width=16, height=16)
    args = default_args()
    args[ARGUMENT_INDEX["initial_std"]] = -1
    shared.state.textinfo = None
    with pytest.raises(ValueError):
        script.run(p, *args)
    assert shared.state.textinfo == "Prompt pinning: checking the prompt and the settings"
