"""The fade guard: image statistics, its penalty and its place in the loss."""
import json

import numpy as np
import pytest
import torch

from prompt_pinning.score import fade_guard
from prompt_pinning.run.checkpoint import config_from_dict
from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.score.loss import PinningLoss


def faded(images: torch.Tensor, keep: float) -> torch.Tensor:
    """Each image pulled towards its own mean colour: ``keep`` of its variation is left."""
    mean = images.mean(dim=(2, 3), keepdim=True)
    return mean + keep * (images - mean)


def test_contrast_and_colourfulness_of_known_images():
    half = torch.zeros(1, 3, 4, 4)
    half[..., :2] = 1.0  # half white, half black: luminance std 0.5
    red = torch.zeros(1, 3, 4, 4)
    red[:, 0] = 1.0
    grey = torch.full((1, 3, 4, 4), 0.4)
    assert fade_guard.contrast(half).item() == pytest.approx(0.5)
    assert fade_guard.contrast(grey).item() == pytest.approx(0, abs=1e-6)
    assert fade_guard.contrast(red).item() == pytest.approx(0, abs=1e-6)
    assert fade_guard.colourfulness(red).item() == pytest.approx(1.0)
    assert fade_guard.colourfulness(grey).item() == 0 and fade_guard.colourfulness(half).item() == 0
    np.testing.assert_allclose(fade_guard.batch_stats(torch.cat([half, red])), [0.25, 0.5])


def test_penalty_is_the_weighted_relative_shortfall_and_never_rewards_more():
    reference = np.array([0.2, 0.5])
    assert fade_guard.fade_penalty([0.1, 0.5], reference, 2.0) == pytest.approx(2.0 * 0.5)
    assert fade_guard.fade_penalty([0.15, 0.25], reference, 1.0) == pytest.approx(0.25 + 0.5)
    assert fade_guard.fade_penalty([0.4, 0.9], reference, 1.0) == 0.0  # more than the targets: free
    assert fade_guard.fade_penalty([0.0, 0.0], [0.0, 0.5], 1.0) == pytest.approx(1.0)  # flat targets: no term
    assert fade_guard.fade_penalty([0.0, 0.0], reference, 0.0) == 0.0


def test_the_tolerance_is_free_and_only_what_is_lost_beyond_it_pays():
    reference = np.array([0.2, 0.5])
    assert fade_guard.fade_penalty([0.191, 0.48], reference, 2.0, 0.05) == 0.0  # lost 4.5% and 4%: within it
    assert fade_guard.fade_penalty([0.1, 0.5], reference, 2.0, 0.05) == pytest.approx(2.0 * (0.5 - 0.05))
    assert fade_guard.fade_penalty([0.15, 0.25], reference, 1.0, 0.1) == pytest.approx(0.15 + 0.4)
    assert fade_guard.fade_penalty([0.1, 0.5], reference, 0.0, 0.05) == 0.0
    for bad in (-0.1, 1.0, float("nan"), True, "0.1"):
        with pytest.raises(ValueError, match="fade_tolerance: must be a number from 0"):
            PinningLoss(fade_guard=1.0, fade_tolerance=bad)


def test_a_faded_batch_pays_in_proportion_to_what_it_lost(crops):
    targets = crops[:4]
    images = torch.flip(targets, dims=[3])  # other pictures with the targets' statistics
    plain = PinningLoss(targets)
    guarded = PinningLoss(targets, fade_guard=0.5, fade_guard_form="batch")
    reference = fade_guard.batch_stats(targets)
    assert guarded.evaluate(images).fade_penalty == pytest.approx(0, abs=1e-6)
    for keep in (1.0, 0.6, 0.2):
        batch = faded(images, keep)
        expected = fade_guard.fade_penalty(fade_guard.batch_stats(batch), reference, 0.5)
        result = guarded.evaluate(batch)
        assert result.fade_penalty == pytest.approx(expected)
        assert result.value == pytest.approx(plain.evaluate(batch).value + expected, rel=1e-12)
    # fading costs more the further it goes
    penalties = [guarded.evaluate(faded(images, k)).fade_penalty for k in (0.8, 0.5, 0.2)]
    assert 0 < penalties[0] < penalties[1] < penalties[2]
    # the same in a whole generation at once
    many = guarded.evaluate_many([faded(images, 0.5), images])
    assert [r.fade_penalty for r in many] == pytest.approx([guarded.evaluate(faded(images, k)).fade_penalty
                                                            for k in (0.5, 1.0)])


