"""The subject measures and the fade guard's forms: a faded subject pays whatever the rest does."""
import json

import numpy as np
import pytest
import torch

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run import resume_pinning, run_pinning
from prompt_pinning.score import fade_guard, subject
from prompt_pinning.score.loss import PinningLoss

RED, BLUE, DEEP_BLUE, MAUVE = (0.91, 0.13, 0.24), (0.25, 0.35, 0.85), (0.05, 0.1, 0.95), (0.60, 0.38, 0.37)


def discs(count=4, size=32, subject_colour=RED, background=BLUE, radius=7):
    """``count`` pictures of a disc on a flat background, the disc's centre moving with the image."""
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    images = torch.empty(count, 3, size, size)
    for i in range(count):
        inside = (ys - 10 - 3 * i) ** 2 + (xs - 12 - 2 * i) ** 2 <= radius ** 2
        for c in range(3):
            images[i, c] = torch.where(inside, subject_colour[c], background[c])
    return images


def test_the_profile_finds_the_subject_and_measures_it():
    images = discs()
    profile = subject.profile(images)
    disc = (images[:, 0] > 0.5).numpy()  # the red channel marks the disc
    np.testing.assert_array_equal(profile.masks, disc)
    assert profile.has_subject.all()
    np.testing.assert_allclose(profile.separation, np.linalg.norm(np.subtract(RED, BLUE)), rtol=1e-5)
    np.testing.assert_allclose(profile.colourfulness, max(RED) - min(RED), rtol=1e-5)
    sep, col = subject.kept(images, profile)
    np.testing.assert_allclose(sep, 1.0, rtol=1e-6)
    np.testing.assert_allclose(col, 1.0, rtol=1e-6)


def test_a_mauve_subject_on_a_deeper_background_pays_where_the_batch_form_does_not():
    """The demo's failure: the batch's colour and contrast rise while the subject loses its colour."""
    before, after = discs(), discs(subject_colour=MAUVE, background=DEEP_BLUE)
    batch_before, batch_after = fade_guard.batch_stats(before), fade_guard.batch_stats(after)
    assert (batch_after >= batch_before).all()  # whole-batch statistics: nothing was lost
    reference = fade_guard.Reference.of(before)
    assert fade_guard.penalty("batch", after, reference, 2.0, 0.03, 0.5) == 0.0
    sep, col = subject.kept(after, reference.subject)
    assert np.allclose(col, (max(MAUVE) - min(MAUVE)) / (max(RED) - min(RED)), rtol=1e-4)  # about 0.30 kept
    assert (sep > 0.9).all()  # it still stands out against its own (deeper) background
    charged = fade_guard.penalty("subject", after, reference, 2.0, 0.03, 0.5)
    expected = 2.0 * (np.maximum(0, 1 - sep - 0.03).mean() + (1 - col - 0.03).mean())
    assert charged == pytest.approx(expected, rel=1e-6) and charged > 2.0 * 0.6
    assert fade_guard.penalty("relative", after, reference, 2.0, 0.03, 0.5) > 0.5  # the loss more than doubles
    assert fade_guard.penalty("windows", after, reference, 2.0, 0.03, 0.5) > 0


def test_a_subject_that_fades_into_its_background_loses_separation():
    reference = subject.profile(discs())
    grey = tuple(0.5 * (r + b) for r, b in zip(RED, BLUE))
    faded = discs(subject_colour=grey)
    sep, _ = subject.kept(faded, reference)
    assert np.allclose(sep, 0.5, rtol=1e-4)
    assert subject.subject_penalty(faded, reference, 1.0, 0.05) > 0.45
    # a stronger subject costs nothing: the guard is one-sided
    assert subject.subject_penalty(discs(subject_colour=(1.0, 0.0, 0.1)), reference, 1.0, 0.0) == 0.0


