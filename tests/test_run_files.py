"""Run folders as user input: every file read on resume is checked, and files are written one way."""
import json
import shutil

import numpy as np
import pytest
import torch

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.config import ConfigError
from prompt_pinning.run.files import read_json, write_json_atomic
from test_run import FakeRenderer, all_entries, make_config, resume_pinning, run_pinning


def strict_json(text):
    def refuse(name):
        raise ValueError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def stopped(outdir):
    """A run with explicit targets, stopped part way through a generation after a candidate's images were kept."""
    done = []
    run_dir = outdir / "runs" / "prompt_pins" / "00000000"
    result = run_pinning(make_config(outdir / "runs", targets=["t.png"], initial_std=0.2), FakeRenderer(),
                         should_stop=lambda: ckpt.kept_ids(run_dir) and done[-1] % 8 == 3,
                         progress=lambda s, d, t: done.append(d))
    assert result.stop_reason == "interrupted" and ckpt.kept_ids(result.run_dir)
    return result.run_dir


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def resume_error(run_dir):
    with pytest.raises(ckpt.ResumeError) as info:
        resume_pinning(run_dir, FakeRenderer())
    return str(info.value)


def snapshot(folder):
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_stopped_run_resumes_from_its_fixture(stopped, outdir):
    resumed = resume_pinning(stopped, FakeRenderer())
    full = run_pinning(make_config(outdir / "full", targets=["t.png"], initial_std=0.2), FakeRenderer())
    assert resumed.baseline_loss == full.baseline_loss and resumed.best.loss == full.best.loss


@pytest.mark.parametrize("name", [ckpt.CONFIG_FILE, "arrays", ckpt.BASELINE_FILE,
                                  ckpt.TARGETS_FILE, "kept", ckpt.MARKER_FILE])
def test_a_truncated_file_is_an_error_naming_it_and_nothing_is_written(stopped, name):
    if name == "arrays":
        name = json.loads((stopped / ckpt.CHECKPOINT_FILE).read_text())["arrays"]
    if name == "kept":
        name = ckpt.kept_path(stopped, ckpt.kept_ids(stopped)[0]).relative_to(stopped).as_posix()
    truncate(stopped / name)
    before = snapshot(stopped)
    assert name in resume_error(stopped)
    assert snapshot(stopped) == before


@pytest.mark.parametrize("name", [ckpt.CONFIG_FILE, "arrays", ckpt.BASELINE_FILE,
                                  ckpt.TARGETS_FILE, ckpt.MARKER_FILE])
def test_a_missing_file_is_an_error_naming_it(stopped, name):
    if name == "arrays":
        name = json.loads((stopped / ckpt.CHECKPOINT_FILE).read_text())["arrays"]
    (stopped / name).unlink()
    assert name in resume_error(stopped)


@pytest.mark.parametrize("field, value, named", [
    ("batch_size", 0, "batch_size"), ("steps", -3, "steps"), ("width", "64", "width"),
    ("lambda_", 0.5, "lambda_"), ("initial_std", -1.0, "initial_std"), ("weights", "cubic", "weights"),
    ("positive", 7, "positive"), ("generation", [], "generation"),
])
def test_an_edited_run_config_is_validated_like_user_input(stopped, field, value, named):
    def change(data):
        target = data["config"]["generation"] if field in ("batch_size", "steps", "width") else data["config"]
        target[field] = value

    edit_json(stopped / ckpt.CONFIG_FILE, change)
    message = resume_error(stopped)
    assert ckpt.CONFIG_FILE in message and named in message


def test_a_run_config_with_nan_or_an_unknown_setting_is_refused(stopped):
    text = (stopped / ckpt.CONFIG_FILE).read_text()
    assert '"initial_std": 0.2' in text
    (stopped / ckpt.CONFIG_FILE).write_text(text.replace('"initial_std": 0.2', '"initial_std": NaN'))
    assert "NaN" in resume_error(stopped)
    edit_json(stopped / ckpt.CONFIG_FILE, lambda d: d["config"]["generation"].update(color="red"))
    assert ckpt.CONFIG_FILE in resume_error(stopped)


@pytest.mark.parametrize("damage, message", [
    (lambda c: c.update(generation=99), "generation"),
    (lambda c: c.update(arrays="../../../etc/passwd"), "arrays must name"),
    (lambda c: c.update(sha256="0" * 64), "checksum"),
    (lambda c: c["optimizer"].update(sigma=-1.0), "sigma"),
    (lambda c: c["optimizer"].update(pos="x"), "random state"),
    (lambda c: c.update(version=1), "unknown keys"),
])
def test_an_edited_checkpoint_is_refused(stopped, damage, message):
    edit_checkpoint_line(stopped, damage)
    text = resume_error(stopped)
    assert message in text and (ckpt.EVALUATIONS_FILE in text or ".npz: does not match" in text)


