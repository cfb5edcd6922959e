"""A run records what rendered it (its fingerprint) and a resume on something else is refused by name."""
import json

import pytest
from PIL import Image

from fake_webui_api import FakeWebUI
from prompt_pinning.builtin import BuiltinRenderer
from prompt_pinning.remote import WebUIApiRenderer
from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run import resume_pinning, run_pinning
from test_webui_api_run import config


def stopped_run(tmp_path, renderer):
    run = run_pinning(config(tmp_path), renderer, should_stop=lambda: True)
    assert run.stop_reason == "interrupted"
    return run.run_dir


def saved_host(run_dir):
    return json.loads((run_dir / ckpt.CONFIG_FILE).read_text())["resolved"]["host"]


def test_a_fan_out_run_records_its_instances_options_and_refuses_another_checkpoint(tmp_path):
    with FakeWebUI() as a, FakeWebUI() as b:
        run_dir = stopped_run(tmp_path, WebUIApiRenderer([a.url, b.url], timeout=10))
        host = saved_host(run_dir)
        assert host["renderer"] == "webui-api" and host["instances"] == [a.url, b.url]
        assert host["sd_checkpoint_hash"] == a.options["sd_checkpoint_hash"] and host["init_images"] == []
    with FakeWebUI(options={"sd_checkpoint_hash": "ffffffffff"}) as other:
        with pytest.raises(ckpt.ResumeError, match=r"sd_checkpoint_hash: the run used .*'ffffffffff'"):
            resume_pinning(run_dir, WebUIApiRenderer([other.url], timeout=10))
    with pytest.raises(ckpt.ResumeError, match=r"renderer: the run used 'webui-api', this renderer has 'builtin'"):
        resume_pinning(run_dir, BuiltinRenderer())
    with FakeWebUI() as same:  # other instances with the same settings: the instance set is not compared
        resumed = resume_pinning(run_dir, WebUIApiRenderer([same.url], timeout=10), should_stop=lambda: True)
    assert resumed.stop_reason == "interrupted"


def test_an_img2img_run_refuses_another_init_image(tmp_path):
    red, blue = Image.new("RGB", (32, 32), (200, 0, 0)), Image.new("RGB", (32, 32), (0, 0, 200))
    with FakeWebUI() as a:
        run_dir = stopped_run(tmp_path, WebUIApiRenderer([a.url], timeout=10, init_images=[red]))
        assert len(saved_host(run_dir)["init_images"]) == 1
        with pytest.raises(ckpt.ResumeError, match=r"init_images: the run used \['[0-9a-f]{16}'\]"):
            resume_pinning(run_dir, WebUIApiRenderer([a.url], timeout=10, init_images=[blue]))
        with pytest.raises(ckpt.ResumeError, match=r"init_images"):
            resume_pinning(run_dir, WebUIApiRenderer([a.url], timeout=10))


def test_a_run_saved_before_the_renderer_kind_was_recorded_compares_its_own_parts(tmp_path):
    with FakeWebUI() as a:
        run_dir = stopped_run(tmp_path, WebUIApiRenderer([a.url], timeout=10))
        path = run_dir / ckpt.CONFIG_FILE
        saved = json.loads(path.read_text())
        saved["resolved"]["host"] = {}  # what such a run recorded
        path.write_text(json.dumps(saved))
        resumed = resume_pinning(run_dir, WebUIApiRenderer([a.url], timeout=10), should_stop=lambda: True)
    assert resumed.stop_reason == "interrupted"


