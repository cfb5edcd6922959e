"""Loss variants (union, target, consistency) and same-seed target/image pairs."""
import itertools

import numpy as np
import pytest
import torch

from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.score.levels import summary
from prompt_pinning.score.loss import PinningLoss


def test_target_variant_keeps_only_target_image_pairs(crops):
    targets, images = crops[:2], crops[2:5]
    union = PinningLoss(targets, hyperbatch_weights=False).evaluate(images)
    target = PinningLoss(targets, hyperbatch_weights=False, variant="target").evaluate(images)
    cross = [(i, j) for i, j in itertools.combinations(range(5), 2) if i < 2 <= j]
    assert [tuple(p) for p in target.pairs] == cross
    by_pair = dict(zip(map(tuple, union.pairs), union.pair_losses))
    np.testing.assert_allclose(target.pair_losses, [by_pair[p] for p in cross], rtol=1e-6)
    assert target.value == pytest.approx(summary(target.pair_losses))
    # each image's mean is over the two targets only
    np.testing.assert_allclose(target.image_losses, target.pair_losses.reshape(2, 3).mean(axis=0), rtol=1e-9)


def test_target_variant_without_targets_is_refused(crops):
    with pytest.raises(ValueError, match="'target' loss variant"):
        PinningLoss(variant="target").evaluate(crops[:3])


def test_consistency_variant_ignores_targets(crops):
    with_targets = PinningLoss(crops[:2], variant="consistency").evaluate(crops[2:6])
    alone = PinningLoss().evaluate(crops[2:6])
    assert with_targets.n_targets == 0 and with_targets.value == pytest.approx(alone.value, rel=1e-6)
    assert len(with_targets.pair_losses) == 6


@pytest.mark.parametrize("variant", ["union", "target"])
def test_an_image_is_never_compared_with_its_own_copy(crops, variant):
    batch, seeds = crops[:4], [10, 11, 12, 13]
    objective = PinningLoss(hyperbatch_weights=False, variant=variant)
    objective.set_targets(batch, seeds=seeds)
    kept = objective.evaluate(batch, seeds=seeds)
    assert np.all(kept.pair_losses > 0)  # no copy-against-itself zero
    copies = PinningLoss(batch, hyperbatch_weights=False, variant=variant).evaluate(batch)
    assert np.count_nonzero(copies.pair_losses == 0) == 4
    # Left out, the own batch scores what its distinct-seed pairs say, as a fresh batch would.
    expected = [v for (i, j), v in zip(copies.pairs, copies.pair_losses) if not (i < 4 <= j and j - 4 == i)]
    assert kept.value == pytest.approx(summary(expected))
    # a batch of other seeds loses no pair
    other = objective.evaluate(crops[4:8], seeds=[20, 21, 22, 23])
    assert other.value == pytest.approx(objective.evaluate(crops[4:8]).value)


def test_same_seed_pairs_are_kept_when_nothing_else_would_remain(crops):
    objective = PinningLoss(hyperbatch_weights=False, variant="target")
    objective.set_targets(crops[:1], seeds=[3])
    assert objective.evaluate(crops[1:2], seeds=[3]).pair_losses.size == 1


def test_hyperbatch_levels_skip_groups_without_pairs(crops):
    objective = PinningLoss(crops[:2], variant="consistency", force_allowed=True)
    result = objective.evaluate(crops[2:6])
    assert np.isfinite(result.value) and result.level_values.size == 1


@pytest.mark.parametrize("field, value, message", [
    ("validation_batches", 9, "must be <= 8"), ("validation_batches", -1, "must be >= 0"),
    ("validation_batches", 1.5, "whole number"), ("seed_schedule", "random", "fixed, rotating"),
    ("loss_variant", "pairs", "union, target, consistency")])
def test_bad_generalisation_options_name_what_is_accepted(field, value, message):
    with pytest.raises(ConfigError, match=message):
        PinningConfig("red circle", **{field: value}).validate()


def test_consistency_needs_two_images():
    from prompt_pinning.rendering import GenerationSettings

    with pytest.raises(ConfigError, match="batch_size >= 2"):
        PinningConfig("red", loss_variant="consistency", generation=GenerationSettings(seed=1, batch_size=1)).validate()
    assert PinningConfig("red", validation_batches=0).validate().validation_batches == 0