def edit_checkpoint_line(run_dir, change):
    """Edit the journal's last checkpoint line (what a resume restores the optimizer from)."""
    path = run_dir / ckpt.EVALUATIONS_FILE
    lines = path.read_text().splitlines()
    at = max(i for i, line in enumerate(lines) if '"checkpoint": true' in line)
    entry = json.loads(lines[at])
    change(entry)
    lines[at] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")


def test_the_journal_not_checkpoint_json_names_the_optimizers_state(stopped):
    """checkpoint.json may be a generation ahead after a crash; the resume follows the journal."""
    (stopped / ckpt.CHECKPOINT_FILE).write_text("{}")
    again = resume_pinning(stopped, FakeRenderer())
    assert again.stop_reason == "completed"


@pytest.mark.parametrize("field, value, message", [
    ("sigma", "wide", "sigma"), ("centroid", [0.0], "one length"), ("generation", 9, "out of order"),
    ("extra", 1, "unknown keys"),
])
def test_an_edited_generation_end_is_refused_with_its_line_number(outdir, field, value, message):
    stopped = run_pinning(make_config(outdir, generations=2), FakeRenderer()).run_dir
    path = stopped / ckpt.EVALUATIONS_FILE
    lines = path.read_text().splitlines()
    number = next(k for k, line in enumerate(lines) if '"closed": true' in line)
    entry = json.loads(lines[number])
    entry[field] = value
    lines[number] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    text = resume_error(stopped)
    assert ckpt.EVALUATIONS_FILE in text and message in text


def test_checkpoint_arrays_with_a_forged_shape_or_nan_are_refused(stopped):
    doc = json.loads((stopped / ckpt.CHECKPOINT_FILE).read_text())
    arrays_path = stopped / doc["arrays"]
    with np.load(arrays_path, allow_pickle=False) as f:
        arrays = dict(f)
    for change in ({"opt_C": np.full((9, 9), 1.0)}, {"opt_centroid": np.full(4, np.nan)}):
        ckpt.write_bytes_atomic(arrays_path, ckpt.npz_bytes({**arrays, **change}))
        edit_checkpoint_line(
            stopped, lambda d: d.update(sha256=__import__("hashlib").sha256(arrays_path.read_bytes()).hexdigest()))
        text = resume_error(stopped)
        assert doc["arrays"] in text and ("shape" in text or "finite" in text)


@pytest.mark.parametrize("field, value, message", [
    ("loss", "0.1", "loss"), ("loss", None, "loss"), ("offsets", [0.0, 1.0], "offsets"),
    ("id", "0123456789abcdef", "id"), ("folder", "../../../tmp/x", "folder"), ("seeds", [1], "seeds"),
    ("positive", "(red:9.0) circle", "prompts"), ("generation", 7, "beyond the checkpoint"),
    ("extra", {"infotexts": ["x"]}, "extra"),
])
def test_an_edited_evaluation_log_line_is_refused_with_its_line_number(stopped, field, value, message):
    path = stopped / ckpt.EVALUATIONS_FILE
    lines = path.read_text().splitlines()
    at = [i for i, line in enumerate(lines) if '"offsets"' in line][1]  # the second evaluation
    entry = json.loads(lines[at])
    entry[field] = value
    if field == "generation":
        entry["folder"] = f"{value:08d}/{entry['id']}"
    lines[at] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")
    text = resume_error(stopped)
    assert f"{ckpt.EVALUATIONS_FILE}, line {at + 1}" in text and message in text


def test_a_log_line_torn_by_a_crash_is_dropped_and_the_run_continues(stopped, outdir):
    path = stopped / ckpt.EVALUATIONS_FILE
    with open(path, "a") as f:
        f.write('{"generation": 2, "ind')
    resumed = resume_pinning(stopped, FakeRenderer())
    full = run_pinning(make_config(outdir / "full", targets=["t.png"], initial_std=0.2), FakeRenderer())
    assert [e["offsets"] for e in all_entries(resumed)] == [e["offsets"] for e in all_entries(full)]


def test_images_of_the_wrong_size_or_range_are_refused(stopped):
    ckpt.save_images(stopped / ckpt.BASELINE_FILE, torch.zeros(2, 3, 16, 16))
    assert ckpt.BASELINE_FILE in resume_error(stopped) and "shape" in resume_error(stopped)
    ckpt.save_images(stopped / ckpt.BASELINE_FILE, torch.full((2, 3, 8, 8), 7.0))
    assert "[0, 1]" in resume_error(stopped)


def test_an_npz_holding_a_pickled_object_is_refused_without_loading_it(stopped, tmp_path):
    np.savez(stopped / ckpt.TARGETS_FILE, images=np.array([{"a": 1}], dtype=object))
    assert ckpt.TARGETS_FILE in resume_error(stopped)


def test_a_run_with_targets_never_resumes_without_them(stopped):
    (stopped / ckpt.TARGETS_FILE).unlink()
    assert "explicit target images" in resume_error(stopped)


