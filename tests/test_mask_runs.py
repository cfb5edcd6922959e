"""A masked run on the built-in model: mask.npz is recorded, shown in the report and checked on resume."""
import json

import numpy as np
import pytest
import torch

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.builtin.renderer import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.run.files import npz_bytes
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.reports import ReportWriter
from prompt_pinning.run import resume_pinning, run_pinning
from prompt_pinning.run.mask import MASK_FILE

SETTINGS = GenerationSettings(seed=5, batch_size=3, steps=5, width=32, height=32, cfg_scale=3.0, sampler="Euler")


@pytest.fixture(scope="module")
def renderer():
    return BuiltinRenderer()


def left_half():
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, :16] = 255
    return mask


def config(outdir, **kw):
    return PinningConfig(positive="red circle, blue background", outdir=outdir, generation=SETTINGS,
                         cma_logging=False, generations=2, lambda_=3, **kw)


def test_a_masked_run_records_its_mask_and_scores_with_it(outdir, renderer):
    masked = run_pinning(config(outdir, target_mask=left_half()), renderer, sink=ReportWriter(worker="thread"))
    plain = run_pinning(config(outdir), renderer)
    saved = np.load(masked.run_dir / MASK_FILE)["mask"]
    assert saved.dtype == np.float32 and saved.shape == (32, 32)
    assert saved[:, :16].min() == 1.0 and saved[:, 16:].max() == 0.0
    resolved = json.loads((masked.run_dir / ckpt.CONFIG_FILE).read_text())["resolved"]
    assert resolved["mask"]["file"] == MASK_FILE and len(resolved["mask"]["sha256"]) == 64
    assert "mask" not in json.loads((plain.run_dir / ckpt.CONFIG_FILE).read_text())["resolved"]
    assert not (plain.run_dir / MASK_FILE).exists()
    assert masked.baseline.images.equal(plain.baseline.images)
    assert masked.hall_of_fame[0].loss != plain.hall_of_fame[0].loss  # same renders, masked pairs
    assert (masked.run_dir / "target_mask.png").is_file()
    assert "target_mask.png" in (masked.run_dir / "index.html").read_text()


def interrupted(outdir, renderer, **kw):
    done = []
    return run_pinning(config(outdir, **kw), renderer, should_stop=lambda: len(done) > 0 and done[-1] >= 4,
                       progress=lambda s, d, t: done.append(d))


def test_resume_continues_with_the_recorded_mask(outdir, renderer):
    whole = run_pinning(config(outdir, target_mask=left_half()), renderer)
    cut = interrupted(outdir, renderer, target_mask=left_half())
    assert cut.stop_reason == "interrupted"
    resumed = resume_pinning(cut.run_dir, renderer)
    assert resumed.stop_reason == "completed"
    assert resumed.best.individual_id == whole.best.individual_id and resumed.best.loss == whole.best.loss


def test_resume_refuses_a_changed_missing_or_extra_mask(outdir, renderer):
    cut = interrupted(outdir, renderer, target_mask=left_half())
    path = cut.run_dir / MASK_FILE
    original = path.read_bytes()
    changed = np.load(path)["mask"].copy()
    changed[0, 0] = 0.5
    path.write_bytes(npz_bytes({"mask": changed}))
    with pytest.raises(ckpt.ResumeError, match="not the mask the run started with"):
        resume_pinning(cut.run_dir, renderer)
    path.unlink()
    with pytest.raises(ckpt.ResumeError, match="missing"):
        resume_pinning(cut.run_dir, renderer)
    path.write_bytes(npz_bytes({"mask": np.ones((8, 8), dtype=np.float32)}))
    with pytest.raises(ckpt.ResumeError, match="unexpected shape"):
        resume_pinning(cut.run_dir, renderer)
    unmasked = interrupted(outdir, renderer)
    (unmasked.run_dir / MASK_FILE).write_bytes(original)
    with pytest.raises(ckpt.ResumeError, match="without a target mask"):
        resume_pinning(unmasked.run_dir, renderer)


def test_the_target_alpha_channel_masks_a_run_to_its_opaque_part(outdir, renderer):
    target = renderer.render([("red circle, blue background", "")], SETTINGS.with_(seed=40))[0].images[0]
    rgba = np.concatenate([target.permute(1, 2, 0).numpy(), left_half()[..., None] / 255.0], axis=-1)
    result = run_pinning(config(outdir, targets=[rgba.astype(np.float32)], target_mask_source="target alpha"),
                         renderer)
    assert result.stop_reason == "completed"
    assert torch.equal(torch.from_numpy(np.load(result.run_dir / MASK_FILE)["mask"]),
                       torch.from_numpy(left_half() / 255.0).float())
