"""API answers and infotexts name run folders relative to the outputs folder, and a host
failure is a clear error naming its cause, never a server path or an HTTP 500 traceback."""
from types import SimpleNamespace

import pytest
import torch

import webui_stand_in

webui_stand_in.install()

from modules import processing, shared  # noqa: E402

from prompt_pinning_webui.public import public_message  # noqa: E402
from prompt_pinning_webui.webui_run import report_path  # noqa: E402
from test_webui_resume import outputs  # noqa: E402,F401  (fixture)
from test_webui_script import engine_ready, run_args, script, txt2img_p  # noqa: E402,F401  (fixtures)


def api_failure(script, p, args):
    p.is_api = True
    with pytest.raises(Exception) as info:
        script.run(p, *args)
    error = info.value
    assert hasattr(error, "status_code"), f"{type(error).__name__}: {error} would be an HTTP 500 with a traceback"
    return error.status_code, error.detail


def test_a_refused_resume_names_folders_relative_to_the_outputs(script, outputs):
    foreign = outputs / "txt2img-images" / "prompt_pins" / "00000009"
    foreign.mkdir(parents=True)
    status, detail = api_failure(script, txt2img_p(outputs), run_args(resume=str(foreign)))
    assert status == 422
    assert "txt2img-images/prompt_pins/00000009/prompt_pinning_run.json: missing" in detail
    assert str(outputs) not in detail
    status, detail = api_failure(script, txt2img_p(outputs), run_args(resume="/etc"))
    assert status == 422 and "txt2img-images/prompt_pins/<run>" in detail and str(outputs) not in detail


def test_a_relative_name_from_an_infotext_is_read_against_the_outputs_folder(script, outputs):
    foreign = outputs / "txt2img-images" / "prompt_pins" / "00000009"
    foreign.mkdir(parents=True)
    status, detail = api_failure(script, txt2img_p(outputs), run_args(resume="txt2img-images/prompt_pins/00000009"))
    assert status == 422 and "prompt_pinning_run.json: missing" in detail  # found, then refused as foreign


def test_the_report_is_named_relative_to_the_outputs_folder(outputs):
    run_dir = outputs / "txt2img-images" / "prompt_pins" / "00000003"
    run_dir.mkdir(parents=True)
    assert str(report_path(SimpleNamespace(run_dir=run_dir))) == "txt2img-images/prompt_pins/00000003/index.html"


def test_other_absolute_paths_are_cut_to_their_name(outputs):
    text = f"cannot open /home/someone/models/secret.ckpt or {outputs}/img2img-images/x.png, 1/2 done"
    assert public_message(text) == "cannot open secret.ckpt or img2img-images/x.png, 1/2 done"


@pytest.mark.parametrize("text, public", [
    ("cannot open /home/John Doe/stable diffusion/models/secret.ckpt: denied", "cannot open secret.ckpt: denied"),
    (r"cannot open C:\Users\John Doe\sd webui\models\secret.ckpt, 1/2 done", "cannot open secret.ckpt, 1/2 done"),
    ("see C:/sd/models/secret.ckpt", "see secret.ckpt"),
    (r"share \\server\models\my runs\secret.ckpt is gone", "share secret.ckpt is gone"),
    ("ratio 1/2 and/or 3 steps", "ratio 1/2 and/or 3 steps"),
])
def test_windows_paths_and_paths_with_spaces_are_cut_to_their_name(outputs, text, public):
    scrubbed = public_message(text)
    assert scrubbed == public
    for private in ("John", "Doe", "Users", "stable", "webui", "server", "runs"):
        assert private not in scrubbed


@pytest.mark.parametrize("failure, status, cause", [
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB"), 422, "out of memory at 16x16"),
    (RuntimeError("model file /srv/webui/models/Stable-diffusion/x.safetensors is damaged"), 500,
     "RuntimeError: model file x.safetensors is damaged"),
])
def test_a_failed_baseline_render_is_a_clear_error(script, engine_ready, outputs, failure, status, cause):
    def fail(p, n):
        raise failure

    processing.before_batch_hooks.append(fail)
    try:
        got, detail = api_failure(script, txt2img_p(outputs), run_args())
    finally:
        processing.before_batch_hooks.clear()
    assert got == status
    assert cause in detail and "before the run had any image" in detail
    assert str(outputs) not in detail and "/srv/" not in detail and "Traceback" not in detail
