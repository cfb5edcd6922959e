"""The script API: PinningLoss.from_config and run_target score and pin as a run does."""
import hashlib

import numpy as np
import pytest
import torch

import prompt_pinning
from prompt_pinning import PinningLoss, run_target
from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings, RenderedBatch
from prompt_pinning.run import run_pinning
from prompt_pinning.run.evaluator import loss_device
from prompt_pinning.prompt.tokenizers import ClipBpeTokenizer

SETTINGS = GenerationSettings(seed=21, batch_size=2, steps=2, width=8, height=8)


class HashRenderer:
    """Images are a function of the prompt pair and the seed; counts its calls."""

    name = "hash"

    def __init__(self, device=None):
        self.tokenizer = ClipBpeTokenizer()
        self.prompts = []
        if device is not None:
            self.device = device

    def render(self, prompts, settings, progress=None):
        out = []
        for pair in prompts:
            self.prompts.append(tuple(pair))
            images = []
            for seed in settings.seeds():
                digest = hashlib.sha256(f"{pair}|{seed}".encode()).digest()
                generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
                images.append(torch.rand(3, settings.height, settings.width, generator=generator))
            out.append(RenderedBatch(images=torch.stack(images), seeds=settings.seeds()))
        return out


def config(tmp_path, **changes):
    return PinningConfig(positive="a red circle", negative="blurry", generation=SETTINGS, generations=1,
                         lambda_=3, cma_seed=4, outdir=tmp_path / "out", **changes)


def test_exported_from_the_package():
    assert set(prompt_pinning.__all__) >= {"MemoryStore", "PinningLoss", "run_target"}


def test_a_script_scores_every_individual_as_the_run_did(tmp_path):
    cfg = config(tmp_path)
    result = run_pinning(cfg, HashRenderer())
    renderer = HashRenderer()
    target = run_target(cfg, renderer)
    assert renderer.prompts == [("a red circle", "blurry")]  # the unmodified prompt, rendered once
    assert torch.equal(target, ckpt.load_images(result.run_dir / ckpt.BASELINE_FILE, SETTINGS)[0])
    # the target is the unmodified prompt's batch: same-seed pairs are left out, as in the run
    loss = PinningLoss.from_config(cfg, target, target_seeds=cfg.generation.seeds())
    records = [result.baseline, *result.hall_of_fame]
    assert len(records) > 2 and len({r.seeds[0] for r in records}) > 1  # rotating seeds
    for record in records:  # the run keeps only the best's images: render each again, on its seeds
        (batch,) = renderer.render([(record.positive, record.negative)], cfg.generation.with_(seed=record.seeds[0]))
        value = loss.evaluate(batch.images, batch.traces, seeds=list(batch.seeds)).value
        assert value == pytest.approx(record.loss, rel=1e-9)


def test_target_images_from_the_config_are_the_target(tmp_path):
    images = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "target.png"
    from PIL import Image

    Image.fromarray((images[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(path)
    cfg = config(tmp_path, targets=[str(path)])
    renderer = HashRenderer()
    target = run_target(cfg, renderer)
    assert renderer.prompts == [] and target.shape == (1, 3, 8, 8)
    batch = renderer.render([("a red circle", "blurry")], SETTINGS)[0].images
    from_config = PinningLoss.from_config(cfg).evaluate(batch).value
    assert from_config == PinningLoss.from_config(cfg, target).evaluate(batch).value
    assert from_config != PinningLoss.from_config(cfg, batch).evaluate(batch).value


def test_loss_options_come_from_the_config(tmp_path):
    loss = PinningLoss.from_config(config(tmp_path, hyperbatch_weight_type="Polynomial", hyperbatch_weight_scale=2.0,
                                          hyperbatch_weights_enabled=False))
    assert (loss.weight_type, loss.weight_scale, loss.hyperbatch_weights, loss.n_targets) == ("Polynomial", 2.0,
                                                                                              False, 0)


def test_the_loss_runs_on_the_renderers_device():
    assert loss_device(HashRenderer()) is None  # no device: score where the images are
    assert loss_device(HashRenderer(device="cpu")) == torch.device("cpu")