def test_off_changes_nothing(crops):
    targets, images = crops[:3], crops[3:7]
    before = PinningLoss(targets).evaluate(faded(images, 0.3))
    off = PinningLoss(targets, fade_guard=0.0).evaluate(faded(images, 0.3))
    assert off.value == before.value and off.fade_penalty == 0.0
    np.testing.assert_array_equal(off.pair_losses, before.pair_losses)


def test_the_guard_measures_against_the_targets_under_every_variant(crops):
    guarded = PinningLoss(fade_guard=1.0, variant="consistency", fade_guard_form="batch")
    guarded.set_targets(crops[:4])
    assert guarded.n_targets == 0  # consistency ignores the targets' pairs, not their statistics
    assert guarded.evaluate(faded(crops[4:8], 0.2)).fade_penalty > 0
    assert PinningLoss(fade_guard=1.0).evaluate(faded(crops[4:8], 0.2)).fade_penalty == 0  # no targets: no term


@pytest.mark.parametrize("weight", [-1.0, float("nan"), True, "1"])
def test_bad_weights_are_refused_by_name(weight):
    with pytest.raises(ValueError, match="fade_guard: must be a finite number >= 0"):
        PinningLoss(fade_guard=weight)


def test_config_limits_and_loss_from_config(crops):
    with pytest.raises(ConfigError, match="fade_guard: must be >= 0"):
        PinningConfig(positive="x", fade_guard=-0.5).validate()
    with pytest.raises(ConfigError, match="fade_guard: must be <= 100"):
        PinningConfig(positive="x", fade_guard=1e9).validate()
    with pytest.raises(ConfigError, match="fade_tolerance: must be <= 0.99"):
        PinningConfig(positive="x", fade_tolerance=1.0).validate()
    config = PinningConfig(positive="x", fade_guard=0.25, fade_tolerance=0.1).validate()
    loss = PinningLoss.from_config(config, None)
    assert loss.fade_guard == 0.25 and loss.fade_tolerance == 0.1
    # images of the script's own: they say what the images should look like, so no guard, as in a run
    assert PinningLoss.from_config(config, crops[:2]).fade_guard == 0.0
    # the unmodified prompt's batch (its seeds given): the guard the config asks for
    assert PinningLoss.from_config(config, crops[:2], target_seeds=[1, 2]).fade_guard == 0.25
    # a config with target images: the run's loss, from_config's and the builder's, has no guard
    from prompt_pinning.run.builders import build_loss
    with_targets = PinningConfig(positive="x", fade_guard=0.25, targets=["a.png"])
    assert PinningLoss.from_config(with_targets, crops[:2], mask=None).fade_guard == 0.0
    assert build_loss(with_targets, crops[:2]).fade_guard == 0.0 and build_loss(config, None).fade_guard == 0.25


def test_a_run_saved_before_the_guard_resumes_without_it():
    saved = json.loads(json.dumps(PinningConfig(positive="x", fade_guard=0.7).validate().to_dict()))
    assert config_from_dict(saved).fade_guard == 0.7
    del saved["fade_guard_form"]
    assert config_from_dict(saved).fade_guard_form == "batch"  # saved before the subject forms
    del saved["fade_guard"], saved["fade_tolerance"]
    assert config_from_dict(saved).fade_guard == 0.0 and config_from_dict(saved).fade_tolerance == 0.0


