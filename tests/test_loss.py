"""The pinning objective: pairs of targets + images, hyperbatch weights, non-finite values."""
import itertools
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from prompt_pinning.score import flip, loss as loss_module
from prompt_pinning.score.levels import WORST_SUMMARY, combine_levels, level_values, summary
from prompt_pinning.score.loss import PinningLoss

SIZE = 24  # side of the crops fixture (conftest)


def one_by_one(union):
    """FLIP of every pair, each computed on its own."""
    return np.array([flip.flip_error_map(union[i:i + 1], union[j:j + 1])[0].double().mean().item()
                     for i, j in itertools.combinations(range(len(union)), 2)])


def test_plain_summary_over_all_pairs_of_targets_and_images(crops):
    targets, images = crops[:2], crops[2:5]
    result = PinningLoss(targets, hyperbatch_weights=False).evaluate(images)
    expected = one_by_one(torch.cat([targets, images]))
    np.testing.assert_allclose(result.pair_losses, expected, rtol=1e-6)
    assert [tuple(p) for p in result.pairs] == list(itertools.combinations(range(5), 2))
    assert result.value == pytest.approx(expected.mean() + expected.std())
    assert result.level_values.size == 0 and result.n_targets == 2 and not result.replaced
    assert result.seconds > 0
    # Each image against every other member of the union.
    full = np.zeros((5, 5))
    full[tuple(result.pairs.T)] = expected
    full += full.T
    np.testing.assert_allclose(result.image_losses, full[2:].sum(axis=1) / 4, rtol=1e-9)


def test_targets_are_preprocessed_and_paired_once(crops, monkeypatch):
    objective = PinningLoss(crops[:3], hyperbatch_weights=False)
    sizes, pair_counts = [], []
    real_preprocess, real_pair_means = flip.preprocess, flip.pair_means
    monkeypatch.setattr(flip, "preprocess", lambda images, *a, **k: sizes.append(len(images)) or real_preprocess(images, *a, **k))
    monkeypatch.setattr(flip, "pair_means", lambda a, b, ia, *r, **k: pair_counts.append(len(ia)) or real_pair_means(a, b, ia, *r, **k))
    first = objective.evaluate(crops[3:5])
    second = objective.evaluate(crops[3:5])
    assert sizes == [2, 2]  # only the individual's images
    assert pair_counts == [3 * 2, 1, 3 * 2, 1]  # target-image and image-image pairs only
    np.testing.assert_array_equal(first.pair_losses, second.pair_losses)
    assert first.pair_losses.size == 10  # the cached target-target pairs are still part of it


def test_no_targets_compares_the_images_with_each_other(crops):
    result = PinningLoss(None, hyperbatch_weights=False).evaluate(crops[:4])
    np.testing.assert_allclose(result.pair_losses, one_by_one(crops[:4]), rtol=1e-6)
    with pytest.raises(ValueError, match="at least two"):
        PinningLoss(None).evaluate(crops[:1])


def test_identical_images_score_zero(crops):
    target = crops[:1]
    result = PinningLoss(target, hyperbatch_weights=False).evaluate(target.repeat(3, 1, 1, 1))
    assert result.value == 0.0
    assert result.value < PinningLoss(target, hyperbatch_weights=False).evaluate(crops[1:4]).value


def test_hyperbatch_groups_by_ancestor_per_level():
    # Members a, b, c (no targets); level 1: one root; level 2: a apart, b and c share an ancestor.
    pairs = np.array(list(itertools.combinations(range(3), 2)))  # ab, ac, bc
    values = np.array([0.1, 0.2, 0.4])
    ancestors = loss_module.union_ancestors(0, np.array([[0, 0], [0, 5], [0, 5]]))
    x = level_values(values, pairs, ancestors)
    group_a, group_bc = [0.1, 0.2], [0.1, 0.2, 0.4]  # bc counted once although both are in the group
    assert x[0] == pytest.approx(summary(values))
    assert x[1] == pytest.approx((summary(group_a) + summary(group_bc)) / 2)
    scale = 1.5
    assert combine_levels(x, "Geometric", scale) == pytest.approx(x[0] ** scale + x[1] ** (scale / 2))
    assert combine_levels(x, "Exponential", scale) == pytest.approx(x[0] * 2.0 + x[1] * 4.0)
    assert combine_levels(x, "Polynomial", scale) == pytest.approx((1 + x[0]) ** 1.5 + (1 + x[1]) ** 3.0)


