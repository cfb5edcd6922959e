"""The command line: a real run on the built-in model, and one-line errors."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from prompt_pinning.cli import main

SMALL = ["--batch-size", "2", "--steps", "4", "--width", "32", "--height", "32",
         "--generations", "2", "--lambda", "3", "--no-progress"]


def _paired(text: str, basis: str) -> tuple[float, float]:
    """(unmodified, pinned) from the summary line of ``basis``."""
    match = re.search(rf"^{basis}:\s*unmodified ([0-9.]+), pinned ([0-9.]+)", text, re.MULTILINE)
    assert match, f"no '{basis}' line in:\n{text}"
    return float(match.group(1)), float(match.group(2))


@pytest.mark.slow
def test_cli_run_renders_every_generation_and_its_report_matches_the_evaluations(tmp_path, capsys):
    code = main([*SMALL, "--initial-std", "0.07", "--validation-batches", "0", "--outdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = tmp_path / "txt2img-images" / "prompt_pins" / "00000000"
    assert (run_dir / "index.html").is_file()
    generations = sorted(p.name for p in run_dir.iterdir() if p.is_dir() and p.name != "kept")  # kept: images
    assert generations == ["00000000", "00000001", "00000002", "result"]
    assert len(list((run_dir / "result").glob("*.png"))) == 2  # the result on the user's seeds
    individuals = [p for p in (run_dir / "00000001").iterdir() if p.is_dir()]
    assert len(individuals) == 3
    assert all(len(list(p.glob("[0-9][0-9]-*.png"))) == 2 for p in individuals)
    # Every generation really ran: the baseline on seeds 1 and 2, then 2 generations of lambda_ = 3,
    # each on its own fresh seeds (the rotating schedule, the default).
    journal = [json.loads(line) for line in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    evaluations = [e for e in journal if "offsets" in e]
    (result_line,) = [e for e in journal if e.get("final")]
    assert [e["generation"] for e in evaluations] == [0, 1, 1, 1, 2, 2, 2, 2]  # + the search mean
    assert all(e["seeds"] == [1 + 2 * e["generation"], 2 + 2 * e["generation"]] for e in evaluations)
    # CMA proposed new points each time (the mean of lambda_ 3's single parent is that parent)
    assert len({tuple(e["offsets"]) for e in evaluations if not e["extra"].get("centroid")}) == 7
    # The report parses and agrees with the evaluations and with what was printed.
    final = json.loads((run_dir / "final_result.json").read_text())
    assert final["stop_reason"] == "completed"
    paired = final["your_seeds"]
    assert final["improvement"] == paired and paired["basis"] == "your seeds"
    assert paired["baseline_loss"] == pytest.approx(evaluations[0]["loss"])
    assert paired["result_loss"] == pytest.approx(result_line["loss"])
    assert result_line["seeds"] == evaluations[0]["seeds"]  # shown on the user's seeds
    assert _paired(out, "your seeds") == pytest.approx((paired["baseline_loss"], paired["result_loss"]), abs=1e-6)
    # The options reached the run.
    saved = json.loads((run_dir / "run_config.json").read_text())
    assert (saved["config"]["generations"], saved["config"]["lambda_"]) == (2, 3)
    assert saved["config"]["validation_batches"] == 0 and saved["config"]["initial_std"] == 0.07
    assert (saved["config"]["generation"]["batch_size"], saved["config"]["generation"]["steps"]) == (2, 4)
    assert saved["resolved"]["lambda_"] == 3 and saved["resolved"]["sigma"] == 0.07
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
        (["--lambda", "1"], "lambda_: must be >= 2"),
        (["--generations", "1000000000"], "generations: must be <= 10,000"),
        (["--cmatrix", "[[1, 0], [0]]"], "cmatrix: must be square"),
        (["--threads", "-1"], "--threads: must be >= 0"),
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


def test_progress_bar_draws_at_most_once_per_step_and_logs_go_above_it(capsys):
    import logging

    from prompt_pinning.cli import _logs_above_the_bar, _ProgressBar

    handler = logging.StreamHandler(sys.stderr)
    logging.root.addHandler(handler)
    try:
        bar = _ProgressBar(True)
        with _logs_above_the_bar(True):
            for done in range(1, 41):
                bar("generation 1/1", done, 40)
            logging.getLogger("prompt_pinning.run").warning("gen 1/1 logbook line")
        bar.close()
    finally:
        logging.root.removeHandler(handler)
    err = capsys.readouterr().err
    draws = [part for part in err.split("\r") if "individual" in part]
    assert 1 <= len(draws) <= 10  # 40 steps; tqdm redraws at most every 0.1 s
    assert "40/40" in draws[-1] and draws[-1].startswith("generation 1/1")
    line = next(part for part in err.split("\r") if "logbook line" in part)
    assert line.startswith("gen 1/1 logbook line") and "individual" not in line  # its own line, not in the bar


def test_threads_are_set_by_the_command_line_only():
    import torch

    from prompt_pinning.cli import DEFAULT_THREADS, build_parser, set_threads

    assert build_parser().parse_args([]).threads == DEFAULT_THREADS == 1
    before = torch.get_num_threads()
    set_threads(0)  # 0: leave torch's default alone
    assert torch.get_num_threads() == before
    engine = Path(__file__).resolve().parent.parent / "prompt_pinning"
    setters = sorted(p.name for p in engine.rglob("*.py") if "set_num_threads" in p.read_text())
    # the CLI sets its process's count; the built-in model samples on one thread and puts it back
    assert setters == ["cli.py", "denoiser.py"]
    from prompt_pinning.builtin import BuiltinRenderer
    from prompt_pinning.rendering import GenerationSettings

    torch.set_num_threads(2)
    try:
        BuiltinRenderer().render([("a red circle", "")], GenerationSettings(seed=1, batch_size=2, steps=2, width=16,
                                                                           height=16))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
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
    assert "(default: 0.1)" in result.stdout  # initial population STD
    assert "int(16 * floor(ln N))" in " ".join(result.stdout.split())


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
         "--lambda", "3", "--validation-batches", "0", "--no-progress", "--outdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = tmp_path / "txt2img-images" / "prompt_pins" / "00000000" / "evaluations.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not log.exists() or len(log.read_text().splitlines()) < 4):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "stopped:         interrupted" in out
    evaluated = [e["loss"] for e in map(json.loads, log.read_text().splitlines()) if "offsets" in e]
    assert 4 <= len(evaluated) < 1 + 500 * 3  # stopped part way, keeping what it had done
    # no unpaired comparison is printed for a run stopped before its result was scored
    assert "improvement:     not measured" in out and "best loss" not in out
    state = (log.parent / "run_state.json").read_text()
    assert "interrupted" in state
    assert (log.parent / "index.html").is_file()
