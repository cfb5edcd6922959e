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


def _journal(run_dir):
    return [json.loads(line) for line in (run_dir / ckpt.EVALUATIONS_FILE).read_text().splitlines()]


class _Swappable:
    """A fake renderer whose model is swapped after ``swap_after`` render calls (a host changed mid-run)."""

    def __new__(cls, swap_after=None):
        from test_run import FakeRenderer

        class Renderer(FakeRenderer):
            model = "aaaa1111"

            def host_settings(self):
                return {"model": self.model}

            def render(self, prompts, settings, progress=None):
                out = super().render(prompts, settings, progress)
                if swap_after is not None and len(self.calls) == swap_after:
                    self.model = "bbbb2222"
                return out
        return Renderer()


def test_every_render_line_names_the_journaled_fingerprint(outdir):
    from test_run import make_config
    from test_run import run_pinning as run_fake

    from prompt_pinning.run.fingerprint import fingerprint_hash

    result = run_fake(make_config(outdir, generations=2, validation_batches=1), _Swappable())
    assert result.stop_reason == "completed"
    lines = _journal(result.run_dir)
    prints = [e for e in lines if e.get("fingerprint") is True]
    parts = {"renderer": "fake", "model": "aaaa1111"}
    assert prints == [{"fingerprint": True, "hash": fingerprint_hash(parts), "parts": parts}]
    assert lines.index(prints[0]) < min(i for i, e in enumerate(lines) if "offsets" in e)
    rendered = [e for e in lines if "offsets" in e or e.get("validation") is True
                or (e.get("final") is True and e["of"][0] > 0)]  # the baseline's result is not rendered again
    assert len(rendered) > 5 and all(e["fingerprint"] == prints[0]["hash"] for e in rendered)


def test_a_model_changed_mid_run_stops_the_run_before_it_renders_and_resumes_once_put_back(outdir):
    from test_run import make_config, resume_pinning as resume_fake
    from test_run import run_pinning as run_fake

    from prompt_pinning.run.fingerprint import FingerprintChanged

    renderer = _Swappable(swap_after=2)
    with pytest.raises(FingerprintChanged, match=r"model: the run used 'aaaa1111', this renderer has 'bbbb2222'") \
            as caught:
        run_fake(make_config(outdir, generations=3), renderer)
    assert len(renderer.calls) == 2  # refused before its third render call: nothing rendered is lost
    stopped = caught.value.pinning_result
    assert stopped.stop_reason.startswith("error: FingerprintChanged")
    logged = [e for e in _journal(stopped.run_dir) if "offsets" in e]
    assert [e["generation"] for e in logged] == [0] + [1] * (len(logged) - 1) and len(logged) > 1
    assert {e["fingerprint"] for e in logged} == {e["hash"] for e in _journal(stopped.run_dir)
                                                  if e.get("fingerprint") is True}
    with pytest.raises(ckpt.ResumeError, match=r"model: the run used 'aaaa1111', this renderer has 'bbbb2222'"):
        resume_fake(stopped.run_dir, renderer)  # still the other model
    renderer.model = "aaaa1111"
    assert resume_fake(stopped.run_dir, renderer).stop_reason == "completed"


def test_a_journal_whose_fingerprint_changed_mid_run_is_refused_by_line(outdir):
    from test_run import make_config, resume_pinning as resume_fake
    from test_run import run_pinning as run_fake

    from prompt_pinning.run.fingerprint import fingerprint_hash

    renderer = _Swappable()
    stopped = run_fake(make_config(outdir, generations=3), renderer, should_stop=_after(renderer, 3))
    assert stopped.stop_reason == "interrupted"
    path = stopped.run_dir / ckpt.EVALUATIONS_FILE
    lines = _journal(stopped.run_dir)
    other = {"renderer": "fake", "model": "bbbb2222"}  # what an engine that did not refuse would have written
    swapped = next(i for i, e in enumerate(lines) if "offsets" in e and e["generation"] == 1)
    lines.insert(swapped, {"fingerprint": True, "hash": fingerprint_hash(other), "parts": other})
    for entry in lines[swapped + 1:]:
        if "fingerprint" in entry:
            entry["fingerprint"] = fingerprint_hash(other)
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    with pytest.raises(ckpt.ResumeError, match=rf"line {swapped + 1}: the renderer's settings changed during the run"
                                               r".*model: the run used 'aaaa1111', this renderer has 'bbbb2222'"):
        resume_fake(stopped.run_dir, _Swappable())
    del lines[swapped]  # a line naming a fingerprint no line records
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    with pytest.raises(ckpt.ResumeError, match=rf"line {swapped + 1}: names render fingerprint [0-9a-f]{{16}}, "
                                               "which no earlier line records"):
        resume_fake(stopped.run_dir, _Swappable())


def test_a_journal_written_before_fingerprints_were_journaled_resumes_and_gains_them(outdir):
    from test_run import make_config, resume_pinning as resume_fake
    from test_run import run_pinning as run_fake

    renderer = _Swappable()
    stopped = run_fake(make_config(outdir, generations=2), renderer, should_stop=_after(renderer, 2))
    path = stopped.run_dir / ckpt.EVALUATIONS_FILE
    old = [{k: v for k, v in e.items() if k != "fingerprint"} for e in _journal(stopped.run_dir)
           if e.get("fingerprint") is not True]
    path.write_text("".join(json.dumps(e) + "\n" for e in old))
    assert resume_fake(stopped.run_dir, _Swappable()).stop_reason == "completed"
    lines = _journal(stopped.run_dir)
    assert lines[:len(old)] == old
    new = lines[len(old):]
    assert new[0].get("fingerprint") is True or new[0].get("checkpoint") is True
    assert all("fingerprint" in e for e in new if "offsets" in e) and any("offsets" in e for e in new)


def _after(renderer, calls):
    return lambda: len(renderer.calls) >= calls


def test_a_checkpoint_not_hashed_yet_is_named_by_the_hash_its_load_computes():
    import webui_stand_in

    webui_stand_in.install()
    from modules import processing, sd_models

    from prompt_pinning_webui.renderer import A1111Renderer

    class NotHashedYet(sd_models.CheckpointInfo):  # A1111 computes a new checkpoint's short hash on load
        def calculate_shorthash(self):
            self.shorthash = "cccc3333"
            return self.shorthash

    webui_stand_in.reset()
    sd_models.checkpoints_list["new.safetensors"] = NotHashedYet("new.safetensors", None)
    try:
        p = processing.StableDiffusionProcessingTxt2Img(prompt="red", seed=1, batch_size=2, steps=3, width=16,
                                                        height=16, outpath_samples="unused",
                                                        override_settings={"sd_model_checkpoint": "new.safetensors"})
        renderer = A1111Renderer(p, max_images_per_call=2, tokenizer=object())
        assert renderer.host_settings()["model"] == "cccc3333" == renderer.host_settings()["model"]
    finally:
        sd_models.checkpoints_list.clear()
        webui_stand_in.reset()
