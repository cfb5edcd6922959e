"""Validation loss in the reports: final_result.json, the best-prompt card and the infotext."""
from pathlib import Path

import numpy as np
import torch

from prompt_pinning.run.records import GenerationRecord, IndividualRecord, RunResult
from prompt_pinning.reports.html import render_index
from prompt_pinning.reports.individual import pinning_params
from prompt_pinning.reports.infotext import VALIDATION_LOSS_KEY
from prompt_pinning.reports.page_data import page_data
from prompt_pinning.reports.writer import final_summary


def record(generation, loss, validation=None, run_dir=Path("/tmp/run")):
    return IndividualRecord(
        generation=generation, index=0, individual_id=f"id{generation}", offsets=np.zeros(2), positive="red",
        negative="", images=torch.zeros(0, 3, 8, 8), seeds=[1, 2], loss=loss, pair_losses=np.zeros(1),
        folder=run_dir / f"{generation:08d}" / f"id{generation}", validation_loss=validation,
        validation_losses=[] if validation is None else [validation])


def result(best, baseline, run_dir=Path("/tmp/run")):
    generation = GenerationRecord(generation=1, losses=[best.loss], individual_ids=[best.individual_id], sigma=0.1,
                                  centroid=np.zeros(2), diag_std=np.ones(2), axis_ratio=1.0,
                                  eigenvalues=np.ones(2), best_loss=best.loss, validation_loss=best.validation_loss,
                                  validated_id=best.individual_id, validated_loss=best.validation_loss)
    return RunResult(run_dir=run_dir, original_positive="red", original_negative="", baseline=baseline, best=best,
                     hall_of_fame=[best, baseline], units=[], generations=[generation], stop_reason="completed",
                     selected_by="validation" if best.validation_loss is not None else "training",
                     validation_seeds=[3, 4])


def test_final_json_and_generations_carry_validation_losses():
    run = result(record(1, 0.5, 0.61), record(0, 0.7, 0.73))
    final = final_summary(Path("/tmp/run"), run, [])
    assert final["selected_by"] == "validation" and final["validation_seeds"] == [3, 4]
    assert (final["best_validation_loss"], final["baseline_validation_loss"]) == (0.61, 0.73)
    assert final["best"]["val"] == 0.61 and final["generations"][0]["validation_loss"] == 0.61


def test_best_card_and_infotext_show_validation_only_when_there_is_one():
    validated = result(record(1, 0.5, 0.61), record(0, 0.7, 0.73))
    page = render_index(page_data(Path("/tmp/run"), validated, [], [], "completed", {}, "now"))
    assert "validation 0.61000" in page and "validation 0.73000" in page
    assert pinning_params(validated.best)[VALIDATION_LOSS_KEY] == 0.61
    plain = result(record(1, 0.5), record(0, 0.7))
    assert "validation 0." not in render_index(page_data(Path("/tmp/run"), plain, [], [], "completed", {}, "now"))
    assert pinning_params(plain.best)[VALIDATION_LOSS_KEY] is None  # left out of the infotext
    assert final_summary(Path("/tmp/run"), plain, [])["selected_by"] == "training"
