"""The command line: a real run on the built-in model, and one-line errors."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prompt_pinning.cli import main

SMALL = ["--batch-size", "2", "--steps", "4", "--width", "32", "--height", "32",
         "--generations", "2", "--lambda", "3", "--no-progress"]


def _loss(text: str, label: str) -> float:
    match = re.search(rf"^{label}:\s+([0-9.]+)", text, re.MULTILINE)
    assert match, f"no '{label}' line in:\n{text}"
    return float(match.group(1))


@pytest.mark.slow
def test_cli_run_writes_report_and_prints_best_no_worse_than_baseline(tmp_path, capsys):
    code = main([*SMALL, "--outdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = tmp_path / "txt2img-images" / "prompt_pins" / "00000000"
    assert (run_dir / "index.html").is_file()
    assert (run_dir / "final_result.json").is_file()
    generations = sorted(p.name for p in run_dir.iterdir() if p.is_dir())
    assert generations == ["00000000", "00000001", "00000002"]
    individuals = [p for p in (run_dir / "00000001").iterdir() if p.is_dir()]
    assert len(individuals) == 3
    assert all(len(list(p.glob("[0-9][0-9]-*.png"))) == 2 for p in individuals)
    assert _loss(out, "best loss") <= _loss(out, "baseline loss")
    assert str(run_dir / "index.html") in out
    assert "pinned prompt:" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--steps", "x"], "--steps: invalid int value"),
        (["--steps", "0"], "steps: must be a whole number >= 1"),
        (["--weights", "quadratic"], "--weights: invalid choice"),
        (["--initial-std", "-1"], "initial_std: must be > 0"),
        (["--sampler", "No Such Sampler"], "No Such Sampler"),
        (["--scheduler", "linear"], "--scheduler: unknown schedule"),
        (["--prompt", "(a:1) AND b"], "AND"),
        (["--target", "/nonexistent/target.png"], "/nonexistent/target.png"),
        (["--resume", "/nonexistent/run"], "/nonexistent/run: no such run folder"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, args, fragment):
    result = subprocess.run(
        [sys.executable, "-m", "prompt_pinning", *SMALL, "--outdir", str(tmp_path), *args],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("prompt-pinning: error:")]
    assert len(errors) == 1 and fragment in errors[0], result.stderr
    assert "Traceback" not in result.stderr


def test_resume_of_a_folder_the_project_did_not_make_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "evaluations.jsonl").write_text("someone else's\n")
    assert main(["--resume", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "prompt_pinning_run.json: missing" in error and "Traceback" not in error
    assert (tmp_path / "evaluations.jsonl").read_text() == "someone else's\n"


def test_help_documents_defaults():
    result = subprocess.run([sys.executable, "-m", "prompt_pinning", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "(default: 0.05)" in result.stdout  # initial population STD
    assert "int(16 * floor(log N))" in " ".join(result.stdout.split())


def test_list_samplers_includes_hyperbatch():
    result = subprocess.run([sys.executable, "-m", "prompt_pinning", "--list-samplers"],
                            capture_output=True, text=True, timeout=60)
    assert "DPM++ 2M Karras - Hyperbatch" in result.stdout.splitlines()


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_prints_the_best_so_far(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "prompt_pinning", *SMALL[:-5], "--generations", "500",
         "--lambda", "3", "--no-progress", "--outdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "txt2img-images" / "prompt_pins" / "00000000" / "evaluations.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped:         interrupted" in out
    assert _loss(out, "best loss") <= _loss(out, "baseline loss")
    state = (log.parent / "run_state.json").read_text()
    assert "interrupted" in state
    assert (log.parent / "index.html").is_file()