def test_images_without_a_subject_or_colour_do_not_count():
    flat = torch.full((2, 3, 16, 16), 0.4)
    profile = subject.profile(flat)
    assert not profile.has_subject.any()
    sep, col = subject.kept(torch.rand(2, 3, 16, 16), profile)
    assert np.isnan(sep).all() and np.isnan(col).all()
    assert subject.subject_penalty(torch.rand(2, 3, 16, 16), profile, 5.0, 0.0) == 0.0
    grey_disc = subject.profile(discs(subject_colour=(0.9, 0.9, 0.9), background=(0.1, 0.1, 0.1)))
    sep, col = subject.kept(discs(subject_colour=(0.9, 0.9, 0.9), background=(0.1, 0.1, 0.1)), grey_disc)
    assert np.allclose(sep, 1.0) and np.isnan(col).all()  # a white subject has no colour to keep


def test_large_images_are_measured_at_the_working_size():
    large = torch.nn.functional.interpolate(discs(count=2, size=32), size=(512, 384), mode="nearest")
    profile = subject.profile(large)
    assert profile.masks.shape == (2, 128, 96) == (2, *subject.work_size(512, 384))
    sep, col = subject.kept(large, profile)
    assert np.allclose(sep, 1.0) and np.allclose(col, 1.0)


def test_pixels_outside_the_target_mask_are_not_guarded():
    before = discs()
    mask = torch.zeros(32, 32)
    mask[:, 24:] = 1.0  # the right quarter: background only, the discs stand left of it
    after = before.clone()
    after[:, :, :, :24] = 0.5  # everything the mask ignores goes grey
    for form in ("batch", "subject", "windows", "relative"):
        reference = fade_guard.Reference.of(before, mask)
        assert fade_guard.penalty(form, after, reference, 2.0, 0.0, 0.5, mask) == pytest.approx(0, abs=1e-6), form
        unmasked = fade_guard.Reference.of(before)
        assert fade_guard.penalty(form, after, unmasked, 2.0, 0.0, 0.5) > 0.1, form


def test_a_loss_with_a_mask_guards_only_the_masked_pixels():
    before = discs()
    mask = torch.zeros(32, 32)
    mask[:, 24:] = 1.0
    after = before.clone()
    after[:, :, :, :24] = 0.5
    for masked, expected_zero in ((mask, True), (None, False)):
        loss = PinningLoss(before, fade_guard=2.0, fade_guard_form="batch", mask=masked)
        assert (loss.evaluate(after).fade_penalty == 0) == expected_zero


def test_profiles_round_trip_through_the_journal_and_bad_ones_are_named():
    profile = subject.profile(discs(count=3, size=20))
    data = json.loads(json.dumps(profile.to_json()))
    back = subject.SubjectProfile.from_json(data)
    np.testing.assert_array_equal(back.masks, profile.masks)
    np.testing.assert_allclose(back.separation, profile.separation)
    np.testing.assert_allclose(back.window_colour, profile.window_colour)
    for broken, words in (({**data, "size": [0, 20]}, "subject.size"),
                          ({**data, "masks": ["!!"] * 3}, "subject.masks"),
                          ({**data, "separation": [1.0]}, "subject.separation"),
                          ({**data, "window_colour": [[0.1]] * 3}, "subject.window_colour"),
                          ({k: v for k, v in data.items() if k != "masks"}, "subject must be an object")):
        assert words in subject.json_problem(broken)
        with pytest.raises(ValueError, match=words.split(" ")[0]):
            subject.SubjectProfile.from_json(broken)


def test_the_form_is_checked_by_name():
    with pytest.raises(ValueError, match="fade_guard_form: must be one of subject, windows, relative, batch"):
        PinningLoss(fade_guard=1.0, fade_guard_form="everything")
    from prompt_pinning.config import ConfigError
    with pytest.raises(ConfigError, match="fade_guard_form"):
        PinningConfig(positive="x", fade_guard_form="everything").validate()


