"""Resume through the Script: a real continuation under the host's checked torch.load, confined
to the WebUI's outputs, and bad folders answered as HTTP 422 naming the file."""
import base64
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import webui_stand_in

webui_stand_in.install()

from modules import processing, safe, shared  # noqa: E402

from prompt_pinning.run import checkpoint as ckpt  # noqa: E402
from test_webui_script import engine_ready, run_args, script, txt2img_p  # noqa: E402,F401  (fixtures)


def png_base64(color):
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pinning_value(processed, name):
    return re.search(rf"{name}: ([^,\n]+)", processed.info).group(1)


def run_dir_of(processed):
    """The run folder the infotext names, relative to the outputs folder (the fixture's)."""
    named = Path(re.search(r"Pinning report: (\S+)index\.html", processed.infotexts[0]).group(1))
    assert not named.is_absolute()
    return Path(shared.opts.outdir_txt2img_samples).parent / named


@pytest.fixture
def outputs(tmp_path):
    """The WebUI's outputs folder, as its options name it."""
    shared.opts.outdir_txt2img_samples = str(tmp_path / "txt2img-images")
    shared.opts.outdir_img2img_samples = str(tmp_path / "img2img-images")
    return tmp_path


def api_error(script, p, args):
    p.is_api = True
    with pytest.raises(Exception) as info:
        script.run(p, *args)
    error = info.value
    if type(error).__name__ == "HTTPException":  # with fastapi installed, as in the WebUI
        assert error.status_code == 422
        return error.detail
    assert isinstance(error, ValueError), f"{type(error).__name__} would be an HTTP 500"
    return str(error)


def test_the_fake_host_loads_plain_tensors_and_refuses_other_globals(tmp_path):
    torch.save({"images": torch.ones(2)}, tmp_path / "plain.pt")
    torch.save({"settings": Path("x")}, tmp_path / "object.pt")
    with safe.active():
        assert torch.equal(torch.load(tmp_path / "plain.pt")["images"], torch.ones(2))
        assert torch.load(tmp_path / "object.pt") is None  # reported and None, as in the WebUI
    assert torch.load is safe.unsafe_torch_load
    assert any("object.pt" in name for name, _ in safe.rejected)


GENERATIONS, LAMBDA = 2, 3
TOTAL = 1 + GENERATIONS * LAMBDA + 1 + 1  # + the search mean and the result on the user's seeds


def pinned_args(**changes):
    # validation off: the count of renders below is the plain run's (validated resumes: test_run.py)
    return run_args(generations=GENERATIONS, lambda_=LAMBDA, max_images_per_call=2, validation_batches=0, **changes)


@pytest.mark.slow
def test_resume_through_the_script_continues_with_its_explicit_target(script, engine_ready, outputs):
    target = [png_base64((200, 30, 30))]
    p = dict(seed=7, subseed=7)
    full = script.run(txt2img_p(outputs, **p), *pinned_args(targets=target))

    def interrupt_on_fourth_call(p, n):
        if len(processing.calls) == 4:
            shared.state.interrupted = True

    processing.calls.clear()
    processing.before_batch_hooks.append(interrupt_on_fourth_call)
    cut = script.run(txt2img_p(outputs, **p), *pinned_args(targets=target))
    assert "Pinning stop: interrupted" in cut.info
    run_dir = run_dir_of(cut)
    done = len(ckpt.read_individuals(run_dir))
    assert 1 <= done < TOTAL

    processing.before_batch_hooks.clear()
    processing.calls.clear()
    shared.state.begin()
    # Resume from a form that shows other settings and no target: the run keeps its own.
    resumed = script.run(txt2img_p(outputs, prompt="something else", steps=5, seed=1, subseed=1),
                         *pinned_args(resume=str(run_dir)))
    assert torch.load is safe.load  # the host's checked loader was in place all along
    assert not [name for name in safe.loaded if str(run_dir) in name]  # run files need no unpickling
    assert "Pinning stop: completed" in resumed.info
    assert run_dir_of(resumed) == run_dir
    assert pinning_value(resumed, "Pinning baseline loss") == pinning_value(full, "Pinning baseline loss")
    assert pinning_value(resumed, "Pinning loss") == pinning_value(full, "Pinning loss")
    # labelled with the run's own settings and seeds, not the resuming form's (steps 5, seed 1)
    steps = re.search(r"Steps: (\d+)", full.info).group(1)
    assert re.search(r"Steps: (\d+)", resumed.info).group(1) == steps != "5"
    assert resumed.all_seeds == full.all_seeds and resumed.seed == full.seed == 7
    (result_line,) = [e for e in ckpt.read_evaluations(run_dir) if e.get("final")]
    best_is_baseline = result_line["of"][0] == 0  # its batch is already on the user's seeds
    assert sum(len(c["prompts"]) for c in processing.calls) == 2 * (TOTAL - done - best_is_baseline)  # nothing redone
    entries = ckpt.read_individuals(run_dir)
    assert [e["offsets"] for e in entries] == [e["offsets"] for e in ckpt.read_individuals(run_dir_of(full))]


