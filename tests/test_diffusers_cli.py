"""python -m prompt_pinning --diffusers PATH: a pinning run on the tiny random pipeline."""
import json

import pytest

from prompt_pinning.cli import main

SMALL = ["--prompt", "a red fox, in the snow", "--negative", "blurry", "--batch-size", "2", "--steps", "3",
         "--width", "64", "--height", "64", "--generations", "1", "--lambda", "2", "--validation-batches", "0",
         "--no-progress", "--threads", "1"]


def test_a_run_on_the_tiny_pipeline_writes_its_result(tiny_diffusers, tmp_path, capsys):
    code = main([*SMALL, "--diffusers", str(tiny_diffusers["sd15"]), "--diffusers-device", "cpu",
                 "--outdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = tmp_path / "txt2img-images" / "prompt_pins" / "00000000"
    final = json.loads((run_dir / "final_result.json").read_text())
    assert final["stop_reason"] == "completed"
    assert final["your_seeds"]["seeds"] == [1, 2]
    assert final["your_seeds"]["baseline_loss"] > 0
    saved = json.loads((run_dir / "run_config.json").read_text())
    host = saved["resolved"]["host"]
    assert host == {"renderer": "diffusers", "model": "sd15", "weights": host["weights"], "kind": "sd1",
                    "dtype": "float32"}
    assert "pinned prompt:" in out


@pytest.mark.parametrize("extra,fragment", [
    (["--sampler", "Heun"], "unknown sampler 'Heun'; valid: Euler, Euler a, DPM++ 2M"),
    (["--webui", "http://127.0.0.1:9"], "--diffusers: renders on this machine"),
])
def test_bad_diffusers_runs_are_one_line_errors(tiny_diffusers, tmp_path, capsys, extra, fragment):
    code = main([*SMALL, "--diffusers", str(tiny_diffusers["sd15"]), *extra, "--outdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "txt2img-images").exists()


def test_diffusers_options_without_a_model_are_refused(tmp_path, capsys):
    code = main([*SMALL, "--diffusers-device", "cpu", "--outdir", str(tmp_path)])
    assert code == 2 and "--diffusers-device: applies to --diffusers PATH only" in capsys.readouterr().err


def test_a_path_that_is_no_model_is_refused(tmp_path, capsys):
    code = main([*SMALL, "--diffusers", str(tmp_path / "nothing.bin"), "--outdir", str(tmp_path)])
    assert code == 2 and "neither a pipeline folder nor a .safetensors/.ckpt file" in capsys.readouterr().err


@pytest.mark.parametrize("device,fragment", [
    ("gpu", "--diffusers-device: 'gpu' is not a device; accepted: cpu, cuda or cuda:N"),
    ("cuda:x", "--diffusers-device: 'cuda:x' is not a device; accepted: cpu"),
    ("meta", "--diffusers-device: 'meta' is not a device; accepted: cpu"),
])
def test_a_bad_diffusers_device_is_a_one_line_error(tiny_diffusers, tmp_path, capsys, device, fragment):
    code = main([*SMALL, "--diffusers", str(tiny_diffusers["sd15"]), "--diffusers-device", device,
                 "--outdir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and len(err.strip().splitlines()) == 1


def test_cuda_without_cuda_is_refused_by_name(tiny_diffusers, tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code = main([*SMALL, "--diffusers", str(tiny_diffusers["sd15"]), "--diffusers-device", "cuda:0",
                 "--outdir", str(tmp_path)])
    assert code == 2 and "--diffusers-device: 'cuda:0': CUDA is not available" in capsys.readouterr().err
