"""Report files: images with infotext, batch stats, plots, GIFs, JSON summaries and index.html."""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prompt_pinning.run.records import IndividualRecord, UnitRow
from prompt_pinning.reports import FINAL_JSON, INDEX_HTML, ReportWriter
from prompt_pinning.reports.html import DATA_ELEMENT_ID, embed_json
from prompt_pinning.reports.infotext import build_infotext, parse_infotext, png_info
from synthetic_run import synthetic_run

INJECTED = 'a </script><script>window.__pwned=1</script> "quoted" \'single\' <b>bold</b> & <img src=x onerror=alert(1)>'
SETTINGS = {"seed": 7, "steps": 20, "sampler": "DPM++ 2M", "scheduler": "karras", "cfg_scale": 7.5,
            "width": 16, "height": 8, "subseed": 0, "subseed_strength": 0.0, "denoising_strength": 1.0}


def make_record(folder: Path, images: torch.Tensor, seeds: list[int], **changes) -> IndividualRecord:
    values = dict(generation=2, index=3, individual_id="abc123", offsets=np.array([0.1, -0.2]),
                  positive="(red:1.100) (circle:0.800)", negative="blurry, dark", images=images, seeds=seeds,
                  loss=0.25, pair_losses=np.array([0.1, 0.2, 0.3]), size=0.22, render_seconds=1.5,
                  loss_seconds=0.25, folder=folder)
    values.update(changes)
    return IndividualRecord(**values)


def started_writer(run_dir: Path) -> ReportWriter:
    writer = ReportWriter()
    units = [UnitRow("red", "positive", 1.0), UnitRow("circle", "positive", 1.0)]
    writer.on_run_start(run_dir, {"generation": SETTINGS, "size_limit": 0.0}, units)
    return writer


# ---- infotext -------------------------------------------------------------------------------
def test_infotext_round_trips_through_a_png(tmp_path):
    positive = "a cat, (sitting:1.2)\non two lines: yes"
    text = build_infotext(positive, "ugly, blurry", {"Steps": 20, "Sampler": "DPM++ 2M", "CFG scale": 7.5,
                                                     "Seed": 42, "Pinning loss": 0.123456789, "Note": "a, b: c"})
    Image.new("RGB", (4, 4)).save(tmp_path / "x.png", pnginfo=png_info(text))
    with Image.open(tmp_path / "x.png") as image:
        stored = image.info["parameters"]
    parsed = parse_infotext(stored)
    assert parsed["Prompt"] == positive
    assert parsed["Negative prompt"] == "ugly, blurry"
    assert parsed["Steps"] == "20" and parsed["Seed"] == "42" and parsed["CFG scale"] == "7.5"
    assert parsed["Pinning loss"] == "0.123457"
    assert parsed["Note"] == "a, b: c"  # quoted as JSON because of the comma and colon
    assert '"a, b: c"' in stored


def test_infotext_keeps_non_latin_text(tmp_path):
    text = build_infotext("猫 ✨ café", "", {"Steps": 1, "Seed": 2, "Size": "4x4"})
    Image.new("RGB", (4, 4)).save(tmp_path / "u.png", pnginfo=png_info(text))
    with Image.open(tmp_path / "u.png") as image:
        assert parse_infotext(image.info["parameters"])["Prompt"] == "猫 ✨ café"


def test_infotext_rejects_a_key_the_webui_cannot_read():
    with pytest.raises(ValueError, match="infotext key"):
        build_infotext("p", "", {"bad:key": 1})