def test_the_webui_fingerprint_reads_the_requests_overrides_and_hashes_its_images():
    import webui_stand_in

    webui_stand_in.install()
    from types import SimpleNamespace

    from modules import processing, sd_models, shared

    from prompt_pinning_webui.renderer import A1111Renderer

    webui_stand_in.reset()
    sd_models.checkpoints_list.update({"base.safetensors [aaaa1111]": sd_models.CheckpointInfo("base", "aaaa1111"),
                                       "other.safetensors [bbbb2222]": sd_models.CheckpointInfo("other", "bbbb2222")})
    shared.sd_model = SimpleNamespace(sd_checkpoint_info=sd_models.checkpoints_list["base.safetensors [aaaa1111]"])

    def fingerprint(**changes):
        p = processing.StableDiffusionProcessingTxt2Img(prompt="red", seed=1, batch_size=2, steps=3, width=16,
                                                        height=16, outpath_samples="unused", **changes)
        for name, value in changes.pop("later", {}).items():
            setattr(p, name, value)
        return A1111Renderer(p, max_images_per_call=2, tokenizer=object()).host_settings()

    plain = fingerprint()
    assert plain["model"] == "aaaa1111" and plain["mode"] == "txt2img" and plain["mask"] == "none"
    changed = fingerprint(override_settings={"sd_model_checkpoint": "other.safetensors", "sd_vae": "x.vae.pt",
                                             "CLIP_stop_at_last_layers": 2, "eta_ancestral": 0.5})
    assert (changed["model"], changed["vae"], changed["clip_skip"]) == ("bbbb2222", "x.vae.pt", 2)
    assert changed["options"]["eta_ancestral"] == 0.5 != plain["options"]["eta_ancestral"]
    red, blue = Image.new("RGB", (16, 16), (200, 0, 0)), Image.new("RGB", (16, 16), (0, 0, 200))
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red", seed=1, batch_size=2, steps=3, width=16,
                                                    height=16, outpath_samples="unused")
    prints = []
    for init, mask in ((red, None), (blue, None), (red, Image.new("L", (16, 16), 255))):
        p.init_images, p.image_mask = [init], mask
        prints.append(A1111Renderer(p, max_images_per_call=2, tokenizer=object()).host_settings())
    assert prints[0]["mode"] == "img2img" and prints[0]["init_images"] != prints[1]["init_images"]
    assert prints[0]["init_images"] == prints[2]["init_images"] and prints[2]["mask"] not in ("none", prints[0]["mask"])
    sd_models.checkpoints_list.clear()


def test_on_forge_the_fingerprint_names_the_checkpoint_to_load_and_the_vae_modules():
    import forge_stand_in
    import webui_stand_in

    webui_stand_in.install()
    from modules import processing, shared

    from prompt_pinning_webui.renderer import A1111Renderer

    webui_stand_in.reset()
    forge_stand_in.install()
    try:
        shared.opts.forge_additional_modules = ["/models/VAE/sdxl_vae.safetensors"]
        p = processing.StableDiffusionProcessingTxt2Img(prompt="red", seed=1, batch_size=2, steps=3, width=16,
                                                        height=16, outpath_samples="unused")
        found = A1111Renderer(p, max_images_per_call=2, tokenizer=object()).host_settings()
        assert found["model"] == forge_stand_in.CHECKPOINT and found["vae"] == "sdxl_vae.safetensors"
    finally:
        webui_stand_in.reset()


def test_a_fan_out_instance_that_renders_differently_is_refused_before_the_run(tmp_path):
    from prompt_pinning.remote.renderer import InstanceMismatch

    settings = config(tmp_path).generation
    with FakeWebUI() as a, FakeWebUI() as b, FakeWebUI(drift=1) as odd:
        with pytest.raises(InstanceMismatch, match=rf"webui {odd.url}: the canary request .* other images than on "
                                                   rf"{a.url} .*no option differs"):
            WebUIApiRenderer([a.url, b.url, odd.url], timeout=10).check(settings)
        assert [len(x.renders) for x in (a, b, odd)] == [1, 1, 1]  # one canary each
        WebUIApiRenderer([a.url, b.url], timeout=10).check(settings)  # the same images: accepted
        assert a.renders[-1] == b.renders[-1]
    with FakeWebUI() as a, FakeWebUI(vae_hash="0000000000") as other_vae:
        with pytest.raises(InstanceMismatch, match=r"sd_vae_hash '0000000000' there"):
            WebUIApiRenderer([a.url, other_vae.url], timeout=10).check(settings)


def test_the_command_line_refuses_a_drifting_instance_before_any_folder(tmp_path, capsys):
    from prompt_pinning.cli import main

    with FakeWebUI() as a, FakeWebUI(drift=1) as odd:
        code = main(["--webui", a.url, "--webui", odd.url, "--seed", "5", "--batch-size", "2", "--steps", "4",
                     "--width", "32", "--height", "32", "--generations", "1", "--lambda", "4",
                     "--outdir", str(tmp_path / "out"), "--no-progress"])
        assert code == 2 and f"webui {odd.url}: the canary request" in capsys.readouterr().err
        assert not (tmp_path / "out").exists()


def test_a_part_the_renderer_cannot_know_is_recorded_as_unknown_and_shown_in_the_report(outdir):
    from prompt_pinning.reports import ReportWriter
    from test_run import FakeRenderer, make_config
    from test_run import run_pinning as run_fake

    class VaeUnknown(FakeRenderer):
        def host_settings(self):
            return {"model": "abc123", "vae": None}

    result = run_fake(make_config(outdir, generations=1), VaeUnknown(), sink=ReportWriter(worker="thread"))
    assert saved_host(result.run_dir) == {"renderer": "fake", "model": "abc123", "vae": "unknown"}
    page = (result.run_dir / "index.html").read_text(encoding="utf-8")
    assert '"vae": "unknown"' in page or '"vae":"unknown"' in page
