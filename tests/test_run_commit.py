"""Issue 33's failures of the run's bookkeeping: each test here failed before its fix."""
import numpy as np
import pytest

from prompt_pinning.run import checkpoint as ckpt
from test_run import FakeRenderer, FakeVector, make_config, run_pinning


def test_the_size_limiters_penalty_is_counted_once_in_the_first_objective(outdir):
    result = run_pinning(make_config(outdir, targets=["t.png"], size_limit=0.05, initial_radius=0.5,
                                     generations=3), FakeRenderer())
    entries = [e for e in ckpt.read_individuals(result.run_dir) if e["extra"]["fitness"]]
    penalised = [e for e in entries if e["extra"]["penalty"] > 1e-6]
    assert penalised, "the limit is small enough that samples cross it"
    for e in entries:
        loss, penalty = e["loss"], e["extra"]["penalty"]
        size = float(np.linalg.norm(e["offsets"]))
        assert e["extra"]["fitness"][0] == pytest.approx(loss + penalty, rel=1e-12, abs=1e-15)
        assert e["extra"]["fitness"][1] == pytest.approx(size + penalty, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("torn", [10, (1 << 20) + 17, 3 << 20])
@pytest.mark.parametrize("complete", [0, 2])
def test_a_torn_last_line_of_any_length_is_cut(tmp_path, torn, complete):
    path = tmp_path / ckpt.EVALUATIONS_FILE
    lines = b"".join(b'{"line": %d}\n' % i for i in range(complete))
    path.write_bytes(lines + b'{"torn": "' + b"x" * torn)
    ckpt.drop_torn_tail(tmp_path)
    assert path.read_bytes() == lines
    ckpt.drop_torn_tail(tmp_path)  # a whole log is left as it is
    assert path.read_bytes() == lines


def test_a_journaled_slot_whose_id_differs_from_the_search_is_refused_not_rendered_again(outdir):
    import json

    from prompt_pinning.run.checks import ResumeError
    from prompt_pinning.run.rundir import individual_id
    from test_run import resume_pinning

    done = []
    stopped = run_pinning(make_config(outdir, targets=["t.png"], initial_std=0.2), FakeRenderer(),
                          should_stop=lambda: bool(done) and done[-1] == 6,
                          progress=lambda s, d, t: done.append(d)).run_dir
    log = stopped / ckpt.EVALUATIONS_FILE
    lines = log.read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["generation"] >= 1 and "closed" not in last  # a generation part done
    last["offsets"] = [x + 0.01 for x in last["offsets"]]  # another candidate in that slot
    last["id"] = individual_id(np.array(last["offsets"]))
    last["folder"] = f"{last['generation']:08d}/{last['id']}"
    config = make_config(outdir)
    last["positive"], last["negative"] = FakeVector(config.positive, config.negative).render(
        np.array(last["offsets"]))
    log.write_text("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
    before = log.read_bytes()
    renderer = FakeRenderer()
    with pytest.raises(ResumeError, match=rf"generation {last['generation']}, individual {last['index']}"):
        resume_pinning(stopped, renderer, raise_errors=True)
    assert log.read_bytes().startswith(before) and log.read_bytes().count(b'"index": %d' % last["index"]) \
        == before.count(b'"index": %d' % last["index"])


def test_interrupt_resume_interrupt_still_shows_the_selected_candidates_images(outdir):
    """A leader logged before the first stop and validated after the resume keeps its images."""
    from test_run import resume_pinning

    config = dict(validation_batches=1, seed_schedule="rotating", generations=4, initial_std=0.3, targets=["t.png"])
    shown = set()
    for k in range(27, 36):  # every stop inside the last generation, before its validation
        done, again = [], []
        cut = run_pinning(make_config(outdir / str(k), **config), FakeRenderer(),
                          should_stop=lambda: bool(done) and done[-1] >= k, progress=lambda s, d, t: done.append(d))
        assert cut.stop_reason == "interrupted"
        resumed = resume_pinning(cut.run_dir, FakeRenderer(), should_stop=lambda: bool(again) and again[-1] > k,
                                 progress=lambda s, d, t: again.append(d))
        assert resumed.stop_reason == "interrupted"
        best = resumed.best
        (rendered,) = FakeRenderer().render([(best.positive, best.negative)], make_config(outdir).generation.with_(
            seed=best.seeds[0]))
        assert best.images.shape[0] == 2 and best.images.equal(rendered.images)
        shown.add(best.generation)
    assert shown - {0}, "some resumed run selects a candidate of the search"


class TracingRenderer(FakeRenderer):
    """Hyperbatch-like: each batch comes with its sampler's traces."""

    def render(self, prompts, settings, progress=None):
        batches = super().render(prompts, settings, progress)
        for batch in batches:
            batch.traces = batch.images.mean(dim=(1, 2, 3)).double().numpy()[:, None] * np.arange(1.0, 4.0)
        return batches


def test_a_resume_whose_result_is_the_baseline_keeps_its_traces(outdir):
    from test_run import resume_pinning

    config = dict(generations=2, validation_batches=0, seed_schedule="fixed")  # its own target: the baseline wins
    full = run_pinning(make_config(outdir / "full", **config), TracingRenderer())
    assert full.best.generation == 0 and full.best.traces is not None
    log = full.run_dir / ckpt.EVALUATIONS_FILE  # a crash before the result's line
    lines = log.read_text().splitlines(keepends=True)
    assert '"final": true' in lines[-1]
    log.write_text("".join(lines[:-1]))
    (full.run_dir / ckpt.RESULT_FILE).unlink()
    resumed = resume_pinning(full.run_dir, TracingRenderer())
    assert resumed.stop_reason == "completed" and resumed.best.generation == 0
    assert resumed.best.traces is not None and np.array_equal(resumed.best.traces, full.best.traces)



@pytest.mark.parametrize("schedule,validation", [("rotating", 1), ("fixed", 0), ("fixed", 2)])
def test_run_state_keeps_its_leaders_as_records_arrive_and_holds_no_pair_losses(schedule, validation):
    """The leaders kept per event are the ones a search of every record finds (ties included)."""
    from types import SimpleNamespace

    from prompt_pinning.run.plan import RunPlan
    from prompt_pinning.run.rundir import individual_id
    from prompt_pinning.run.state import HALL_OF_FAME_SIZE, RunState
    from prompt_pinning.search.seed_blocks import validation_blocks, validation_points

    lam, generations, batch = 6, 12, 3
    points = tuple(validation_points(generations, lam, validation))
    plan = RunPlan(units=2, generations=generations, schedule=schedule, first_population=lam, population=lam,
                   validation_batches=validation, validation_points=points, with_centroid=False,
                   validation_blocks=tuple(validation_blocks(schedule, generations, validation)))
    state, rng = RunState(plan, SimpleNamespace(seed=0, batch_size=batch, height=4, width=4)), np.random.default_rng(3)

    def evaluated(g, i):
        offsets = rng.normal(size=2)
        state.apply({"generation": g, "index": i, "id": individual_id(offsets), "folder": None,
                     "offsets": offsets.tolist(), "positive": f"{g} {i}", "negative": "",
                     "seeds": list(range(batch)), "loss": float(rng.integers(0, 5)),  # many ties
                     "pair_losses": [0.5] * 9, "size": 1.0, "render_seconds": 0.0, "loss_seconds": 0.0,
                     "extra": {"image_losses": [0.5] * batch, "level_values": [0.1]}})

    def searched(block, since, up_to):
        pool = [r for (g, _), r in state.by_slot.items() if since < g <= up_to and plan.training_block(g) == block]
        pool += [state.baseline] if block == 0 and since == 0 else []
        return min(pool, key=lambda r: (r.loss, r.generation, r.index), default=None)

    evaluated(0, 0)
    for g in range(1, generations + 1):
        for i in range(lam):
            evaluated(g, i)
        block = plan.training_block(g)
        assert state.block_leader(block) is searched(block, 0, generations + 1)
        if g in points:
            last = max([p for p in points if p < g], default=0)
            leader = state.validation_candidate(g)
            assert leader is searched(block, last, g)
            state.apply({"validation": True, "generation": g, "id": leader.individual_id,
                         "of": [leader.generation, leader.index], "loss": float(rng.integers(0, 3)),
                         "losses": [1.0] * validation})
        if validation and state.validations:
            best = min(state.validations, key=lambda i: (state.validations[i][0], state.by_id[i].loss))
            assert state.selected() is state.by_id[best]
        elif not validation:
            assert state.selected() is searched(block, 0, generations + 1)
            pool = [r for (h, _), r in state.by_slot.items() if plan.training_block(h) == block]
            assert [r.individual_id for r in state.hall_of_fame()] == \
                [r.individual_id for r in sorted(pool, key=lambda r: r.loss)[:HALL_OF_FAME_SIZE]]
    assert all(r.pair_losses.size == 0 and "image_losses" not in r.extra for r in state.by_slot.values())
    assert len({id(r.seeds) for r in state.by_slot.values()}) <= len({plan.training_block(g) for g in range(13)})


def test_the_reports_table_of_a_resumed_run_is_the_journals_individuals(outdir):
    from prompt_pinning.reports import ReportWriter
    from prompt_pinning.reports.writer import load_rows

    result = run_pinning(make_config(outdir, generations=2), FakeRenderer(), sink=ReportWriter(worker="thread"))
    run_dir = result.run_dir
    path = run_dir / ckpt.EVALUATIONS_FILE
    lines = path.read_text().splitlines(keepends=True)
    last = max(i for i, line in enumerate(lines) if '"offsets"' in line)
    path.write_text("".join(lines[:last] + lines[last + 1:]))  # a crash after its folder, before its line
    entries = ckpt.read_individuals(run_dir)
    (run_dir / entries[1]["folder"] / "batch_stats.json").unlink()  # the journal's line is what counts
    rows = load_rows(run_dir)
    assert sorted(rows) == [(e["generation"], e["index"]) for e in entries]
    for e in entries:
        row = rows[(e["generation"], e["index"])]
        assert (row["id"], row["loss"], row["pos"], row["n"]) == (e["id"], e["loss"], e["positive"], len(e["seeds"]))
        assert row["dir"].rstrip("/").endswith(e["folder"])


def test_the_drivers_done_question_is_whether_the_journal_holds_the_event(outdir):
    from prompt_pinning.run.setup import resumed_run
    from test_run import FAKES, resume_pinning

    result = run_pinning(make_config(outdir, generations=2, validation_batches=1), FakeRenderer())
    events = ckpt.read_evaluations(result.run_dir)
    run = resumed_run(result.run_dir, FakeRenderer(), FAKES, None, None, None)
    try:
        state = run.state
        for e in events:
            kind = next((k for k in ("validation", "closed", "final", "reference", "checkpoint", "fingerprint")
                         if e.get(k) is True), "evaluated")
            key = {"evaluated": (e.get("generation"), e.get("index")), "final": None, "reference": e.get("block"),
                   "fingerprint": e.get("hash")}.get(kind, e.get("generation"))
            assert state.holds(kind, key), (kind, key)
        assert not state.holds("closed", 3) and not state.holds("validation", 5)
        assert not state.holds("evaluated", (2, 99)) and not state.holds("reference", 0)
    finally:
        run.journal.store.close()
    renderer = FakeRenderer()
    assert resume_pinning(result.run_dir, renderer).stop_reason == "completed" and renderer.calls == []
    path = result.run_dir / ckpt.EVALUATIONS_FILE
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(line for line in lines if '"final": true' not in line))  # the result's line only
    renderer = FakeRenderer()
    assert resume_pinning(result.run_dir, renderer).stop_reason == "completed"
    final = [e for e in ckpt.read_evaluations(result.run_dir) if e.get("final") is True]
    assert len(final) == 1 and renderer.calls == ([] if final[0]["of"][0] == 0 else [1])  # the baseline: no render