# ---- per individual -------------------------------------------------------------------------
def test_images_are_written_at_once_with_infotext_and_exact_pixels(tmp_path):
    writer = started_writer(tmp_path / "run")
    images = torch.rand(3, 3, 8, 16)
    folder = tmp_path / "run" / "00000002" / "abc123"
    folder.mkdir(parents=True)
    writer.on_individual(make_record(folder, images, [7, 8, 9]))
    names = sorted(p.name for p in folder.glob("*.png") if p.name != "loss_plot.png")
    assert names == ["00-7.png", "01-8.png", "02-9.png"]  # before any flush
    expected = (images.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    for k, name in enumerate(names):
        with Image.open(folder / name) as image:
            assert np.array_equal(np.asarray(image.convert("RGB")), expected[k])
            info = parse_infotext(image.info["parameters"])
        assert info["Prompt"] == "(red:1.100) (circle:0.800)"
        assert info["Negative prompt"] == "blurry, dark"
        assert info["Seed"] == str(7 + k) and info["Size"] == "16x8" and info["Steps"] == "20"
        assert info["Sampler"] == "DPM++ 2M" and info["Schedule type"] == "Karras"
        assert info["Pinning generation"] == "2" and info["Pinning individual"] == "abc123"
    stats = json.loads((folder / "batch_stats.json").read_text())
    assert stats["seeds"] == [7, 8, 9] and stats["images"] == names
    assert stats["pair_losses"] == [0.1, 0.2, 0.3] and stats["loss"] == 0.25
    assert stats["render_seconds"] == 1.5 and stats["loss_seconds"] == 0.25
    assert stats["settings"]["cfg_scale"] == 7.5
    assert [u["offset"] for u in stats["units"]] == [0.1, -0.2]
    assert [round(u["weight"], 6) for u in stats["units"]] == [1.1, 0.8]
    writer.on_finish(_result_for(tmp_path / "run"))
    assert (folder / "loss_plot.png").is_file()
    with Image.open(folder / "summary.gif") as gif:
        assert gif.n_frames == 3 and gif.info.get("loop") == 0


def test_host_infotext_is_kept_and_extended(tmp_path):
    writer = started_writer(tmp_path / "run")
    host = "red circle\nNegative prompt: blurry\nSteps: 5, Sampler: Euler, Seed: 7, Size: 8x8, Model hash: abcd"
    folder = tmp_path / "run" / "g" / "i"
    folder.mkdir(parents=True)
    writer.on_individual(make_record(folder, torch.rand(1, 3, 8, 8), [7], extra={"infotexts": [host]}))
    with Image.open(folder / "00-7.png") as image:
        info = parse_infotext(image.info["parameters"])
    assert info["Model hash"] == "abcd" and info["Sampler"] == "Euler"
    assert info["Pinning individual"] == "abc123"
    writer.on_finish(_result_for(tmp_path / "run"))


@pytest.mark.parametrize("images, seeds, match", [
    (torch.rand(2, 4, 8, 8), [1, 2], "record.images"),
    (torch.rand(2, 3, 8, 8), [1], "record.seeds"),
])
def test_bad_records_name_the_field(tmp_path, images, seeds, match):
    writer = started_writer(tmp_path / "run")
    with pytest.raises(ValueError, match=match):
        writer.on_individual(make_record(tmp_path / "run" / "x", images, seeds))
    writer.on_finish(_result_for(tmp_path / "run"))


def test_writer_must_be_started_first(tmp_path):
    with pytest.raises(RuntimeError, match="on_run_start"):
        ReportWriter().on_individual(make_record(tmp_path, torch.rand(1, 3, 8, 8), [1]))


def _result_for(run_dir: Path):
    from prompt_pinning.run.records import RunResult

    return RunResult(run_dir=run_dir, original_positive="red circle", original_negative="", baseline=None,
                     best=None, hall_of_fame=[], units=[], generations=[], stop_reason="completed")


# ---- whole runs -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reports") / "00000001"
    pages = []

    class Watching(ReportWriter):  # reads index.html after every generation
        def on_generation(self, record, result):
            super().on_generation(record, result)
            self.flush()
            pages.append(_page_data((run_dir / INDEX_HTML).read_text(encoding="utf-8")))

    writer = Watching()
    result = synthetic_run(run_dir, writer, generations=3, population=4, batch=3, side=16,
                           positive=INJECTED, negative="blurry & <dark>", size_limit=0.5)
    return run_dir, result, writer, pages


def test_every_report_is_complete_when_on_finish_returns(finished_run):
    run_dir, result, writer, _ = finished_run
    assert writer.errors == []
    folders = sorted(p.parent for p in run_dir.glob("*/*/batch_stats.json"))
    assert len(folders) == 1 + 3 * 4
    for folder in folders:
        assert (folder / "loss_plot.png").is_file() and (folder / "summary.gif").is_file()
    for generation in range(1, 4):
        summary = json.loads((run_dir / f"{generation:08d}" / "generation_summary.json").read_text())
        assert summary["losses"] == result.generations[generation - 1].losses
        assert summary["loss_stats"]["min"] == min(summary["losses"])
        assert len(summary["individuals"]) == 4
        assert (run_dir / f"{generation:08d}" / "generation_loss_plot.png").is_file()
    for name in ("cma_plot.png", "loss_history.png", "cma_mo_plot.png"):  # what they draw: test_report_plots
        with Image.open(run_dir / name) as plot:
            assert plot.format == "PNG" and len(plot.convert("RGB").getcolors(1 << 16) or []) > 20
    assert not list(run_dir.rglob("*.tmp"))


def test_final_json_has_best_hall_of_fame_logbook_and_stop_reason(finished_run):
    run_dir, result, _, _ = finished_run
    final = json.loads((run_dir / FINAL_JSON).read_text())
    assert final["stop_reason"] == "completed"
    assert final["best"]["id"] == result.best.individual_id and final["best_training_loss"] == result.best.loss
    assert final["improvement"] == result.paired.to_dict() and final["improvement"]["basis"] == "your seeds"
    assert [h["id"] for h in final["hall_of_fame"]] == [r.individual_id for r in result.hall_of_fame]
    assert final["logbook"] == result.logbook
    assert final["original_prompt"] == INJECTED


def test_index_is_rewritten_after_every_generation(finished_run):
    _, _, _, pages = finished_run
    assert [page["run"]["generations"] for page in pages] == [1, 2, 3]
    assert [len(page["rows"]) for page in pages] == [1 + 4, 1 + 8, 1 + 12]
    assert all(page["run"]["status"] == "running" for page in pages)


class _Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.urls = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _page_data(text: str) -> dict:
    match = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', text, re.S)
    return json.loads(match.group(1))


def test_index_escapes_user_text_and_loads_nothing_remote(finished_run):
    run_dir, result, _, _ = finished_run
    text = (run_dir / INDEX_HTML).read_text(encoding="utf-8")
    elements = _Elements()
    elements.feed(text)
    assert elements.tags.count("script") == 2  # the data block and the page's own script
    assert "b" not in elements.tags  # the prompt's <b> stayed text
    assert text.lower().count("</script") == 2
    assert all(not re.match(r"^[a-z]+:", url) or url.startswith("data:") for url in elements.urls)
    assert not re.search(r"https?://", text.replace("http://www.w3.org/2000/svg", ""))
    data = _page_data(text)
    assert data["run"]["original_positive"] == INJECTED and data["run"]["status"] == "completed"
    assert data["best"]["id"] == result.best.individual_id
    assert "&lt;/script&gt;&lt;script&gt;window.__pwned=1" in text


def test_embedded_json_has_no_characters_that_end_a_script():
    value = {"p": "</script><!-- \u2028\u2029 & >"}
    text = embed_json(value)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == value


def test_interrupted_run_says_so_and_a_resumed_writer_keeps_old_individuals(tmp_path):
    from prompt_pinning.builtin import BuiltinRenderer
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning.run import run_pinning
    from prompt_pinning.run.evaluation_log import read_individuals

    config = PinningConfig(positive="a red circle", generation=GenerationSettings(seed=3, batch_size=2, steps=3,
                           width=16, height=16), cma_seed=1, generations=3, lambda_=2, cma_logging=False,
                           fade_guard=0.0, validation_batches=0, outdir=tmp_path)
    done = []
    result = run_pinning(config, BuiltinRenderer(), sink=ReportWriter(),
                         should_stop=lambda: bool(done) and done[-1] >= 3, progress=lambda s, d, t: done.append(d))
    run_dir = result.run_dir
    final = json.loads((run_dir / FINAL_JSON).read_text())
    assert final["stop_reason"] == "interrupted"
    assert (run_dir / "cma_plot.png").is_file() and not (run_dir / "cma_mo_plot.png").exists()  # limiter off
    assert _page_data((run_dir / INDEX_HTML).read_text())["run"]["status"] == "interrupted"
    journaled = sorted((e["generation"], e["index"]) for e in read_individuals(run_dir))
    assert len(journaled) >= 3
    resumed = ReportWriter()
    resumed.on_run_start(run_dir, {}, [])
    assert sorted(resumed._rows) == journaled  # the table of a resumed run: the journal's individuals
    resumed.on_finish(result)
    assert len(_page_data((run_dir / INDEX_HTML).read_text())["rows"]) == len(journaled)


def test_reports_are_complete_even_if_the_report_process_dies(tmp_path):
    class Killed(ReportWriter):  # the report process is killed after the first generation
        def on_generation(self, record, result):
            super().on_generation(record, result)
            if record.generation == 1:
                self._worker._child.kill()
                self._worker._child.wait()

    writer = Killed()
    synthetic_run(tmp_path / "run", writer, generations=2, population=2, batch=2, side=8)
    assert any("report process stopped" in error for error in writer.errors)
    for folder in (p.parent for p in (tmp_path / "run").glob("*/*/batch_stats.json")):
        assert (folder / "loss_plot.png").is_file() and (folder / "summary.gif").is_file()
    assert (tmp_path / "run" / INDEX_HTML).is_file() and (tmp_path / "run" / FINAL_JSON).is_file()


def test_atomic_writes_get_ordinary_file_permissions(tmp_path):
    import os

    from prompt_pinning.reports.files import atomic_write_text

    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / "index.html"
    atomic_write_text(target, "<p>x</p>")
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_units_table_change_is_the_weight_change_and_the_offset_is_shown_apart():
    from prompt_pinning.reports.html import _units_table
    from prompt_pinning.reports.page_data import unit_entries

    units = [UnitRow("red", "positive", 1.0, offset=-1.496, tightness=0.02),
             UnitRow("circle", "positive", 1.2, offset=0.3, tightness=0.04)]
    entries = unit_entries(units)
    assert entries[0]["change"] == pytest.approx(-0.504) and entries[0]["offset"] == -1.496
    table = _units_table(entries)
    headers = re.findall(r'data-key="(\w+)"', table)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]]
    change, offset = headers.index("change"), headers.index("offset")
    assert rows[0][change] == "-0.504" and rows[0][offset] == "-1.496"
    assert rows[1][change] == "+0.300" and rows[1][offset] == "+0.300"
    assert re.findall(r"<button[^>]*>(.*?)</button>", table)[change] == "Change"
