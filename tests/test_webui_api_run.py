"""Pinning runs through fake WebUI servers: the same result however the work is spread."""
import json

import pytest

from fake_webui_api import FakeWebUI
from prompt_pinning.cli import main
from prompt_pinning.config import PinningConfig
from prompt_pinning.remote import WebUIApiRenderer
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.run import resume_pinning, run_pinning
from prompt_pinning.run.store import MemoryStore

GENERATION = GenerationSettings(seed=5, batch_size=2, steps=4, width=32, height=32, scheduler="karras")


def config(outdir=None) -> PinningConfig:
    return PinningConfig(positive="a red circle, on a blue background", negative="green", generation=GENERATION,
                         generations=2, lambda_=4, cma_seed=11, outdir=outdir or "unused")


def summary(result):
    """What a run decided, exactly: losses, the result's offsets, every logbook line."""
    return (result.stop_reason, result.best_loss, result.baseline_loss, result.best_validation_loss,
            result.best.offsets.tolist(), [(r.individual_id, r.loss) for r in result.hall_of_fame],
            [{k: v for k, v in line.items() if not k.endswith("seconds")} for line in result.logbook])


def evaluations(run_dir):
    lines = (run_dir / "evaluations.jsonl").read_text(encoding="utf-8").splitlines()
    return [(e.get("generation"), e.get("id"), e.get("loss")) for e in map(json.loads, lines)]


@pytest.fixture(scope="module")
def one_instance_result():
    with FakeWebUI() as alone:
        return summary(run_pinning(config(), WebUIApiRenderer([alone.url], timeout=10), store=MemoryStore()))


def test_a_run_on_three_instances_equals_the_run_on_one(one_instance_result):
    with FakeWebUI(delay=0.02) as fast, FakeWebUI(delay=0.1) as slow, FakeWebUI(delay=0.02, fail_after=1) as failing:
        renderer = WebUIApiRenderer([fast.url, slow.url, failing.url], timeout=10)
        result = run_pinning(config(), renderer, store=MemoryStore())
    assert summary(result) == one_instance_result
    assert result.stop_reason == "completed"
    assert fast.renders and slow.renders and len(failing.renders) == 1
    assert [f["instance"] for f in result.config["renderer"]["faults"]] == [failing.url]


def test_a_run_whose_instances_all_fail_stops_and_resumes_elsewhere(tmp_path, one_instance_result):
    with FakeWebUI(fail_after=4) as a, FakeWebUI(fail_after=3) as b:
        stopped = run_pinning(config(tmp_path), WebUIApiRenderer([a.url, b.url], timeout=10), raise_errors=False)
    assert stopped.stop_reason.startswith("error: NoInstanceLeft")
    run_dir = stopped.run_dir
    kept = evaluations(run_dir)
    assert kept and json.loads((run_dir / "run_state.json").read_text())["stop_reason"].startswith("error: NoInstanceLeft")
    with FakeWebUI() as other:
        resumed = resume_pinning(run_dir, WebUIApiRenderer([other.url], timeout=10))
    assert summary(resumed) == one_instance_result
    assert evaluations(run_dir)[:len(kept)] == kept
    assert len(other.renders) < sum(1 for _ in evaluations(run_dir)) + 3  # nothing done was redone


def test_the_command_line_runs_on_several_instances(tmp_path, capsys):
    with FakeWebUI() as a, FakeWebUI(delay=0.05) as b:
        code = main(["--webui", a.url, "--webui", b.url, "--prompt", "a red circle, on a blue background",
                     "--negative", "green", "--seed", "5", "--batch-size", "2", "--steps", "4", "--width", "32",
                     "--height", "32", "--generations", "2", "--lambda", "4", "--cma-seed", "11",
                     "--outdir", str(tmp_path), "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "stopped:         completed" in out.out
    assert len(a.renders) + len(b.renders) > 10
    index = next(tmp_path.glob("txt2img-images/prompt_pins/*/index.html")).read_text(encoding="utf-8")
    assert a.url in index and b.url in index  # the report's settings name the instances


def test_the_command_line_refuses_a_mismatch_and_credentials_in_the_url(tmp_path, capsys):
    with FakeWebUI() as a, FakeWebUI(options={"sd_checkpoint_hash": "other"}) as b:
        code = main(["--webui", a.url, "--webui", b.url, "--outdir", str(tmp_path / "out"), "--no-progress"])
        assert code == 2 and f"webui {b.url}: sd_checkpoint_hash is 'other'" in capsys.readouterr().err
        assert a.renders == b.renders == [] and not (tmp_path / "out").exists()
        code = main(["--webui", a.url.replace("http://", "http://ann:pw@"), "--outdir", str(tmp_path)])
        assert code == 2 and "credentials do not belong in the URL" in capsys.readouterr().err


def test_every_instance_gone_mid_run_prints_what_was_kept(tmp_path, capsys):
    with FakeWebUI(fail_after=3) as a:
        code = main(["--webui", a.url, "--seed", "5", "--batch-size", "2", "--steps", "4", "--width", "32",
                     "--height", "32", "--generations", "2", "--lambda", "4", "--outdir", str(tmp_path),
                     "--no-progress"])
    out = capsys.readouterr()
    assert code == 2 and "every WebUI instance failed" in out.err and a.url in out.err
    assert "stopped:         error: NoInstanceLeft" in out.out and "report:" in out.out
    # what was kept is reported, paired: the baseline was validated, so it is the result so far
    assert "validation seeds:" in out.out and "improvement +0.0%" in out.out and "best loss" not in out.out


def test_instance_urls_and_credentials_are_not_options_of_the_webui_form_or_api():
    import dataclasses

    from prompt_pinning.options import OPTIONS

    names = [o.name for o in OPTIONS] + [o.cli for o in OPTIONS] + [f.name for f in dataclasses.fields(PinningConfig)]
    assert not [n for n in names if "webui" in n.lower() or "auth" in n.lower() or "url" in n.lower()]


def test_without_open_clip_the_command_line_takes_the_clip_vocabulary_from_a_flag(tmp_path, capsys, monkeypatch):
    import importlib.util

    from prompt_pinning.prompt import tokenizers

    vocab = tmp_path / tokenizers.VOCAB_FILE
    vocab.write_bytes(tokenizers.find_clip_vocab().read_bytes())  # the file, as a user would copy it
    real = importlib.util.find_spec
    monkeypatch.setattr(tokenizers.importlib.util, "find_spec",
                        lambda name, *rest: None if name == "open_clip" else real(name, *rest))
    small = ["--seed", "5", "--batch-size", "2", "--steps", "2", "--width", "32", "--height", "32",
             "--generations", "1", "--lambda", "2", "--validation-batches", "0", "--no-progress"]
    with FakeWebUI() as a:
        assert main(["--webui", a.url, *small, "--outdir", str(tmp_path / "none")]) == 2
        assert "--webui-vocab FILE" in capsys.readouterr().err and not (tmp_path / "none").exists()
        assert main(["--webui", a.url, *small, "--webui-vocab", str(tmp_path / "x.gz"), "--outdir", str(tmp_path)]) == 2
        assert "--webui-vocab: " in capsys.readouterr().err
        code = main(["--webui", a.url, *small, "--webui-vocab", str(vocab), "--outdir", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0 and "stopped:         completed" in out.out, out.err


def test_the_readme_says_how_the_command_line_gets_the_clip_vocabulary():
    from pathlib import Path

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    section = readme[readme.index("## More than one GPU"):]
    assert "pip install --no-deps open-clip-torch" in section and "--webui-vocab FILE" in section
