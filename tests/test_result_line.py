"""The result line, ties keeping the user's prompt, and the pinned prompt's readable form."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import webui_stand_in

webui_stand_in.install()

from prompt_pinning.run.paired import seed_span  # noqa: E402
from prompt_pinning.run.records import IndividualRecord, PairedScore  # noqa: E402
from prompt_pinning.run.state import RunState  # noqa: E402
from prompt_pinning_webui.result_line import (NO_IMPROVEMENT, RESULT_LABEL, host_same_tokens,  # noqa: E402
                                              pinned_lines, readable_prompt, result_line)


def record(generation, ident, loss, positive="red circle", seeds=(1, 2)):
    return IndividualRecord(generation, 0, ident, np.zeros(2), positive, "", torch.zeros(0), list(seeds), loss,
                            np.zeros(0))


def validated_state(baseline_validation, candidate_validation, candidate_training=0.1):
    state = RunState(SimpleNamespace(validation_batches=1, training_block=lambda g: g), settings=None)
    base, other = record(0, "base", 0.9), record(3, "cand", candidate_training)
    state.baseline = base
    state.by_id = {"base": base, "cand": other}
    state.validations = {"cand": (candidate_validation, [candidate_validation]),
                         "base": (baseline_validation, [baseline_validation])}
    return state


def test_a_tie_on_the_validation_seeds_keeps_the_users_prompt():
    # the candidate's lower training loss used to break the tie in its favour
    assert validated_state(0.5, 0.5).selected().individual_id == "base"
    assert validated_state(0.5, 0.5).hall_of_fame()[0].individual_id == "base"
    assert validated_state(0.5, 0.49).selected().individual_id == "cand"
    assert validated_state(0.5, 0.51, candidate_training=0.01).selected().individual_id == "base"


def result(best_id="cand", basis="validation seeds", baseline=0.63, after=0.62, seeds=(57, 58, 59, 60, 61, 62, 63, 64)):
    base = record(0, "base", 0.9)
    best = base if best_id == "base" else record(3, "cand", 0.5, positive="(a:1.2842)(red:1.0416)", seeds=(1, 2))
    return SimpleNamespace(best=best, baseline=base, paired=PairedScore(basis, baseline, after),
                           validation_seeds=list(seeds))


def test_the_result_line_names_both_losses_the_change_and_the_seeds():
    assert result_line(result()) == "loss 0.63 -> 0.62 (-2%) on validation seeds 57-64"
    assert result_line(result(baseline=0.5, after=0.498)) == "loss 0.500 -> 0.498 (-0.4%) on validation seeds 57-64"
    assert result_line(result(basis="your seeds")) == "loss 0.63 -> 0.62 (-2%) on your seeds 1-2"
    assert result_line(result(best_id="base", after=0.63)) == NO_IMPROVEMENT
    assert result_line(result(after=0.7)).endswith("(+11%) on validation seeds 57-64: not better than your prompt")
    assert result_line(result(basis="your seeds", baseline=0.0, after=0.95)) == (
        "loss 0.00 -> 0.95 on your seeds 1-2: not better than your prompt")
    assert seed_span([64, 57, 58, 81, 82, 90]) == "57-58, 64, 81-82, 90"


def test_the_comments_lead_with_the_result_then_the_readable_pinned_prompt():
    lines = pinned_lines(result(), same_tokens=lambda a, b: True)
    assert lines == [RESULT_LABEL + "loss 0.63 -> 0.62 (-2%) on validation seeds 57-64",
                     "Pinned prompt: (a:1.2842) (red:1.0416)"]
    assert pinned_lines(result(best_id="base", after=0.63)) == [RESULT_LABEL + NO_IMPROVEMENT]


def test_the_readable_form_is_shown_only_when_the_host_sees_the_same_tokens():
    webui_stand_in.reset()
    same = host_same_tokens()  # the stand-in A1111's tokenizer and chunking
    pinned = "(a:1.2842)(red:1.0416)(,:1.034)(circle:0.9)"
    assert readable_prompt(pinned, same) == "(a:1.2842) (red:1.0416) (,:1.034) (circle:0.9)"
    assert same(pinned, "(a:1.2842) (red:1.0416) (,:1.034) (circle:0.9)")
    assert not same(pinned, "(a:1.28)(red:1.0416)(,:1.034)(circle:0.9)")  # a rounded weight is another prompt
    assert readable_prompt(pinned, lambda a, b: False) == pinned
    assert readable_prompt("\\)(x:1.2)", same) == "\\)(x:1.2)"  # an escaped bracket is text
