"""The run loop with small stand-ins for the prompt vector, renderer and loss."""
import dataclasses
import json
import time
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run import evaluator as evaluator_module
from prompt_pinning import run as run_module
from prompt_pinning.run.builders import Builders
from prompt_pinning.config import PinningConfig
from prompt_pinning.run.records import UnitRow
from prompt_pinning.rendering import GenerationSettings, RenderedBatch
from prompt_pinning.run.rundir import create_run_dir, individual_id

WORDS = ["red", "circle", "left", "blue"]
TARGET_WEIGHTS = np.array([1.2, 0.9, 1.1, 0.8])


class FakeVector:
    """Words with weights; render writes (word:weight) so the renderer can read them back."""

    def __init__(self, positive, negative):
        self.words = positive.split()
        self.base_weights = np.ones(len(self.words))
        self.negative = negative

    @property
    def size(self):
        return len(self.words)

    def render(self, offsets):
        weights = np.abs(self.base_weights + offsets)
        return " ".join(f"({w}:{float(x)!r})" for w, x in zip(self.words, weights)), self.negative

    def unit_rows(self, offsets):
        return [UnitRow(w, "positive", 1.0, float(o)) for w, o in zip(self.words, offsets)]


class FakeRenderer:
    """Image = weights painted as pixel levels plus seeded noise; one call per generation."""

    name = "fake"
    tokenizer = None

    def __init__(self, fail_on_call=None):
        self.calls = []
        self.first_seeds = []  # the first seed of each call
        self.fail_on_call = fail_on_call

    def render(self, prompts, settings, progress=None):
        self.calls.append(len(prompts))
        self.first_seeds.append(settings.seed)
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise RuntimeError("GPU fell over")
        out = []
        for positive, _ in prompts:
            weights = [float(part.split(":")[1].rstrip(")")) for part in positive.split()]
            images = []
            for seed in settings.seeds():
                noise = torch.Generator().manual_seed(seed)
                base = torch.tensor(weights, dtype=torch.float32).repeat(settings.height * settings.width * 3 // len(weights) + 1)
                image = base[: settings.height * settings.width * 3].reshape(3, settings.height, settings.width) / 2
                images.append((image + 0.01 * torch.rand(image.shape, generator=noise)).clamp(0, 1))
            if progress is not None:
                progress(1, 1)
            out.append(RenderedBatch(images=torch.stack(images), seeds=settings.seeds()))
        return out


@dataclass
class FakeLossResult:
    value: float
    pair_losses: np.ndarray
    image_losses: np.ndarray
    level_values: list
    seconds: float


class FakeLoss:
    def __init__(self, targets):
        self.targets = targets

    def set_targets(self, images, seeds=None):
        self.targets = images

    def evaluate(self, images, traces=None, seeds=None):
        per_image = ((images - self.targets.mean(0)) ** 2).mean(dim=(1, 2, 3)).double().numpy()
        return FakeLossResult(float(per_image.mean()), per_image, per_image, [], 0.0)

    def evaluate_many(self, images_list, traces_list, seeds_list=None):
        self.many_calls = getattr(self, "many_calls", []) + [len(images_list)]
        return [self.evaluate(images, traces) for images, traces in zip(images_list, traces_list)]


class RecordingSink:
    def __init__(self):
        self.events = []

    def on_run_start(self, run_dir, config, units):
        self.events.append(("start", len(units)))

    def on_individual(self, record):
        assert record.folder is not None and record.folder.is_dir()
        self.events.append(("individual", record.generation, record.index))

    def on_generation(self, record, result):
        self.events.append(("generation", record.generation))

    def on_finish(self, result):
        self.events.append(("finish", result.stop_reason))


TARGET = FakeRenderer().render([(FakeVector(" ".join(WORDS), "").render(TARGET_WEIGHTS - 1))[0:2]],
                               GenerationSettings(seed=5, batch_size=2, width=8, height=8))[0].images


def fake_builders(loss=FakeLoss, vector=FakeVector):
    """The run's builders with the stand-ins above (``loss``/``vector``: a class to use instead)."""
    return Builders(vector=lambda config, renderer: vector(config.positive, config.negative),
                    targets=lambda config: TARGET if config.targets else None,
                    loss=lambda config, targets: loss(targets))


FAKES = fake_builders()


def run_pinning(config, renderer, **kw):
    kw.setdefault("builders", FAKES)
    return run_module.run_pinning(config, renderer, **kw)


def resume_pinning(run_dir, renderer, **kw):
    kw.setdefault("builders", FAKES)
    return run_module.resume_pinning(run_dir, renderer, **kw)


def make_config(outdir, **kw):
    kw.setdefault("generations", 4)
    kw.setdefault("validation_batches", 0)  # the original behaviour; validation has its own tests
    kw.setdefault("fade_guard", 0.0)  # the fake loss has no guard; its renders: test_fade_reference_plan.py
    return PinningConfig(positive=" ".join(WORDS), negative="blurry", outdir=outdir,
                         generation=GenerationSettings(seed=5, batch_size=2, steps=3, width=8, height=8),
                         cma_logging=False, **kw)


def all_entries(result):
    """The evaluation lines of a run's journal (no validation, generation end or result line)."""
    return ckpt.read_individuals(result.run_dir)


def validation_entries(result):
    return [e for e in ckpt.read_evaluations(result.run_dir) if e.get("validation")]


def test_run_writes_layout_renders_each_generation_once_and_returns_the_last_blocks_leader(outdir):
    renderer, sink = FakeRenderer(), RecordingSink()
    progress = []
    result = run_pinning(make_config(outdir, targets=["t.png"], initial_std=0.2), renderer, sink=sink,
                         progress=lambda stage, done, total: progress.append((stage, done, total)))
    assert result.stop_reason == "completed"
    assert result.run_dir == outdir / "prompt_pins" / "00000000"
    lam = result.config["resolved"]["lambda_"]
    # baseline, one call per generation, the search mean, the result on the user's seeds
    assert renderer.calls == [1] + [lam] * 4 + [1, 1]
    assert renderer.first_seeds == [5] + [5 + 2 * g for g in range(1, 5)] + [5 + 2 * 4, 5]
    entries = all_entries(result)
    assert len(entries) == 1 + 4 * lam + 1 and progress[-1][1] == progress[-1][2] == 1 + 4 * lam + 2
    assert progress[0] == ("starting", 0, 1 + 4 * lam + 2)  # the total is known before any render
    assert progress[1][0] == "baseline" and progress[-1][0] == "result on your seeds"
    for e in entries:
        folder = result.run_dir / e["folder"]
        assert folder.parent.name == f"{e['generation']:08d}" and folder.name.startswith(e["id"])
        assert e["id"] == individual_id(np.array(e["offsets"]))
    # rotating seeds, no validation: only the last block (generation 4 and the mean) is compared
    last_block = [e for e in entries if e["generation"] == 4]
    best = min(last_block, key=lambda e: e["loss"])
    assert result.best.individual_id == best["id"] and result.best.loss == best["loss"]
    assert result.best.seeds == [5, 6] == result.baseline.seeds  # shown on the user's seeds
    assert result.best.images.shape == (2, 3, 8, 8)
    assert [r.loss for r in result.hall_of_fame] == sorted(r.loss for r in result.hall_of_fame)
    assert {r.generation for r in result.hall_of_fame} == {4}
    assert result.baseline.generation == 0 and result.baseline.loss == entries[0]["loss"]
    assert result.paired is result.user_seeds and result.paired.basis == "your seeds"
    assert result.paired.baseline == result.baseline.loss and result.paired.improvement > 0
    assert sink.events[0] == ("start", 4) and sink.events[-1] == ("finish", "completed")
    assert [e for e in sink.events if e[0] == "generation"] == [("generation", g) for g in range(1, 5)]
    assert ckpt.read_run_state(result.run_dir)["stop_reason"] == "completed"
    assert json.loads((result.run_dir / ckpt.CONFIG_FILE).read_text())["resolved"]["generations"] == 4
    final = result.generations[-1]
    assert [u.tightness for u in result.units] == pytest.approx(list(final.diag_std))
    assert [u.offset for u in result.units] == pytest.approx(list(result.best.offsets))
    assert len(result.logbook) == 4
    assert all(line["best"] == line["min"] for line in result.logbook)  # rotating: each block on its own


def test_next_run_takes_the_next_number_and_concurrent_starts_do_not_collide(outdir):
    first = run_pinning(make_config(outdir, generations=1), FakeRenderer())
    second = run_pinning(make_config(outdir, generations=1), FakeRenderer())
    assert (first.run_dir.name, second.run_dir.name) == ("00000000", "00000001")
    made, barrier = [], threading.Barrier(8)

    def start():
        barrier.wait()
        made.append(create_run_dir(outdir))

    threads = [threading.Thread(target=start) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(set(made)) == 8
    assert sorted(p.name for p in made) == [f"{n:08d}" for n in range(2, 10)]


def test_same_seed_same_result_and_other_seed_differs(outdir):
    a = run_pinning(make_config(outdir), FakeRenderer())
    b = run_pinning(make_config(outdir), FakeRenderer())
    c = run_pinning(make_config(outdir, cma_seed=123), FakeRenderer())
    assert a.best.individual_id == b.best.individual_id and a.best.loss == b.best.loss
    assert [e["offsets"] for e in all_entries(a)] == [e["offsets"] for e in all_entries(b)]
    assert [e["offsets"] for e in all_entries(a)][1:] != [e["offsets"] for e in all_entries(c)][1:]


@pytest.mark.parametrize("k", [1, 3, 6])
def test_interrupt_after_k_evaluations_then_resume_matches_uninterrupted(outdir, k):
    full = run_pinning(make_config(outdir / "full"), FakeRenderer())
    done = []
    sink = RecordingSink()
    stopped = run_pinning(make_config(outdir / "cut"), FakeRenderer(), sink=sink,
                          should_stop=lambda: bool(done) and done[-1] >= k,
                          progress=lambda s, d, t: done.append(d))
    assert stopped.stop_reason == "interrupted"
    assert len(all_entries(stopped)) == k
    folders = [p for p in stopped.run_dir.glob("*/*") if p.is_dir()]
    assert len(folders) == k
    assert sink.events[-1] == ("finish", "interrupted")
    assert stopped.best is not None and stopped.best.images.numel() > 0
    assert ckpt.read_run_state(stopped.run_dir)["stop_reason"] == "interrupted"

    renderer = FakeRenderer()
    resumed = resume_pinning(stopped.run_dir, renderer)
    assert resumed.stop_reason == "completed" and resumed.run_dir == stopped.run_dir
    assert resumed.best.individual_id == full.best.individual_id
    assert np.array_equal(resumed.best.offsets, full.best.offsets) and resumed.best.loss == full.best.loss
    assert torch.equal(resumed.best.images, full.best.images)
    assert [e["offsets"] for e in all_entries(resumed)] == [e["offsets"] for e in all_entries(full)]
    assert sum(renderer.calls) == len(all_entries(full)) + 1 - k  # evaluations on disk are not redone
    assert [g.sigma for g in resumed.generations] == [g.sigma for g in full.generations]


def test_resume_through_config_field(outdir):
    stopped = run_pinning(make_config(outdir), FakeRenderer(), should_stop=lambda: True)
    assert stopped.stop_reason == "interrupted" and stopped.best is None
    resumed = run_pinning(make_config(outdir, resume=stopped.run_dir), FakeRenderer())
    full = run_pinning(make_config(outdir), FakeRenderer())
    assert resumed.best.individual_id == full.best.individual_id


def test_renderer_error_is_recorded_flushed_and_raised_or_returned(outdir):
    sink = RecordingSink()
    with pytest.raises(RuntimeError, match="GPU fell over") as info:
        run_pinning(make_config(outdir), FakeRenderer(fail_on_call=3), sink=sink)
    result = info.value.pinning_result
    assert result.stop_reason.startswith("error: RuntimeError: GPU fell over")
    assert sink.events[-1] == ("finish", result.stop_reason)
    assert len(all_entries(result)) == 1 + result.config["resolved"]["lambda_"]
    assert ckpt.read_run_state(result.run_dir)["stop_reason"] == result.stop_reason
    returned = run_pinning(make_config(outdir), FakeRenderer(fail_on_call=2), raise_errors=False)
    assert returned.stop_reason.startswith("error:")
    assert returned.best.individual_id == returned.baseline.individual_id


def test_size_limited_run_never_returns_a_best_beyond_the_limit(outdir):
    limit = 0.05  # the target is about 0.3 away: the limiter must hold the run back
    result = run_pinning(make_config(outdir, targets=["t.png"], size_limit=limit, initial_radius=0.5), FakeRenderer())
    error = result.config["resolved"]["size_limit_error"]
    assert result.config["resolved"]["strategy"] == "cma.StrategyMultiObjective"
    assert all(np.linalg.norm(e["offsets"]) <= limit + error + 1e-12 for e in all_entries(result))
    assert np.linalg.norm(result.best.offsets) <= limit + error
    assert any(e["extra"]["penalty"] > 0 for e in all_entries(result))


def test_ten_runs_keep_numpy_state_and_emit_no_warnings(outdir):
    np.random.seed(2024)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for i in range(10):
            before = np.random.get_state()
            run_pinning(make_config(outdir, generations=1, size_limit=0.1 * (i % 2)), FakeRenderer())
            after = np.random.get_state()
            assert before[0] == after[0] and np.array_equal(before[1], after[1]) and before[2:] == after[2:]


def test_resume_of_a_folder_that_is_not_a_run_names_the_problem(tmp_path):
    with pytest.raises(ckpt.ResumeError, match="prompt_pinning_run.json: missing"):
        resume_pinning(tmp_path, FakeRenderer())
    with pytest.raises(ckpt.ResumeError, match="no such run folder"):
        resume_pinning(tmp_path / "gone", FakeRenderer())


def test_a_crash_between_the_baseline_and_the_first_checkpoint_resumes_without_rendering_it_again(outdir):
    # Keep the checkpoint as it was when the baseline's log line was written (generation 0),
    # as if the process died before the generation 1 checkpoint.
    at_baseline = {}

    def progress(stage, done, total):
        if stage == "baseline":
            run_dir = next((outdir / "cut" / "prompt_pins").iterdir())
            at_baseline.update({p.name: p.read_bytes() for p in [*run_dir.glob("checkpoint*"),
                                                                  run_dir / ckpt.EVALUATIONS_FILE]})

    stopped = run_pinning(make_config(outdir / "cut"), FakeRenderer(), progress=progress,
                          should_stop=lambda: bool(at_baseline))
    for path in [*stopped.run_dir.glob("checkpoint*"), stopped.run_dir / ckpt.EVALUATIONS_FILE]:
        path.unlink()
    for name, data in at_baseline.items():
        (stopped.run_dir / name).write_bytes(data)
    assert json.loads((stopped.run_dir / ckpt.CHECKPOINT_FILE).read_text())["generation"] == 0
    renderer = FakeRenderer()
    resumed = resume_pinning(stopped.run_dir, renderer)
    full = run_pinning(make_config(outdir / "full"), FakeRenderer())
    assert [e["offsets"] for e in all_entries(resumed)] == [e["offsets"] for e in all_entries(full)]
    assert sum(renderer.calls) == len(all_entries(full))  # the baseline is not rendered again (+1: the result)
    assert resumed.baseline_loss == full.baseline_loss and resumed.best.loss == full.best.loss


@pytest.mark.parametrize("k", [2, 5])
def test_a_size_limited_run_resumes_bit_for_bit(outdir, k):
    settings = dict(size_limit=0.05, initial_radius=0.5, targets=["t.png"], generations=5)
    full = run_pinning(make_config(outdir / "full", **settings), FakeRenderer())
    done = []
    stopped = run_pinning(make_config(outdir / "cut", **settings), FakeRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= 1 + k * 3,
                          progress=lambda s, d, t: done.append(d))
    assert stopped.stop_reason == "interrupted"
    resumed = resume_pinning(stopped.run_dir, FakeRenderer())
    assert [e["offsets"] for e in all_entries(resumed)] == [e["offsets"] for e in all_entries(full)]
    assert [e["loss"] for e in all_entries(resumed)] == [e["loss"] for e in all_entries(full)]
    assert resumed.best.individual_id == full.best.individual_id
    assert [g.sigma for g in resumed.generations] == [g.sigma for g in full.generations]
    assert all(np.array_equal(a.centroid, b.centroid) for a, b in zip(resumed.generations, full.generations))


def test_a_run_in_memory_writes_nothing_and_gives_the_same_result(outdir, tmp_path, monkeypatch):
    from prompt_pinning.run.store import MemoryStore

    full = run_pinning(make_config(outdir / "full"), FakeRenderer())
    monkeypatch.chdir(tmp_path)
    store = MemoryStore()
    result = run_pinning(make_config(tmp_path / "memory"), FakeRenderer(), store=store)
    assert result.run_dir is None and not (tmp_path / "memory").exists()
    assert result.best.individual_id == full.best.individual_id and result.best.loss == full.best.loss
    assert torch.equal(result.best.images, full.best.images)
    assert [e["offsets"] for e in store.evaluations if "offsets" in e] == [e["offsets"] for e in all_entries(full)]
    assert store.state["stop_reason"] == "completed" and store.checkpoint.generation == 5
    with pytest.raises(ValueError, match="sink"):
        run_pinning(make_config(tmp_path / "memory"), FakeRenderer(), store=MemoryStore(), sink=RecordingSink())


def test_no_run_file_is_pickled_and_resume_loads_nothing_through_pickle(outdir, monkeypatch):
    import pickle

    stopped = run_pinning(make_config(outdir), FakeRenderer(), should_stop=lambda: len(
        list(outdir.glob("prompt_pins/*/*/*"))) >= 4)
    names = {p.name for p in stopped.run_dir.iterdir() if p.is_file()}
    assert {"prompt_pinning_run.json", "run_config.json", "checkpoint.json", "evaluations.jsonl",
            "baseline.npz", "run_state.json"} <= names
    assert not any(name.endswith((".pkl", ".pt")) for name in names)

    def refuse(*args, **kwargs):
        raise AssertionError("a run file was unpickled")

    for module, name in ((pickle, "load"), (pickle, "loads"), (pickle, "Unpickler"), (torch, "load"), (np, "load")):
        monkeypatch.setattr(module, name, refuse)
    assert resume_pinning(stopped.run_dir, FakeRenderer()).stop_reason == "completed"


def test_sink_sees_an_individual_before_it_is_logged(outdir):
    class CheckingSink(RecordingSink):
        def on_individual(self, record):
            logged = [e for e in ckpt.read_evaluations(record.folder.parent.parent) if "index" in e]
            assert (record.generation, record.index) not in {(e["generation"], e["index"]) for e in logged}
            super().on_individual(record)

    result = run_pinning(make_config(outdir, generations=1), FakeRenderer(), sink=CheckingSink())
    assert result.stop_reason == "completed"


def test_each_generation_is_scored_in_one_call(outdir, monkeypatch):
    losses = []
    loss = lambda targets: losses.append(FakeLoss(targets)) or losses[-1]
    result = run_pinning(make_config(outdir, generations=3), FakeRenderer(), builders=fake_builders(loss=loss))
    sizes = [len(g.losses) for g in result.generations]
    # the baseline, one call per generation, then the search mean and the result on the user's seeds
    assert losses[0].many_calls == [1] + sizes + [1, 1] and len(sizes) == 3
    assert len(all_entries(result)) == 1 + sum(sizes) + 1


def test_each_generation_records_its_seconds_per_stage_prompt_handling_included(outdir):
    class SlowPromptVector(FakeVector):
        def render(self, offsets):
            time.sleep(0.01)  # writing a long prompt
            return super().render(offsets)

    class HostTimedRenderer(FakeRenderer):
        def render(self, prompts, settings, progress=None):
            batches = super().render(prompts, settings, progress)
            return [dataclasses.replace(b, prompt_seconds=0.25) for b in batches]

    result = run_pinning(make_config(outdir, generations=2, lambda_=3), HostTimedRenderer(),
                         builders=fake_builders(vector=SlowPromptVector))
    for line in result.logbook:
        assert line["prompt_seconds"] >= 3 * 0.01  # three prompts written per generation
        assert line["host_prompt_seconds"] == pytest.approx(3 * 0.25)
        assert line["render_seconds"] >= 0 and line["loss_seconds"] >= 0
    entries = all_entries(result)
    assert all(entry["extra"]["prompt_seconds"] >= 0.01 for entry in entries)
    assert all(entry["extra"]["host_prompt_seconds"] == 0.25 for entry in entries)


def test_a_large_generation_is_scored_in_chunks_and_a_stop_is_seen_between_them(outdir, monkeypatch):
    monkeypatch.setattr(evaluator_module, "SCORE_CHUNK_IMAGES", 4)  # batch 2: two individuals per loss call
    losses = []
    loss = lambda targets: losses.append(FakeLoss(targets)) or losses[-1]
    result = run_pinning(make_config(outdir, generations=1, lambda_=5), FakeRenderer(), builders=fake_builders(loss=loss))
    assert losses[0].many_calls == [1, 2, 2, 1, 1, 1]  # baseline, generation 1 in three, mean, result

    stop = threading.Event()

    class StoppingLoss(FakeLoss):
        def evaluate_many(self, images_list, traces_list, seeds_list=None):
            if len(images_list) > 1:
                stop.set()  # a stop arrives while the generation's first chunk is being scored
            return super().evaluate_many(images_list, traces_list, seeds_list)

    losses.clear()
    loss = lambda targets: losses.append(StoppingLoss(targets)) or losses[-1]
    result = run_pinning(make_config(outdir, generations=1, lambda_=5), FakeRenderer(), should_stop=stop.is_set,
                         builders=fake_builders(loss=loss))
    assert result.stop_reason == "interrupted"
    assert losses[0].many_calls == [1, 2]  # the other chunks were never scored


def seeds_of(first_seed, batch_size=2):
    return set(range(first_seed, first_seed + batch_size))


@pytest.mark.parametrize("schedule", ["fixed", "rotating"])
def test_validation_seeds_are_disjoint_from_training_seeds_and_counted_in_the_total(outdir, schedule):
    renderer, progress = FakeRenderer(), []
    result = run_pinning(make_config(outdir, validation_batches=2, seed_schedule=schedule), renderer,
                         progress=lambda stage, done, total: progress.append((stage, done, total)))
    resolved = result.config["resolved"]
    lam, generations = resolved["lambda_"], resolved["generations"]
    training = [entry["seeds"] for entry in all_entries(result)]
    validation_seeds = set(result.validation_seeds)
    assert len(validation_seeds) == 2 * 2 and not validation_seeds & {s for seeds in training for s in seeds}
    # every render is counted, and the total was right from the start (a result that is the
    # baseline needs no render of its own: its batch is already on the user's seeds)
    assert progress[-1][1] == progress[-1][2] == progress[0][2]
    assert sum(renderer.calls) == progress[-1][1] - (result.best.generation == 0)
    validated = validation_entries(result)
    points = resolved["validation_generations"]
    assert len(validated) == 1 + len(points) + 1  # baseline, one per point, centroid
    assert all(len(e["losses"]) == 2 and e["loss"] == pytest.approx(np.mean(e["losses"])) for e in validated)
    per_call = dict(zip(range(len(renderer.calls)), renderer.first_seeds))
    assert {per_call[k] for k, n in enumerate(renderer.calls) if n == lam} == (
        {5} if schedule == "fixed" else {5 + 2 * g for g in range(1, generations + 1)})
    centroid = result.centroid
    assert centroid is not None and centroid.extra["centroid"] and centroid.validation_loss is not None
    assert np.allclose(centroid.offsets, result.generations[-1].centroid)


def test_result_is_the_validated_candidate_with_the_lowest_validation_loss(outdir):
    result = run_pinning(make_config(outdir, validation_batches=1), FakeRenderer())
    validated = {e["id"]: e["loss"] for e in validation_entries(result)}
    assert result.selected_by == "validation"
    assert result.best.individual_id == min(validated, key=validated.get)
    assert result.best.validation_loss == min(validated.values())
    assert result.baseline.validation_loss == validated[result.baseline.individual_id]
    assert result.best.images.shape == (2, 3, 8, 8)
    series = [g.validation_loss for g in result.generations]
    assert all(a >= b for a, b in zip(series, series[1:]))  # the best so far never gets worse
    assert result.logbook[-1]["val"] == series[-1]


@pytest.mark.parametrize("schedule", ["fixed", "rotating"])
def test_validation_off_never_picks_across_seed_blocks(outdir, schedule):
    renderer = FakeRenderer()
    result = run_pinning(make_config(outdir, validation_batches=0, seed_schedule=schedule), renderer)
    lam = result.config["resolved"]["lambda_"]
    (final,) = [e for e in ckpt.read_evaluations(result.run_dir) if e.get("final")]
    assert renderer.calls == [1] + [lam] * 4 + [1] + [1] * (final["of"][0] != 0)
    assert result.best.individual_id in (final["id"], result.baseline.individual_id)
    assert not validation_entries(result)
    assert result.selected_by == "training" and result.best.validation_loss is None
    entries = all_entries(result)
    # fixed: every render is on the user's seeds, so all are paired; rotating: only the last block
    pool = entries if schedule == "fixed" else [e for e in entries if e["generation"] == 4]
    assert final["id"] == min(pool, key=lambda e: e["loss"])["id"]  # the pick tried on the user's seeds
    assert renderer.first_seeds[-1] == 5 and result.best.seeds == [5, 6]
    assert result.paired.basis == "your seeds" and result.paired.baseline == result.baseline.loss


@pytest.mark.parametrize("schedule", ["fixed", "rotating"])
@pytest.mark.parametrize("k", [1, 2, 5, 11, 30])
def test_interrupted_validated_run_resumes_to_the_uninterrupted_result(outdir, schedule, k):
    cfg = dict(validation_batches=2, seed_schedule=schedule)
    full = run_pinning(make_config(outdir / "full", **cfg), FakeRenderer())
    done = []
    stopped = run_pinning(make_config(outdir / "cut", **cfg), FakeRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= k,
                          progress=lambda s, d, t: done.append(d))
    assert stopped.stop_reason == "interrupted"
    renderer = FakeRenderer()
    resumed = resume_pinning(stopped.run_dir, renderer)
    assert resumed.stop_reason == "completed"
    assert resumed.best.individual_id == full.best.individual_id
    assert resumed.best.validation_loss == full.best.validation_loss
    assert torch.equal(resumed.best.images, full.best.images)
    timings = ("render_seconds", "loss_seconds", "folder", "prompt_seconds", "host_prompt_seconds")
    untimed = lambda entry: {k: untimed(v) if isinstance(v, dict) else v for k, v in entry.items() if k not in timings}
    strip_all = lambda entries: [untimed(e) for e in entries]
    assert strip_all(ckpt.read_evaluations(resumed.run_dir)) == strip_all(ckpt.read_evaluations(full.run_dir))
    assert [g.validation_loss for g in resumed.generations] == [g.validation_loss for g in full.generations]
    assert [g.validated_id for g in resumed.generations] == [g.validated_id for g in full.generations]
    stopped_renders = done[-1] if done else 0
    assert sum(renderer.calls) <= full.config["resolved"]["total_evaluations"] - stopped_renders + 2


def test_ties_in_validation_loss_need_no_extra_render(outdir, monkeypatch):
    class FlatOnValidation(FakeLoss):  # the validation seeds give every individual the same loss
        def evaluate_many(self, images_list, traces_list, seeds_list=None):
            results = super().evaluate_many(images_list, traces_list)
            for result, seeds in zip(results, seeds_list):
                if seeds[0] != 5:  # not the training seeds
                    result.value = 0.5
            return results

    renderer, progress = FakeRenderer(), []
    result = run_pinning(make_config(outdir, validation_batches=1, targets=["t.png"], initial_std=0.2,
                                     seed_schedule="fixed"), renderer, builders=fake_builders(loss=FlatOnValidation),
                         progress=lambda stage, done, total: progress.append(total))
    validated = {e["id"] for e in validation_entries(result)}
    by_training = min((e for e in all_entries(result) if e["id"] in validated), key=lambda e: e["loss"])
    assert by_training["id"] != result.baseline.individual_id  # a candidate is lower on the training seeds,
    assert result.best.individual_id == result.baseline.individual_id  # but a tie keeps the user's prompt
    assert result.best.images.numel() > 0
    # no extra render for the result's images: the baseline's batch is on the user's seeds already
    assert sum(renderer.calls) == progress[0] - 1 and progress[0] == progress[-1]