def test_targets_are_groups_of_their_own():
    # One target t and images a, b from one root: groups {t} and {a, b}.
    ancestors = loss_module.union_ancestors(1, np.array([[7], [7]]))
    pairs = np.array([[0, 1], [0, 2], [1, 2]])  # ta, tb, ab
    values = np.array([0.3, 0.5, 0.2])
    x = level_values(values, pairs, ancestors)
    assert x[0] == pytest.approx((summary([0.3, 0.5]) + summary(values)) / 2)


def test_evaluate_uses_traces_and_plain_samplers_get_one_level(crops):
    targets, images = crops[:1], crops[1:5]
    objective = PinningLoss(targets, weight_type="Geometric", weight_scale=2.0)
    traced = objective.evaluate(images, np.array([[0, 0], [0, 0], [0, 1], [0, 1]]))
    pairs, values = traced.pairs, traced.pair_losses
    ancestors = np.array([[-1, -1], [0, 0], [0, 0], [0, 1], [0, 1]])
    assert traced.level_values == pytest.approx(level_values(values, pairs, ancestors))
    assert traced.value == pytest.approx(traced.level_values[0] ** 2.0 + traced.level_values[1] ** 1.0)

    plain = objective.evaluate(images)  # every image its own root: one level
    per_member = [summary(values[(pairs[:, 0] == m) | (pairs[:, 1] == m)]) for m in range(5)]
    assert plain.level_values == pytest.approx([np.mean(per_member)])
    assert plain.value == pytest.approx(np.mean(per_member) ** 2.0)
    with pytest.raises(ValueError, match="force allowed"):
        PinningLoss(targets, force_allowed=False).evaluate(images)
    assert PinningLoss(targets, hyperbatch_weights=False, force_allowed=False).evaluate(images).value > 0


def test_non_finite_loss_becomes_the_worst_value_with_a_warning(crops, caplog):
    broken = crops[1:4].clone()
    broken[1, :, 3, 3] = float("nan")
    objective = PinningLoss(crops[:1], weight_type="Exponential", weight_scale=1.0)
    with caplog.at_level(logging.WARNING, logger="prompt_pinning.score.loss"):
        result = objective.evaluate(broken, np.array([[0, 0], [0, 1], [0, 1]]))
    assert result.replaced and np.isfinite(result.value)
    assert result.value == pytest.approx(combine_levels([WORST_SUMMARY] * 2, "Exponential", 1.0))
    assert "not finite" in caplog.text
    assert np.isnan(result.pair_losses).sum() == 3  # the broken image's pairs, kept for reports
    assert result.value > objective.evaluate(crops[1:4], np.array([[0, 0], [0, 1], [0, 1]])).value


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=40),
       scale=st.floats(0.05, 4.0), weight_type=st.sampled_from(["Geometric", "Exponential", "Polynomial"]),
       levels=st.integers(1, 4))
def test_worst_value_bounds_every_possible_value(values, scale, weight_type, levels):
    assert summary(values) <= WORST_SUMMARY + 1e-12
    x = np.full(levels, summary(values))
    worst = PinningLoss(None, weight_type=weight_type, weight_scale=scale).worst_value(levels)
    assert combine_levels(x, weight_type, scale) <= worst * (1 + 1e-12)


def test_worst_summary_is_reached():
    # Values at 0 and 1 with mean (2 + sqrt 2) / 4 reach the bound.
    n = 100000
    ones = round(n * (2 + np.sqrt(2)) / 4)
    assert summary(np.r_[np.ones(ones), np.zeros(n - ones)]) == pytest.approx(WORST_SUMMARY, abs=1e-6)