def test_a_seed_reference_renders_each_block_once_and_the_loss_compares_on_the_same_seeds(crops):
    rendered = []

    def render(seeds):
        rendered.append(seeds)
        return crops[:4] if seeds[0] == 0 else faded(crops[:4], 0.5)  # block 0 is twice as contrasted

    reference = fade_guard.SeedReference(render, form="batch")
    guarded = PinningLoss(crops[:4], fade_guard=1.0, fade_guard_form="batch")
    guarded.seed_reference = reference
    batch = faded(crops[:4], 0.5)
    on_block_1 = guarded.evaluate(batch, seeds=[4, 5, 6, 7])
    assert on_block_1.fade_penalty == pytest.approx(0, abs=1e-6)  # as contrasted as the reference there
    on_block_0 = guarded.evaluate(batch, seeds=[0, 1, 2, 3])
    assert on_block_0.fade_penalty > 0.5  # half the contrast and colour of block 0's reference
    guarded.evaluate(batch, seeds=[4, 5, 6, 7])
    assert rendered == [[4, 5, 6, 7], [0, 1, 2, 3]] and reference.renders == 2
    # without seeds, the targets' statistics are the reference
    assert guarded.evaluate(batch).fade_penalty == pytest.approx(on_block_0.fade_penalty)


def test_runs_with_the_guard_compare_with_the_unmodified_prompt_on_the_same_seeds():
    from prompt_pinning import MemoryStore
    from prompt_pinning.builtin import BuiltinRenderer
    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning.run import run_pinning

    settings = GenerationSettings(seed=3, batch_size=2, steps=3, width=16, height=16)
    results = {}
    for weight in (0.0, 1.0):
        renderer = BuiltinRenderer()
        config = PinningConfig(positive="a purple ring on a white background", generation=settings, cma_seed=1,
                               generations=2, lambda_=3, cma_logging=False, fade_guard=weight,
                               fade_tolerance=0.0)
        results[weight] = run_pinning(config, renderer, store=MemoryStore())
    off, on = results[0.0], results[1.0]
    # the unmodified prompt is its own reference on every block of seeds: it pays nothing,
    # on its training seeds and on the validation seeds alike
    assert off.baseline.loss == on.baseline.loss
    assert off.baseline.validation_loss == on.baseline.validation_loss
    assert off.centroid.validation_loss != on.centroid.validation_loss  # the search itself is guarded


def test_the_same_seed_reference_is_used_only_when_the_unmodified_prompt_is_the_target(crops):
    from prompt_pinning.builtin import BuiltinRenderer
    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning.run.builders import build_vector
    from prompt_pinning.score.fade_guard import attach_fade_reference

    settings = GenerationSettings(seed=5, batch_size=2, steps=3, width=16, height=16)
    renderer = BuiltinRenderer()
    for weight, targets, attached in ((1.0, None, True), (1.0, crops[:2, :, :16, :16], False), (0.0, None, False)):
        config = PinningConfig(positive="a red circle", generation=settings, fade_guard=weight).validate()
        loss = PinningLoss.from_config(config, targets)
        attach_fade_reference(loss, config, renderer, build_vector(config, renderer), settings, targets)
        assert (loss.seed_reference is not None) == attached
    # the reference is the unmodified prompt's render on those seeds
    (batch,) = renderer.render([("a red circle", "")], settings.with_(seed=9))
    np.testing.assert_allclose(loss_reference(renderer, settings)([9, 10]).stats, fade_guard.batch_stats(batch.images))
    assert loss_reference(renderer, settings)([9, 11]) is None  # not a block of the run's seeds


def loss_reference(renderer, settings):
    return fade_guard.baseline_reference(renderer, ("a red circle", ""), settings)


def test_a_renderer_backed_reference_leaves_variation_seed_blocks_to_the_targets(crops):
    from prompt_pinning.rendering import GenerationSettings

    calls = []

    class Renderer:
        def render(self, prompts, settings, progress=None):
            calls.append(settings.seed)
            return [type("Batch", (), {"images": crops[:2]})()]

    reference = fade_guard.baseline_reference(Renderer(), ("a red circle", ""), GenerationSettings(seed=4, batch_size=2))
    assert reference([(4, 9, 0.3), (4, 10, 0.3)]) is None and calls == []  # noise keys: no render, no error
    np.testing.assert_allclose(reference([4, 5]).stats, fade_guard.batch_stats(crops[:2]))
    assert calls == [4] and reference.renders == 1
