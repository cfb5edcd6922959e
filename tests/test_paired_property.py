"""Random small runs: every comparison the page, the plots, the infotext and final_result.json
show is between two losses on the same seeds, checked against the run's own journal."""
import json
import math
import random
import re

import numpy as np
import pytest

from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.config import PinningConfig
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.reports import ReportWriter
from prompt_pinning.reports.plot_data import gain_summary, plain_generation
from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run import run_pinning

SEED, BATCH = 7, 2
CASES = 10


def improvement(baseline, result):
    return (baseline - result) / baseline


def journal_truth(run_dir):
    """From evaluations.jsonl alone: each individual's block and loss, and the unmodified prompt's
    loss on every block it was scored on (block 0, reference renders, the validation seeds)."""
    events = ckpt.read_evaluations(run_dir)
    individuals, unmodified, validation, final = {}, {}, {}, None
    for e in events:
        if e.get("validation") is True:
            validation[e["id"]] = e["loss"]
        elif e.get("reference") is True:
            if "loss" in e:
                unmodified[e["block"]] = e["loss"]
        elif e.get("final") is True:
            final = e
        elif ckpt.is_evaluation(e):
            block, rest = divmod(e["seeds"][0] - SEED, BATCH)
            assert rest == 0
            individuals[(e["generation"], e["index"])] = (block, e["loss"], e["id"])
            if e["generation"] == 0:
                unmodified[0] = e["loss"]
                baseline_id = e["id"]
    if baseline_id in validation:
        unmodified["validation"] = validation[baseline_id]
    return individuals, unmodified, validation, final


def block_seeds(block):
    return list(range(SEED + block * BATCH, SEED + (block + 1) * BATCH))


def check_score(score, unmodified, validation, final, validation_seeds, shown_block=None, shown_loss=None):
    """A score (a to_dict) is paired: its two losses are the journal's on the seeds it names."""
    if score is None:
        return
    seeds = list(score["seeds"])
    if score["basis"] == "validation seeds":
        assert seeds == validation_seeds
        assert score["baseline_loss"] == unmodified["validation"]
        assert score["result_loss"] in validation.values()
    elif seeds == final_seeds(final):
        assert score["baseline_loss"] == unmodified[0]
        # the final render's loss, or the user's prompt kept because that render did not beat it
        assert score["result_loss"] == final["loss"] or (score["result_loss"] == unmodified[0] <= final["loss"])
    else:
        assert seeds == block_seeds(shown_block)
        assert score["baseline_loss"] == unmodified[shown_block] and score["result_loss"] == shown_loss
    if score["improvement"] is not None:
        assert score["improvement"] == pytest.approx(improvement(score["baseline_loss"], score["result_loss"]))


def final_seeds(final):
    return list(final["seeds"]) if final else None


def page_of(run_dir):
    html = (run_dir / "index.html").read_text()
    found = re.search(r'<script type="application/json" id="[^"]+">(.*?)</script>', html, re.S)
    return json.loads(found.group(1).replace("<\\/", "</")), html


def cases():
    rng = random.Random(32)
    for k in range(CASES):
        yield pytest.param(dict(schedule=rng.choice(["fixed", "rotating"]), validation=rng.choice([0, 1, 2]),
                                guard=rng.choice([0.0, 2.0, 2.0]), stop_after=rng.choice([None, None, 9, 14]),
                                generations=rng.choice([2, 3])), id=f"case{k}")
    # always among them: an interrupted guarded run on rotating seeds, with and without validation
    for validation in (0, 1):
        yield pytest.param(dict(schedule="rotating", validation=validation, guard=2.0, stop_after=30,
                                generations=3), id=f"interrupted-guarded-v{validation}")


@pytest.fixture(scope="module")
def renderer():
    return BuiltinRenderer()


