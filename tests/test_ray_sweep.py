"""The sweep command: one run per prompt as Ray tasks, a summary table, and a rerun that resumes."""
import csv
import json
from dataclasses import replace

import pytest

ray = pytest.importorskip("ray")

from prompt_pinning.builtin import BuiltinRenderer  # noqa: E402
from prompt_pinning.cli import config_from_args  # noqa: E402
from prompt_pinning.distributed import sweep  # noqa: E402
from prompt_pinning.distributed.cli_ray import renderer_spec  # noqa: E402
from prompt_pinning.distributed.sweep import (  # noqa: E402
    check_options, pin_prompt, prompt_folder, renderer_of, sweep_main, sweep_parser)
from prompt_pinning.reports.writer import ReportWriter  # noqa: E402
from prompt_pinning.run import run_pinning  # noqa: E402
from prompt_pinning.run.checkpoint import read_individuals  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_session")  # one local Ray per module (conftest)
SMALL = ["--batch-size", "2", "--steps", "4", "--width", "32", "--height", "32", "--generations", "2",
         "--lambda", "3", "--initial-std", "0.3", "--validation-batches", "1", "--no-progress"]


def table(folder):
    with open(folder / "sweep.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def interrupted_run(args, prompt, home):
    """``prompt``'s run in the sweep's place for it, with the sweep's options, stopped after two evaluations."""
    config = replace(config_from_args(sweep_parser().parse_args(args)), positive=prompt, outdir=home)
    done = [0]
    result = run_pinning(config, BuiltinRenderer(), sink=ReportWriter(worker="thread"),
                         progress=lambda stage, count, total: done.__setitem__(0, count),
                         should_stop=lambda: done[0] >= 2)
    assert result.stop_reason == "interrupted" and result.run_dir == result_dir(home)


def result_dir(home):
    return home / "prompt_pins" / "00000000"


def test_a_sweep_runs_every_prompt_and_a_rerun_skips_finished_ones_and_resumes_the_rest(tmp_path, capsys):
    prompts = tmp_path / "shapes.txt"
    prompts.write_text("# shapes to pin\nred circle\n\nblue square | on green\n", encoding="utf-8")
    args = [str(prompts), "--ray", "local", *SMALL, "--outdir", str(tmp_path / "out")]
    assert sweep_main(args) == 0
    folder = tmp_path / "out" / "sweeps" / "shapes"
    rows = table(folder)
    assert [r["prompt"] for r in rows] == ["red circle", "blue square | on green"]
    assert [r["status"] for r in rows] == ["completed", "completed"]
    for row in rows:
        final = json.loads((folder / row["run"] / "final_result.json").read_text())
        assert final["original_prompt"] == row["prompt"] and final["stop_reason"] == "completed"
        assert row["gain"] == f"{final['improvement']['improvement'] * 100:+.1f}%"
        assert row["pinned_prompt"] == final["best"]["pos"] != ""
        assert row["basis"] == "validation seeds"  # the headline: the validation seeds chose the result
        # every unit with its pinned weight and where it acts (from the run's influence maps)
        units = row["units"].split("; ")
        assert len(units) == len(final["units"]) and all(" -> " in u and " @ " in u for u in units)
        assert [u.split(":")[0] for u in units] == [u["text"] for u in final["units"]]
    markdown = (folder / "sweep.md").read_text().splitlines()
    assert len(markdown) == 4 and "blue square \\| on green" in markdown[3]

    # A third prompt whose run was interrupted: the rerun resumes it and skips the two finished ones.
    prompts.write_text("red circle\nblue square | on green\ngreen triangle\n", encoding="utf-8")
    home = folder / "runs" / prompt_folder("green triangle")
    interrupted_run(args, "green triangle", home)
    assert sweep_main(args) == 0
    rows = table(folder)
    assert [r["status"] for r in rows] == ["done before", "done before", "completed (resumed)"]
    assert sorted(p.name for p in (home / "prompt_pins").iterdir()) == ["00000000"]
    slots = [(e["generation"], e["index"]) for e in read_individuals(result_dir(home))]
    assert len(set(slots)) == len(slots) and max(slots)[0] == 2  # each evaluation once, through generation 2


class RefusingRenderer(BuiltinRenderer):
    def check(self, generation):
        raise ValueError(f"sampler {generation.sampler!r} is not on this instance")


class RefusingSpec:
    options: dict = {}

    def build(self):
        return RefusingRenderer()


def test_a_new_prompt_run_checks_its_renderer_before_it_starts(tmp_path):
    config = config_from_args(sweep_parser().parse_args([str(tmp_path / "p.txt"), *SMALL]))
    row = pin_prompt(replace(config, positive="red circle"), RefusingSpec(), str(tmp_path / "home"))
    assert row["status"].startswith("error: ValueError: sampler ") and "is not on this instance" in row["status"]
    assert not (tmp_path / "home" / "prompt_pins").exists()  # refused before the run began


def test_a_numbered_gpu_with_ray_is_refused_naming_both_flags(tmp_path):
    args = sweep_parser().parse_args([str(tmp_path / "p.txt"), "--outdir", str(tmp_path)])
    config = config_from_args(args)
    for device in ("cuda:1", "cuda:0"):
        args.diffusers, args.diffusers_device = str(tmp_path / "model"), device
        expected = f"--diffusers-device: '{device}' with --ray: .* give --diffusers-device cuda"
        with pytest.raises(ValueError, match=expected):
            renderer_spec(args, config)
    args.diffusers_device = "cuda"
    assert renderer_spec(args, config).options["device"] == "cuda"


def test_a_rerun_with_other_options_or_a_bad_prompt_file_is_refused(tmp_path, capsys, monkeypatch):
    prompts = tmp_path / "p.txt"
    prompts.write_text("red circle\n", encoding="utf-8")
    first = [str(prompts), "--outdir", str(tmp_path), "--lambda", "5"]
    parsed = sweep_parser().parse_args(first)
    config = config_from_args(parsed)
    check_options(tmp_path / "sweeps" / "p", config, ["red circle"], renderer_of(parsed, config))
    assert sweep_main([*first[:-1], "3"]) == 2
    assert "run with other options (lambda_ 5 then, 3 now); rerun it" in capsys.readouterr().err
    # another model: the prompts finished on the built-in one are not done on it
    assert sweep_main([*first, "--webui", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "renderer {'kind': 'builtin', 'target': None} then" in err and "http://127.0.0.1:9" in err
    prompts.write_text("red circle\nblue\n red circle \n", encoding="utf-8")
    assert sweep_main([str(prompts), "--outdir", str(tmp_path)]) == 2
    assert "a prompt is listed twice: 'red circle'" in capsys.readouterr().err
    monkeypatch.setattr(sweep, "MAX_PROMPT_BYTES", 10)
    assert sweep_main([str(prompts), "--outdir", str(tmp_path)]) == 2
    assert f"PROMPTS: {prompts}: 29 bytes; at most 10 bytes" in capsys.readouterr().err
    monkeypatch.undo()
    prompts.write_text("# nothing\n\n", encoding="utf-8")
    assert sweep_main([str(prompts), "--outdir", str(tmp_path)]) == 2
    assert "holds no prompt" in capsys.readouterr().err
    assert sweep_main([str(prompts), "--prompt", "x"]) == 2
    assert "--prompt: a sweep takes its prompts from PROMPTS" in capsys.readouterr().err
    prompts.write_text("red circle\n", encoding="utf-8")
    assert sweep_main([str(prompts), "--outdir", str(tmp_path), "--sampler", "Nope"]) == 2
    assert "Nope" in capsys.readouterr().err
    assert sweep_main([str(prompts), "--outdir", str(tmp_path), "--ray-actors", "0"]) == 2
    assert "--ray-actors: must be >= 1" in capsys.readouterr().err
