"""Resume as a replay: a run cut at every journal event, and inside each line at a random byte,
ends with the uninterrupted run's final_result.json (or is refused by name)."""
import json
import random
import shutil

import pytest

from prompt_pinning.reports import ReportWriter
from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run import evaluation_log
from test_run import FakeRenderer, make_config, resume_pinning, run_pinning


def comparable(value):
    """final_result.json without what differs between two folders of one run: names, places, timings."""
    if isinstance(value, dict):  # (and for fan-out: which instances rendered, how much)
        return {k: comparable(v) for k, v in value.items()
                if k not in ("run", "run_dir", "outdir", "report_errors", "instances") and not k.endswith("seconds")
                and not (k == "renderer" and isinstance(v, dict))}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def final_result(run_dir):
    return comparable(json.loads((run_dir / "final_result.json").read_text(encoding="utf-8")))


def snapshots_of_a_run(outdir, monkeypatch, settings=None, start=None, every=1):
    """The run, and a copy of its folder just before each ``every``-th journal line was written
    (with that line). ``start(outdir)``: the run (default: the fake renderer with ``settings``)."""
    cuts, real_append = [], evaluation_log.append_json_line
    run_dir = outdir / "full" / "prompt_pins" / "00000000"
    lines = []

    def append(path, value):
        if len(lines) % every == 0:
            copy = outdir / "cuts" / f"{len(lines):04d}"
            # the report thread may be writing a plot: its temporary files come and go
            shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("run.lock", ".*.tmp"))
            cuts.append((copy, (json.dumps(value, ensure_ascii=False, allow_nan=False) + "\n").encode()))
        lines.append(value)
        real_append(path, value)

    monkeypatch.setattr(evaluation_log, "append_json_line", append)
    if start is None:
        full = run_pinning(make_config(outdir / "full", **settings), FakeRenderer(), sink=ReportWriter(worker="thread"))
    else:
        full = start(outdir / "full")
    monkeypatch.setattr(evaluation_log, "append_json_line", real_append)
    assert full.stop_reason == "completed" and len(lines) == len(ckpt.read_evaluations(full.run_dir))
    return full, cuts


def resume_every_cut(cuts, resume, expected, rng):
    for k, (folder, line) in enumerate(cuts):
        for torn in (0, rng.randrange(1, len(line) - 1)):  # at the event boundary, and inside its line
            copy = folder.with_name(f"{folder.name}-{torn}")
            shutil.copytree(folder, copy)
            with open(copy / ckpt.EVALUATIONS_FILE, "ab") as log:
                log.write(line[:torn])
            resumed = resume(copy)
            assert resumed.stop_reason == "completed", (folder.name, torn)
            assert final_result(copy) == expected, (folder.name, torn)


SETTINGS = {
    "validated, rotating, size limited": dict(generations=3, lambda_=4, validation_batches=1,
                                               seed_schedule="rotating", size_limit=0.05, initial_radius=0.5,
                                               targets=["t.png"]),
    "fixed seeds, no validation": dict(generations=3, lambda_=4, seed_schedule="fixed"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_run_cut_anywhere_in_its_journal_resumes_to_the_same_final_result(outdir, monkeypatch, name):
    full, cuts = snapshots_of_a_run(outdir, monkeypatch, SETTINGS[name])
    resume_every_cut(cuts, lambda folder: resume_pinning(folder, FakeRenderer(), sink=ReportWriter(worker="thread")),
                     final_result(full.run_dir), random.Random(len(cuts)))


@pytest.mark.slow
def test_a_builtin_run_with_the_fade_guard_a_mask_and_tags_cut_anywhere_resumes_to_the_same_result(
        outdir, monkeypatch):
    import numpy as np

    from prompt_pinning.builtin import BuiltinRenderer
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning.run import resume_pinning as resume_any
    from prompt_pinning.run import run_pinning as run_any

    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, :16] = 255
    settings = GenerationSettings(seed=5, batch_size=3, steps=4, width=32, height=32, cfg_scale=3.0, sampler="Euler")
    config = PinningConfig(positive="red circle, blue background", generation=settings, cma_logging=False,
                           generations=2, lambda_=3, target_mask=mask, wanted_tags="red", fade_guard=2.0,
                           outdir=outdir / "full")
    full, cuts = snapshots_of_a_run(outdir, monkeypatch, start=lambda folder: run_any(
        config, BuiltinRenderer(), sink=ReportWriter(worker="thread")), every=3)
    assert full.config["resolved"]["plan"]["reference_renders"] > 0  # the guard's own renders are journaled
    resume_every_cut(cuts, lambda folder: resume_any(folder, BuiltinRenderer(), sink=ReportWriter(worker="thread")),
                     final_result(full.run_dir), random.Random(7))


@pytest.mark.slow
def test_a_fan_out_run_cut_anywhere_resumes_on_alike_instances_and_refuses_one_that_renders_differently(
        tmp_path, monkeypatch):
    from fake_webui_api import FakeWebUI
    from prompt_pinning.remote import WebUIApiRenderer
    from prompt_pinning.run import resume_pinning as resume_any
    from prompt_pinning.run import run_pinning as run_any
    from test_webui_api_run import config

    cuts, real_append = [], evaluation_log.append_json_line
    run_dir = tmp_path / "full" / "prompt_pins" / "00000000"

    def append(path, value):
        if len(cuts) % 3 == 0:  # every third event: each resume here costs a fan-out run's tail
            copy = tmp_path / "cuts" / f"{len(cuts):04d}"
            # the report thread may be writing a plot: its temporary files come and go
            shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("run.lock", ".*.tmp"))
            cuts.append(copy)
        else:
            cuts.append(None)
        real_append(path, value)

    monkeypatch.setattr(evaluation_log, "append_json_line", append)
    with FakeWebUI() as a, FakeWebUI() as b:
        full = run_any(config(tmp_path / "full"), WebUIApiRenderer([a.url, b.url], timeout=10),
                       sink=ReportWriter(worker="thread"))
    monkeypatch.setattr(evaluation_log, "append_json_line", real_append)
    expected = final_result(full.run_dir)
    with FakeWebUI() as c, FakeWebUI() as d, FakeWebUI(drift=1) as odd:
        for folder in filter(None, cuts):
            with pytest.raises(ValueError, match=rf"webui {odd.url}: the canary request"):
                resume_any(folder, WebUIApiRenderer([c.url, odd.url], timeout=10))
            resumed = resume_any(folder, WebUIApiRenderer([c.url, d.url], timeout=10), sink=ReportWriter(worker="thread"))
            assert resumed.stop_reason == "completed" and final_result(folder) == expected, folder.name
