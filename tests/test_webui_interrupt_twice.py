"""Interrupt, resume, Interrupt: the second stop still answers with the selected candidate's images."""
import json

import numpy as np
import pytest

import webui_stand_in

webui_stand_in.install()

from modules import processing, shared  # noqa: E402

from prompt_pinning.run import checkpoint as ckpt  # noqa: E402
from test_webui_resume import outputs, png_base64, run_dir_of  # noqa: E402,F401  (fixtures)
from test_webui_script import engine_ready, run_args, script, txt2img_p  # noqa: E402,F401  (fixtures)

# validated on a seed block of its own, with explicit targets, so a candidate can beat the baseline
ARGS = dict(generations=4, lambda_=4, max_images_per_call=2, validation_batches=1)


def interrupt_at(call):
    processing.calls.clear()
    processing.before_batch_hooks[:] = [
        lambda p, n: setattr(shared.state, "interrupted", len(processing.calls) >= call)]
    shared.state.begin()


@pytest.mark.slow
@pytest.mark.parametrize("first", range(13, 17))
def test_interrupt_resume_interrupt_answers_with_the_selected_images(script, engine_ready, outputs, first):
    target = [png_base64((200, 30, 30))]
    interrupt_at(first)
    cut = script.run(txt2img_p(outputs, seed=11, subseed=11), *run_args(targets=target, **ARGS))
    run_dir = run_dir_of(cut)
    for second in (2, 1):
        interrupt_at(second)
        p = txt2img_p(outputs, seed=11, subseed=11)
        p.is_api = True  # an error here would be an HTTP 500
        again = script.run(p, *run_args(resume=str(run_dir), targets=target, **ARGS))
        processing.before_batch_hooks.clear()
        assert "Pinning stop: interrupted" in again.info
        best_id = json.loads((run_dir / ckpt.STATE_FILE).read_text())["best_id"]
        (line,) = [e for e in ckpt.read_individuals(run_dir) if e["id"] == best_id][:1]
        assert again.prompt == line["positive"] and again.all_seeds == line["seeds"]
        assert len(again.images) == 2
        if line["generation"]:  # a candidate's images: the ones its run folder keeps for it
            kept, _ = ckpt.load_images(ckpt.kept_path(run_dir, best_id), type("S", (), {"height": 16, "width": 16}),
                                       with_id=True)
            shown = np.stack([np.asarray(image, dtype=np.float32) / 255 for image in again.images])
            assert np.abs(shown - kept.permute(0, 2, 3, 1).numpy()).max() <= 1 / 255 + 1e-6
