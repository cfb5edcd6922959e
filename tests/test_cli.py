"""The command line: a real run on the built-in model, and one-line errors."""
import json
import re
import subprocess
import sys
import zlib
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
    kept = result_line["loss"] < paired["baseline_loss"]  # else the user's prompt is the result
    assert paired["result_loss"] == pytest.approx(result_line["loss"] if kept else paired["baseline_loss"])
    assert final["best"]["id"] == (result_line["id"] if kept else evaluations[0]["id"])
    assert result_line["seeds"] == evaluations[0]["seeds"]  # shown on the user's seeds
    assert _paired(out, "your seeds") == pytest.approx((paired["baseline_loss"], paired["result_loss"]), abs=1e-6)
    assert paired["seeds"] == [1, 2] and re.search(r"your seeds: .* on seeds 1-2 ", out)
    # The options reached the run.
    saved = json.loads((run_dir / "run_config.json").read_text())
    assert (saved["config"]["generations"], saved["config"]["lambda_"]) == (2, 3)
    assert saved["config"]["validation_batches"] == 0 and saved["config"]["initial_std"] == 0.07
    assert (saved["config"]["generation"]["batch_size"], saved["config"]["generation"]["steps"]) == (2, 4)
    assert saved["resolved"]["lambda_"] == 3 and saved["resolved"]["sigma"] == 0.07
    assert str(run_dir / "index.html") in out
    assert "pinned prompt:" in out
    # the files a WebUI serves hold no absolute path of the server
    for name in ("index.html", "final_result.json", "run_config.json"):
        assert str(tmp_path) not in (run_dir / name).read_text(), name
    assert final["config"]["run_dir"] == "txt2img-images/prompt_pins/00000000"
    assert saved["config"]["outdir"] == "txt2img-images"


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--steps", "x"], "--steps: invalid int value"),
        (["--steps", "0"], "--steps: must be a whole number >= 1"),
        (["--batch-size", "0"], "--batch-size: must be a whole number >= 1"),
        (["--weights", "quadratic"], "--weights: invalid choice"),
        (["--initial-std", "-1"], "--initial-std: must be > 0"),
        (["--sampler", "No Such Sampler"], "No Such Sampler"),
        (["--scheduler", "linear"], "--scheduler: unknown schedule"),
        (["--prompt", "(a:1) AND b"], "AND"),
        (["--target", "/nonexistent/target.png"], "/nonexistent/target.png"),
        (["--lambda", "1"], "--lambda: must be >= 2"),
        (["--generations", "1000000000"], "--generations: must be <= 10,000"),
        (["--cmatrix", "[[1, 0], [0]]"], "--cmatrix: must be square"),
        (["--threads", "-1"], "--threads: must be >= 0"),
        (["--resume", "/nonexistent/run"], "/nonexistent/run: no such run folder"),
    ],
)
def test_bad_options_give_one_line_errors(tmp_path, args, fragment):
    result = subprocess.run(
        [sys.executable, "-m", "prompt_pinning", *([] if args[0] == "--resume" else [*SMALL, "--outdir", str(tmp_path)]),
         *args],
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
    # the CLI sets its process's count, and so do Ray's worker processes (actor.py); the built-in
    # model samples on one thread and puts it back
    assert setters == ["actor.py", "cli.py", "denoiser.py"]
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


def _evaluations(log: Path) -> list[dict]:
    """The journal's evaluated individuals (not its reference, validation or closing lines)."""
    if not log.exists():
        return []
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return [e for e in entries if "offsets" in e and not e.get("reference") and not e.get("validation")]


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_prints_the_best_so_far(tmp_path):
    import os
    import signal
    import time

    # A terminal's Ctrl-C goes to the whole process group: the run and its report process.
    proc = subprocess.Popen(
        [sys.executable, "-m", "prompt_pinning", *SMALL[:-5], "--generations", "500",
         "--lambda", "3", "--validation-batches", "0", "--no-progress", "--outdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = tmp_path / "txt2img-images" / "prompt_pins" / "00000000" / "evaluations.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_evaluations(log)) < 7:  # the baseline and 2 generations
        time.sleep(0.2)
    sent = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    exited = time.monotonic() - sent
    assert proc.returncode == 0, err
    assert exited < 10, exited  # the queued plots are not waited for (2 s when idle)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "stopped:         interrupted" in out
    evaluated = _evaluations(log)
    assert 7 <= len(evaluated) < 1 + 500 * 3  # stopped part way, keeping what it had done
    # no unpaired comparison is printed for a run stopped before its result was scored
    assert "improvement:     not measured" in out and "best loss" not in out
    state = (log.parent / "run_state.json").read_text()
    assert "interrupted" in state
    assert json.loads((log.parent / "final_result.json").read_text())["stop_reason"] == "interrupted"
    assert f"python -m prompt_pinning report {log.parent}" in out
    # the report is finished on demand, from the folder alone
    done = subprocess.run([sys.executable, "-m", "prompt_pinning", "report", str(log.parent)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert str(log.parent / "index.html") in done.stdout
    page = (log.parent / "index.html").read_text()
    assert "interrupted" in page and (log.parent / "loss_history.png").is_file()
    for entry in evaluated:
        folder = log.parent / entry["folder"]
        assert (folder / "loss_plot.png").is_file() and (folder / "summary.gif").is_file(), folder
        assert (folder.parent / "generation_loss_plot.png").is_file()
    assert (log.parent / "run_state.json").read_text() == state  # drawing the report changed nothing of the run


def test_report_command_refuses_a_folder_it_cannot_read(tmp_path):
    done = subprocess.run([sys.executable, "-m", "prompt_pinning", "report", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("prompt-pinning report: error:") and "none" in done.stderr


def test_negative_prompt_defaults_to_none_and_the_demo_passes_its_own():
    from prompt_pinning.cli import build_parser

    args = build_parser().parse_args(["--prompt", "a blue square"])
    assert args.negative == ""
    makefile = (Path(__file__).resolve().parent.parent / "Makefile").read_text()
    (demo,) = [line for line in makefile.splitlines() if "-m prompt_pinning" in line]
    assert "--negative green" in demo


def test_target_takes_several_paths_after_one_flag_and_says_so():
    from prompt_pinning.cli import build_parser

    args = build_parser().parse_args(["--target", "a.png", "b.png", "--target", "c.png", "--steps", "3"])
    assert args.targets == ["a.png", "b.png", "c.png"] and args.steps == 3
    assert "several paths after one --target" in " ".join(build_parser().format_help().split())
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert "--target a.png b.png" in readme


def test_resume_refuses_the_flags_it_would_ignore_by_name(tmp_path, capsys):
    code = main(["--resume", str(tmp_path), "--generations", "40", "--prompt", "a blue square", "--no-progress"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("prompt-pinning: error:") == 1
    assert "so --prompt, --generations would be ignored" in error and "--no-progress" not in error
    # flags a resume still uses are accepted: the error is then about the folder
    assert main(["--resume", str(tmp_path), "--no-progress", "--threads", "1"]) == 2
    assert "prompt_pinning_run.json: missing" in capsys.readouterr().err


def test_errors_name_the_flag_not_the_config_key(tmp_path, capsys):
    assert main(["--batch-size", "0", "--outdir", str(tmp_path), "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "--batch-size: must be a whole number >= 1" in error and "batch_size" not in error
    bad = tmp_path / "mask.png"
    bad.write_text("not an image")
    assert main(["--target-mask", str(bad), "--outdir", str(tmp_path), "--no-progress", *SMALL]) == 2
    assert f"--target-mask {bad}" in capsys.readouterr().err


def test_bad_targets_and_masks_leave_no_run_folder(tmp_path, capsys):
    from PIL import Image

    text = tmp_path / "text.png"
    text.write_text("not an image")
    black = tmp_path / "black.png"
    Image.new("L", (8, 8), 0).save(black)
    bomb = tmp_path / "bomb.png"  # a valid PNG whose header claims 60000 x 60000 pixels
    Image.new("L", (1, 1)).save(bomb)
    data = bytearray(bomb.read_bytes())
    data[16:24] = (60000).to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC
    bomb.write_bytes(bytes(data))
    errors = [["--target", str(text)], ["--target", str(tmp_path / "missing.png")], ["--target-mask", str(text)],
              ["--target-mask", str(black)], ["--target-mask", str(bomb)]]
    for args in errors:
        assert main([*SMALL, "--outdir", str(tmp_path / "out"), *args]) == 2, args
        err = capsys.readouterr().err
        assert "prompt-pinning: error:" in err and "Traceback" not in err, err
    runs = tmp_path / "out" / "txt2img-images" / "prompt_pins"
    assert not runs.exists() or list(runs.iterdir()) == []


def test_cma_logging_prints_the_logbook_line_and_the_flag_turns_it_off(tmp_path):
    tiny = ["--batch-size", "1", "--steps", "2", "--width", "16", "--height", "16", "--generations", "1",
            "--lambda", "2", "--validation-batches", "0", "--fade-guard", "0", "--no-progress"]
    for flag, shown in (([], True), (["--no-cma-logging"], False)):
        result = subprocess.run([sys.executable, "-m", "prompt_pinning", *tiny, *flag, "--outdir", str(tmp_path)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert ("gen 1  min " in result.stderr) is shown, result.stderr


@pytest.mark.slow
def test_network_strengths_are_units_of_a_cli_run_and_its_summary(tmp_path, capsys):
    code = main([*SMALL, "--generations", "1", "--validation-batches", "0", "--outdir", str(tmp_path),
                 "--prompt", "a red circle <lora:size:0.5:0.7>", "--negative", "blue", "--network-units"])
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = tmp_path / "txt2img-images" / "prompt_pins" / "00000000"
    final = json.loads((run_dir / "final_result.json").read_text())
    units = [(u["kind"], u["text"], u["base_weight"]) for u in final["units"]]
    assert units == [("word", "a", 1.0), ("word", "red", 1.0), ("word", "circle", 1.0),
                     ("lora te", "size", 0.5), ("lora unet", "size", 0.7), ("word", "blue", 1.0)]
    te, unet = final["units"][3:5]
    assert te["pinned_weight"] == pytest.approx(0.5 + te["offset"])  # signed, not |base + offset|
    assert abs(te["offset"]) <= 1.0 and abs(unet["offset"]) <= 1.0  # within reach of the user's value
    lines = [line for line in out.splitlines() if " size: " in line]
    assert lines == [f"strength:        lora te size: 0.5 -> {round(0.5 + te['offset'], 4):g} (positive)",
                     f"                 lora unet size: 0.7 -> {round(0.7 + unet['offset'], 4):g} (positive)"]
    assert re.search(r"^pinned prompt: .*<lora:size:[-0-9.]+:[-0-9.]+>$", out, re.MULTILINE)
