"""The doubling schedule and its traces, checked against what the samplers do."""
import logging

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hyperbatch as hb
from hyperbatch.growth import GrowthOptions, grow
from hyperbatch.schedule import batch_schedule, level_sizes, splits, step_levels, traces


def test_batch_of_8_in_20_steps_runs_1_2_4_8_for_5_steps_each():
    assert batch_schedule(8, 20) == [1] * 5 + [2] * 5 + [4] * 5 + [8] * 5
    assert hb.image_steps(8, 20) == 75
    assert hb.image_step_ratio(8, 20) == pytest.approx(160 / 75)


def test_leftover_steps_run_at_full_size_and_leftover_rows_join_the_last_split():
    # 5 = 4 + 1: levels 1, 2, 5; 11 steps = 3 segments of 3 and 2 extra steps.
    assert batch_schedule(5, 11) == [1, 1, 1, 2, 2, 2, 5, 5, 5, 5, 5]
    assert traces(5, 11).tolist() == [[0, 0, 0], [0, 0, 1], [0, 2, 2], [0, 2, 3], [0, 2, 4]]


def test_levels_name_ancestors_by_final_image_index():
    t = traces(8, 20)
    assert t[:, 0].tolist() == [0] * 8
    assert t[:, 1].tolist() == [0, 0, 0, 0, 4, 4, 4, 4]
    assert t[:, 2].tolist() == [0, 0, 2, 2, 4, 4, 6, 6]
    assert t[:, 3].tolist() == list(range(8))
    assert [s.new for s in splits(8, 20)] == [(4,), (2, 6), (1, 3, 5, 7)]


@pytest.mark.parametrize("batch_size, steps", [(8, 3), (2, 1), (64, 6), (3, 1)])
def test_doubling_disabled_when_steps_at_most_log2_batch(batch_size, steps, caplog):
    step_levels.cache_clear()
    with caplog.at_level(logging.INFO, logger="hyperbatch.schedule"):
        assert batch_schedule(batch_size, steps) == [batch_size] * steps
    assert "disabled" in caplog.text
    assert traces(batch_size, steps).tolist() == [[j] for j in range(batch_size)]


def test_doubling_enabled_just_above_the_limit():
    assert batch_schedule(8, 4) == [1, 2, 4, 8]
    assert batch_schedule(1, 1) == [1]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, None])
def test_bad_sizes_are_rejected_by_name(bad):
    with pytest.raises(ValueError, match="batch_size"):
        batch_schedule(bad, 10)
    with pytest.raises(ValueError, match="steps"):
        batch_schedule(4, bad)


def test_schedule_shape_for_many_sizes():
    for b in range(1, 65):
        for s in range(1, 41):
            sizes = batch_schedule(b, s)
            assert len(sizes) == s and sizes[-1] == b
            assert all(x <= y for x, y in zip(sizes, sizes[1:]))
            assert len(set(sizes)) == len(level_sizes(b, s))


def _lineage_run(batch_size, steps):
    """Run the real growth driver with a model that stamps each row's image id
    into the column of the current level; copies carry the stamps down."""
    width = len(level_sizes(batch_size, steps))
    seen = {"level": -1, "rows": None}

    def model(x_rows, sigma, ids):
        if len(ids) != seen["rows"]:
            seen["level"] += 1
            seen["rows"] = len(ids)
        out = x_rows.clone()
        out[:, seen["level"]] = ids.to(out.dtype)
        return out

    def identity_step(row_model, x, sigmas, i, denoised, history, noise):
        return denoised, denoised, None

    x = -torch.ones(batch_size, width)
    sigmas = torch.linspace(10, 0, steps + 1)
    options = GrowthOptions(branch_noise=torch.zeros_like(x), trace_out=[])
    out = grow(identity_step, model, x, sigmas, {"ids": torch.arange(batch_size)}, disable=True,
               options=options)
    return out.to(torch.int64).numpy(), options.trace_out[0]


def test_traces_describe_what_the_sampler_did_for_all_small_sizes():
    for b in range(1, 65):
        for s in range(1, 41):
            did, reported = _lineage_run(b, s)
            assert np.array_equal(did, traces(b, s)), (b, s)
            assert np.array_equal(reported, traces(b, s)), (b, s)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 64), st.integers(1, 40), st.sampled_from(["2m", "sde"]))
def test_real_samplers_run_the_scheduled_rows_with_their_conditioning(batch_size, steps, kind):
    ids = torch.arange(batch_size, dtype=torch.float32)
    calls = []

    def model(x, sigma, cond):
        calls.append(cond.tolist())
        return torch.zeros_like(x)

    seen = []
    x = torch.randn(batch_size, 1)
    sigmas = hb.karras_sigmas(steps, 0.1, 10.0)
    callback = lambda d: seen.append((d["rows"], d["image_steps_done"], d["image_steps_total"]))
    if kind == "2m":
        hb.sample_dpmpp_2m_hyperbatch(model, x, sigmas, {"cond": ids}, callback, disable=True)
        evaluated = calls
    else:
        noise = lambda a, b: torch.zeros(batch_size, 1)
        hb.sample_dpmpp_sde_hyperbatch(model, x, sigmas, {"cond": ids}, callback, disable=True,
                                       noise_sampler=noise)
        evaluated = calls[::2][: steps - 1] + calls[-1:]  # first call of each step
    expected = hb.active_rows(batch_size, steps)
    assert [rows for rows, _, _ in seen] == expected
    assert [[int(v) for v in c] for c in evaluated] == expected
    total = sum(batch_schedule(batch_size, steps))
    assert [done for _, done, _ in seen] == list(np.cumsum([len(r) for r in expected]))
    assert {t for _, _, t in seen} == {total}