def test_a_folder_without_the_marker_is_refused_and_its_files_are_untouched(tmp_path, stopped):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copy(stopped / ckpt.CONFIG_FILE, foreign / ckpt.CONFIG_FILE)
    (foreign / ckpt.EVALUATIONS_FILE).write_text("someone else's data\n")
    before = snapshot(foreign)
    assert "not a prompt pinning run folder" in resume_error(foreign)
    assert snapshot(foreign) == before


def test_an_old_pickle_run_folder_is_refused_without_unpickling(tmp_path, monkeypatch):
    import pickle

    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoint.pkl").write_bytes(pickle.dumps({"generation": 3}))
    (old / "run_config.json").write_text("{}")
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    text = resume_error(old)
    assert "checkpoint.pkl" in text and "older version" in text


def test_symlinks_in_a_run_folder_are_refused(stopped, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text("")
    log = stopped / ckpt.EVALUATIONS_FILE
    log.rename(tmp_path / "moved.jsonl")
    log.symlink_to(outside)
    assert "symbolic link" in resume_error(stopped)
    assert outside.read_text() == ""


def test_a_changed_tokenizer_is_named_not_a_shape_error(stopped):
    edit_json(stopped / ckpt.CONFIG_FILE, lambda d: d["resolved"].update(N=9))
    assert "prompt units" in resume_error(stopped)


def test_run_state_is_strict_json_even_without_a_best(outdir):
    result = run_pinning(make_config(outdir), FakeRenderer(), should_stop=lambda: True)
    assert result.best is None and result.paired is None
    state = strict_json((result.run_dir / ckpt.STATE_FILE).read_text())
    assert state["best_id"] is None and state["paired"] is None and state["stop_reason"] == "interrupted"


def test_every_json_file_of_a_run_is_strict_json(outdir):
    from prompt_pinning.reports import ReportWriter

    result = run_pinning(make_config(outdir, generations=2), FakeRenderer(), sink=ReportWriter())
    files = list(result.run_dir.rglob("*.json")) + list(result.run_dir.rglob("*.jsonl"))
    assert len(files) > 5
    for path in files:
        for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            strict_json(line)


def test_the_one_writer_maps_nan_to_null_and_leaves_no_temporary_file(tmp_path):
    write_json_atomic(tmp_path / "x.json", {"a": float("nan"), "b": [float("inf"), 1.5], "c": np.float32(2)})
    assert strict_json((tmp_path / "x.json").read_text()) == {"a": None, "b": [None, 1.5], "c": 2.0}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    assert read_json(tmp_path / "x.json")["c"] == 2.0


def test_lambda_of_one_is_refused_and_the_smallest_population_completes_and_resumes(outdir):
    with pytest.raises(ConfigError, match="lambda_: must be >= 2"):  # DEAP would keep mu = 0 parents
        run_pinning(make_config(outdir / "one", lambda_=1, generations=3), FakeRenderer())
    full = run_pinning(make_config(outdir / "full", lambda_=2, generations=3), FakeRenderer())
    assert full.stop_reason == "completed" and len(all_entries(full)) == 1 + 3 * 2 + 1  # + the search mean
    done = []
    cut = run_pinning(make_config(outdir / "cut", lambda_=2, generations=3), FakeRenderer(),
                      should_stop=lambda: bool(done) and done[-1] >= 3, progress=lambda s, d, t: done.append(d))
    resumed = resume_pinning(cut.run_dir, FakeRenderer())
    assert [e["offsets"] for e in all_entries(resumed)] == [e["offsets"] for e in all_entries(full)]


def test_resuming_a_completed_run_renders_nothing_and_gives_its_result(outdir):
    full = run_pinning(make_config(outdir, generations=2), FakeRenderer())
    renderer = FakeRenderer()
    again = resume_pinning(full.run_dir, renderer)
    assert renderer.calls == [] and again.stop_reason == "completed"
    assert again.best.individual_id == full.best.individual_id and torch.equal(again.best.images, full.best.images)
    assert [g.sigma for g in again.generations] == [g.sigma for g in full.generations]
    assert again.logbook == full.logbook


def test_a_compressed_npz_is_refused(stopped):
    images = np.zeros((2, 3, 8, 8), dtype=np.float32)
    np.savez_compressed(stopped / ckpt.BASELINE_FILE, images=images)
    assert "compressed" in resume_error(stopped)


def test_a_validation_line_with_the_wrong_number_of_losses_is_refused(outdir):
    done = []
    run = run_pinning(make_config(outdir, validation_batches=1), FakeRenderer(),
                      should_stop=lambda: bool(done) and done[-1] >= 6, progress=lambda s, d, t: done.append(d))
    stopped = run.run_dir
    log = stopped / ckpt.EVALUATIONS_FILE
    lines = log.read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if json.loads(line).get("validation"))
    entry = json.loads(lines[k])
    entry["losses"] = entry["losses"] * 2
    lines[k] = json.dumps(entry)
    log.write_text("\n".join(lines) + "\n")
    assert "losses; the run validates on 1 batches" in resume_error(stopped)
