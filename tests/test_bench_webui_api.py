"""The WebUI API benchmark runs at a tiny size and measures what it says."""
from bench_webui_api import main, measure, png_costs
from prompt_pinning.rendering import GenerationSettings

SMALL = GenerationSettings(seed=1, batch_size=2, steps=4, width=16, height=16, scheduler="karras")


def test_measure_spreads_a_generation_and_times_it_against_the_ideal():
    row = measure(2, 4, 0.05, SMALL, repeats=1)
    assert sum(row["shares"]) == 4 and min(row["shares"]) >= 1
    assert row["ideal"] == 0.1 and row["wall"] >= row["ideal"]
    assert row["overhead_ms"] == 1000 * (row["wall"] - row["ideal"]) / 4


def test_png_costs_and_the_printed_table(capsys):
    encode, decode = png_costs(SMALL, repeats=1)
    assert encode > 0 and decode > 0
    assert main(["--delay", "0.02", "--individuals", "3", "--batch-size", "1", "--size", "16", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[1].strip() for line in lines[3:6]] == ["1", "2", "3"]
    assert lines[6].startswith("PNG per individual")