@pytest.fixture
def stopped_run(script, engine_ready, outputs):
    processing.before_batch_hooks.append(
        lambda p, n: setattr(shared.state, "interrupted", len(processing.calls) == 3))
    processed = script.run(txt2img_p(outputs, seed=3, subseed=3), *pinned_args())
    processing.before_batch_hooks.clear()
    shared.state.begin()
    return run_dir_of(processed)


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_resume_outside_the_outputs_is_refused_and_writes_nothing(script, stopped_run, outputs, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(stopped_run, elsewhere)
    before = snapshot(elsewhere)
    detail = api_error(script, txt2img_p(outputs), pinned_args(resume=str(elsewhere)))
    assert "outputs" in detail and "prompt_pins" in detail
    missing = api_error(script, txt2img_p(outputs), pinned_args(resume=str(elsewhere.parent / "missing")))
    assert missing.replace("missing", "copy") == detail  # the same answer whether a path exists or not
    dotted = stopped_run.parent / ".." / ".." / ".." / elsewhere.relative_to(elsewhere.parents[2])
    assert "outputs" in api_error(script, txt2img_p(outputs), pinned_args(resume=str(dotted)))
    link = stopped_run.parent / "00000099"
    link.symlink_to(elsewhere, target_is_directory=True)
    assert "outputs" in api_error(script, txt2img_p(outputs), pinned_args(resume=str(link)))
    assert snapshot(elsewhere) == before


def test_resume_of_a_foreign_folder_in_the_outputs_is_refused_and_its_files_are_kept(script, stopped_run, outputs):
    foreign = stopped_run.parent / "00000050"
    foreign.mkdir()
    shutil.copy(stopped_run / ckpt.CONFIG_FILE, foreign)
    (foreign / ckpt.EVALUATIONS_FILE).write_text("not ours\n")
    detail = api_error(script, txt2img_p(outputs), pinned_args(resume=str(foreign)))
    assert ckpt.MARKER_FILE in detail
    assert (foreign / ckpt.EVALUATIONS_FILE).read_text() == "not ours\n"
    assert "no such run folder" in api_error(script, txt2img_p(outputs),
                                             pinned_args(resume=str(stopped_run.parent / "00000051")))


@pytest.mark.parametrize("damage, named", [
    (lambda d: [p.write_bytes(p.read_bytes()[:100]) for p in d.glob("checkpoint-*.npz")], "checkpoint-0000"),
    (lambda d: (d / ckpt.CONFIG_FILE).write_text('{"config": {"positive": "red'), ckpt.CONFIG_FILE),
    (lambda d: (d / ckpt.CONFIG_FILE).write_text(json.dumps(_with_batch_size(d, 0))), ckpt.CONFIG_FILE),
    (lambda d: (d / ckpt.BASELINE_FILE).write_bytes((d / ckpt.BASELINE_FILE).read_bytes()[:100]), ckpt.BASELINE_FILE),
])
def test_a_damaged_run_folder_is_an_http_422_naming_the_file(script, stopped_run, outputs, damage, named):
    damage(stopped_run)
    before = snapshot(stopped_run)
    detail = api_error(script, txt2img_p(outputs), pinned_args(resume=str(stopped_run)))
    assert named in detail
    assert snapshot(stopped_run) == before  # refused before anything was written


def _with_batch_size(run_dir, value):
    data = json.loads((run_dir / ckpt.CONFIG_FILE).read_text())
    data["config"]["generation"]["batch_size"] = value
    return data