def test_bad_arguments_name_the_problem(crops):
    with pytest.raises(ValueError, match="weight_type"):
        PinningLoss(None, weight_type="Linear")
    with pytest.raises(ValueError, match="weight_scale"):
        PinningLoss(None, weight_scale=0.0)
    with pytest.raises(ValueError, match="max_pairs_per_chunk"):
        PinningLoss(None, max_pairs_per_chunk=0)
    objective = PinningLoss(crops[:2])
    with pytest.raises(ValueError, match="differs from the targets"):
        objective.evaluate(torch.zeros(2, 3, SIZE, SIZE + 1))
    with pytest.raises(ValueError, match="traces"):
        objective.evaluate(crops[2:4], np.zeros((3, 2), dtype=int))
    with pytest.raises(ValueError, match="uint8"):
        objective.evaluate((crops[2:4] * 255).to(torch.uint8))


def test_chunk_limit_does_not_change_the_result(crops):
    whole = PinningLoss(crops[:2], hyperbatch_weights=False).evaluate(crops[2:7])
    chunked = PinningLoss(crops[:2], hyperbatch_weights=False, max_pairs_per_chunk=1).evaluate(crops[2:7])
    np.testing.assert_allclose(chunked.pair_losses, whole.pair_losses, rtol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_images_use_cached_targets_on_the_gpu(crops):
    objective = PinningLoss(crops[:2])
    cpu = objective.evaluate(crops[2:6])
    gpu = objective.evaluate(crops[2:6].cuda())
    np.testing.assert_allclose(gpu.pair_losses, cpu.pair_losses, rtol=1e-5)
    assert gpu.value == pytest.approx(cpu.value, rel=1e-5)


def counting_preprocess(monkeypatch):
    """Record the number of images of every flip.preprocess call."""
    sizes, real = [], flip.preprocess
    monkeypatch.setattr(flip, "preprocess", lambda images, *a, **k: sizes.append(len(images)) or real(images, *a, **k))
    return sizes


TRACES = [np.array([[0, 0], [0, 0], [0, 1]]), np.array([[0, 0], [0, 1], [0, 1]]), np.array([[0, 0], [0, 1], [0, 2]])]


@pytest.mark.parametrize("n_targets", [0, 2])
@pytest.mark.parametrize("traced", [False, True])
def test_evaluate_many_equals_evaluate_one_by_one_with_one_preprocessing_call(crops, monkeypatch, n_targets, traced):
    objective = PinningLoss(crops[:n_targets] if n_targets else None, weight_type="Polynomial", weight_scale=1.5)
    individuals = [crops[2:5], crops[5:8], crops[7:10]]
    traces = TRACES if traced else None
    singles = [objective.evaluate(images, None if traces is None else traces[k]) for k, images in enumerate(individuals)]
    sizes = counting_preprocess(monkeypatch)
    batched = objective.evaluate_many(individuals, traces)
    assert sizes == [9]  # all images of the generation at once; the targets are cached
    assert len(batched) == 3
    for single, many in zip(singles, batched):
        assert many.value == pytest.approx(single.value, rel=1e-6)
        np.testing.assert_allclose(many.pair_losses, single.pair_losses, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(many.image_losses, single.image_losses, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(many.level_values, single.level_values, rtol=1e-6)
        np.testing.assert_array_equal(many.pairs, single.pairs)
        assert many.n_targets == n_targets and not many.replaced
    assert batched[0].value != batched[1].value  # different individuals, different values
    assert len(batched[0].level_values) == (2 if traced else 1)
    # Against FLIP computed pair by pair, not only against evaluate.
    union = torch.cat([crops[:n_targets], individuals[1]])
    np.testing.assert_allclose(batched[1].pair_losses, one_by_one(union), rtol=1e-6)


def test_evaluate_many_keeps_a_non_finite_value_to_its_own_individual(crops, caplog):
    objective = PinningLoss(crops[:1], weight_type="Exponential", weight_scale=1.0)
    broken = crops[4:7].clone()
    broken[0, 1, 5, 5] = float("nan")
    individuals = [crops[1:4], broken, crops[7:10]]
    with caplog.at_level(logging.WARNING, logger="prompt_pinning.score.loss"):
        results = objective.evaluate_many(individuals, TRACES)
    assert [r.replaced for r in results] == [False, True, False]
    assert len([r for r in caplog.records if "was not finite" in r.getMessage()]) == 1
    assert results[1].value == pytest.approx(combine_levels([WORST_SUMMARY] * 2, "Exponential", 1.0))
    assert np.isnan(results[1].pair_losses).sum() == 3  # the target and two sibling pairs of the broken image
    for k in (0, 2):
        assert np.isfinite(results[k].pair_losses).all()
        assert results[k].value == pytest.approx(objective.evaluate(individuals[k], TRACES[k]).value, rel=1e-6)


def test_evaluate_many_splits_preprocessing_at_individuals_within_the_limit(crops, monkeypatch):
    individuals = [crops[1:4], crops[4:6], crops[6:9], crops[9:10]]
    whole = PinningLoss(crops[:1], hyperbatch_weights=False).evaluate_many(individuals)
    sizes = counting_preprocess(monkeypatch)
    limited = PinningLoss(crops[:1], hyperbatch_weights=False, max_images_per_preprocess=5).evaluate_many(individuals)
    assert sizes == [1, 5, 4]  # the targets, then [3 + 2] and [3 + 1]: an individual is never split
    tiny = PinningLoss(crops[:1], hyperbatch_weights=False, max_images_per_preprocess=1).evaluate_many(individuals)
    assert sizes[3:] == [1, 3, 2, 3, 1]  # an individual larger than the limit still goes whole
    for a, b, c in zip(whole, limited, tiny):
        np.testing.assert_allclose(b.pair_losses, a.pair_losses, rtol=1e-6)
        np.testing.assert_allclose(c.pair_losses, a.pair_losses, rtol=1e-6)


def test_evaluate_many_splits_its_time_evenly(crops):
    results = PinningLoss(crops[:1]).evaluate_many([crops[1:3], crops[3:5], crops[5:7]])
    assert results[0].seconds > 0 and len({r.seconds for r in results}) == 1


def test_evaluate_many_bad_arguments_name_the_individual(crops):
    objective = PinningLoss(None)
    assert objective.evaluate_many([]) == []
    with pytest.raises(ValueError, match="traces_list: expected one entry"):
        objective.evaluate_many([crops[:2], crops[2:4]], [None])
    with pytest.raises(ValueError, match=r"images_list\[1\]: size \(24, 25\)"):
        objective.evaluate_many([crops[:2], torch.zeros(2, 3, SIZE, SIZE + 1)])
    with pytest.raises(ValueError, match=r"traces_list\[1\]"):
        objective.evaluate_many([crops[:2], crops[2:4]], [None, np.zeros((3, 1), dtype=int)])
    with pytest.raises(ValueError, match=r"images_list\[0\]: need at least two"):
        objective.evaluate_many([crops[:1], crops[2:4]])
    with pytest.raises(ValueError, match="max_images_per_preprocess"):
        PinningLoss(None, max_images_per_preprocess=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_evaluate_many_equals_evaluate_on_the_cpu(crops):
    objective = PinningLoss(crops[:1], weight_type="Geometric", weight_scale=1.5)
    individuals = [crops[1:4], crops[4:7], crops[7:10]]
    gpu = objective.evaluate_many([x.cuda() for x in individuals], TRACES)
    for k, images in enumerate(individuals):
        cpu = objective.evaluate(images, TRACES[k])
        np.testing.assert_allclose(gpu[k].pair_losses, cpu.pair_losses, rtol=1e-5)
        assert gpu[k].value == pytest.approx(cpu.value, rel=1e-5)