def test_tag_loss_only_keeps_the_guard_term_it_records():
    from prompt_pinning.score.tags import TaggedLoss, TagTarget

    class Tagger:
        name = "fixed"

        def probabilities(self, images, tags, batch=None):
            return np.full((images.shape[0], len(tags)), 0.25)

    before = discs()
    image_loss = PinningLoss(before, fade_guard=2.0, fade_guard_form="batch", hyperbatch_weights=False)
    target = TagTarget(wanted=(("red", 1.0),))
    grey = discs(subject_colour=(0.5, 0.5, 0.5), background=(0.45, 0.45, 0.45))
    for only in (True, False):
        result = TaggedLoss(image_loss, target, Tagger(), weight=1.0, tags_only=only).evaluate(grey)
        assert result.fade_penalty > 0
        expected = result.tag_value + (result.fade_penalty if only else result.image_value)
        assert result.value == pytest.approx(expected)


SETTINGS = GenerationSettings(seed=3, batch_size=2, steps=3, width=16, height=16)


def guarded(outdir, **changes):
    values = dict(positive="a red circle, on a blue background", generation=SETTINGS, cma_seed=1, generations=3,
                  lambda_=3, cma_logging=False, fade_guard=2.0, validation_batches=1, seed_schedule="rotating",
                  outdir=outdir)
    return PinningConfig(**{**values, **changes})


def test_a_run_journals_each_seeds_subject_and_a_resume_reads_it_back(outdir):
    full = run_pinning(guarded(outdir / "full"), BuiltinRenderer())
    lines = [e for e in ckpt.read_evaluations(full.run_dir) if e.get("reference") is True]
    assert lines and all(len(e["subject"]["masks"]) == SETTINGS.batch_size for e in lines)
    assert all(e["subject"]["size"] == [16, 16] for e in lines)
    done = []
    stopped = run_pinning(guarded(outdir / "cut"), BuiltinRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= 8, progress=lambda s, d, t: done.append(d))
    resumed = resume_pinning(stopped.run_dir, BuiltinRenderer())
    assert resumed.stop_reason == "completed"
    assert resumed.best.loss == full.best.loss and resumed.best.offsets.tolist() == full.best.offsets.tolist()


def test_reference_lines_without_the_subject_are_refused_for_a_subject_form(outdir):
    done = []
    stopped = run_pinning(guarded(outdir), BuiltinRenderer(), should_stop=lambda: bool(done) and done[-1] >= 4,
                          progress=lambda s, d, t: done.append(d))
    log = stopped.run_dir / ckpt.EVALUATIONS_FILE
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    for entry in entries:
        entry.pop("subject", None)
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    with pytest.raises(ckpt.ResumeError, match="does not fit the fade guard's form 'subject'"):
        resume_pinning(stopped.run_dir, BuiltinRenderer())


def test_a_run_saved_before_the_forms_resumes_with_the_batch_form(outdir):
    done = []
    stopped = run_pinning(guarded(outdir, fade_guard_form="batch"), BuiltinRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= 4, progress=lambda s, d, t: done.append(d))
    assert all("subject" not in e for e in ckpt.read_evaluations(stopped.run_dir) if e.get("reference"))
    config = stopped.run_dir / ckpt.CONFIG_FILE
    saved = json.loads(config.read_text())
    del saved["config"]["fade_guard_form"]
    config.write_text(json.dumps(saved))
    resumed = resume_pinning(stopped.run_dir, BuiltinRenderer())
    assert resumed.stop_reason == "completed"
    assert json.loads(config.read_text())["config"].get("fade_guard_form", "batch") == "batch"


def test_the_demo_measure_reads_a_run_folder_and_finds_its_subject_kept(outdir):
    import demo_subject  # benchmarks/ is on the path (conftest)

    from prompt_pinning.reports import ReportWriter

    run = run_pinning(guarded(outdir, generations=2), BuiltinRenderer(), sink=ReportWriter())
    measured = demo_subject.measure(run.run_dir, heldout_batches=1)
    mine = measured["blocks"]["your seeds"]
    # the guard charges every share lost beyond its tolerance: the result keeps the subject on its seeds
    assert mine["colour_kept"] >= 0.9 and mine["separation_kept"] >= 0.9
    assert all(0 <= x <= 1 for x in mine["subject_rgb_before"] + mine["subject_rgb_after"])
    assert measured["pinned"] == [run.best.positive, run.best.negative]