@pytest.mark.parametrize("case", cases())
def test_every_comparison_shown_is_on_the_same_seeds(case, renderer, tmp_path):
    from prompt_pinning_webui.webui_run import run_params

    calls = []

    def should_stop():
        calls.append(1)
        return case["stop_after"] is not None and len(calls) > case["stop_after"]

    config = PinningConfig(positive="a purple ring on a white background", outdir=tmp_path, cma_logging=False,
                           generation=GenerationSettings(seed=SEED, batch_size=BATCH, steps=3, width=16, height=16),
                           generations=case["generations"], lambda_=3, seed_schedule=case["schedule"],
                           validation_batches=case["validation"], fade_guard=case["guard"])
    result = run_pinning(config, renderer, sink=ReportWriter(worker="thread"), should_stop=should_stop,
                         raise_errors=False)
    assert result.stop_reason == ("completed" if case["stop_after"] is None else "interrupted")
    run_dir = result.run_dir
    individuals, unmodified, validation, final = journal_truth(run_dir)
    guarded_rotation = case["guard"] and case["schedule"] == "rotating"
    for g, block in {(g, b) for (g, _), (b, _, _) in individuals.items() if g}:
        assert block == (0 if case["schedule"] == "fixed" else g)
        if guarded_rotation and any(r.generation == g for r in result.generations):
            assert block in unmodified  # the guard's reference render was scored
    vseeds = list(result.validation_seeds)
    page, html = page_of(run_dir)
    summary = json.loads((run_dir / "final_result.json").read_text())
    best_block = best_loss = None
    if result.best is not None:
        best_block, best_loss, _ = individuals[(result.best.generation, result.best.index)]

    # headline, your seeds and the images shown: page data, final_result.json and the result
    for score in (page["headline"], page["your_seeds"], page["shown"], summary["improvement"],
                  summary["your_seeds"], summary["shown_seeds"]):
        check_score(score, unmodified, validation, final, vseeds, best_block, best_loss)
    for score in result.scores():
        check_score(score.to_dict(), unmodified, validation, final, vseeds, best_block, best_loss)
    if result.paired is not None:
        number = f"{result.paired.improvement * 100:+.1f}%".replace("-0.0%", "0.0%").replace("+0.0%", "0.0%")
        assert number in html
    if case["stop_after"] == 30 and not case["validation"]:  # interrupted before the result's final render
        assert final is None and result.shown.basis == "its training seeds" and best_block > 0
    if page["shown"] is not None and page["best"] is not None:
        assert list(page["shown"]["seeds"]) == page["best"]["seeds"]  # the images the page shows

    # the convergence chart and the plots: each generation against its own block's unmodified loss
    gains = gain_summary([plain_generation(r) for r in result.generations])
    for k, point in enumerate(page["convergence"]):
        g = point["g"]
        blocks = {b for (gg, _), (b, _, _) in individuals.items() if gg == g}
        assert len(blocks) == 1  # a generation is one seed block
        (block,) = blocks
        reference = unmodified.get(block)
        assert point["unmodified"] == reference
        generation_losses = [x for x in result.generations[k].losses]
        if reference is None:
            assert point["gain"] is None and math.isnan(gains["best"][k])
        else:
            assert point["gain"] == pytest.approx(improvement(reference, min(generation_losses)))
            assert gains["best"][k] == pytest.approx(point["gain"])
            assert summary["generations"][k]["gain"] == pytest.approx(point["gain"])
        if point["val"] is not None:
            assert point["val_unmodified"] == unmodified["validation"]
            assert point["val_gain"] == pytest.approx(improvement(unmodified["validation"], point["val"]))
            assert point["val"] in validation.values()
        else:
            assert point["val_gain"] is None
    # the Individuals table: each row against the unmodified prompt on its own block
    for g, reference in page["row_baselines"].items():
        blocks = {b for (gg, _), (b, _, _) in individuals.items() if gg == int(g)}
        assert blocks and unmodified[blocks.pop()] == reference

    # the infotext the WebUI writes
    params = run_params(result)
    if result.paired is not None:
        assert float(params["Pinning baseline loss"]) == pytest.approx(result.paired.baseline, rel=1e-5)
        assert float(params["Pinning loss"]) == pytest.approx(result.paired.result, rel=1e-5)
    for name in ("your seeds", "shown seeds"):
        if f"Pinning {name}" in params:
            seeds = [int(x) for x in re.findall(r"\d+", params[f"Pinning {name}"])]
            score = next(s for s in result.scores() if [s.seeds[0], s.seeds[-1]] == seeds)
            check_score(score.to_dict(), unmodified, validation, final, vseeds, best_block, best_loss)
            assert float(params[f"Pinning {name} baseline loss"]) == pytest.approx(score.baseline, rel=1e-5)
    for key in ("N", "cma_seed", "lambda_", "mu"):
        assert params[f"Pinning {key}"] == result.config["resolved"][key]
