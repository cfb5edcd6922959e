"""The WebUI API renderer against small fake WebUI servers on 127.0.0.1.

The fakes (benchmarks/fake_webui_api.py) draw every image from (prompt, seed,
settings) alone, so any spread of the work over them must give the same images.
"""
import logging
import time

import pytest
import torch

from fake_webui_api import FakeWebUI
from prompt_pinning.remote import (AUTH_ENV, InstanceMismatch, NoInstanceLeft, WebUIApiRenderer,
                                   WebUIRequestError, check_url, read_credentials)
from prompt_pinning.rendering import GenerationSettings, RenderInterrupted

SETTINGS = GenerationSettings(seed=7, batch_size=2, steps=4, width=32, height=24, scheduler="karras")
PROMPTS = [(f"a red circle {k}", "green") for k in range(10)]


def assert_same_batches(one, other):
    assert len(one) == len(other)
    for a, b in zip(one, other):
        assert torch.equal(a.images, b.images)
        assert a.seeds == b.seeds


@pytest.fixture
def reference():
    """The images of PROMPTS on a single fast instance."""
    with FakeWebUI() as alone:
        return WebUIApiRenderer([alone.url], timeout=5).render(PROMPTS, SETTINGS)


# -- URLs and credentials ------------------------------------------------------
@pytest.mark.parametrize("url, says", [
    ("ftp://127.0.0.1:7860", "not a WebUI URL"), ("127.0.0.1:7860", "not a WebUI URL"),
    ("http://user:secret@127.0.0.1:7860", "credentials do not belong in the URL"),
    ("http://127.0.0.1:7860/?x=1", "no query"),
])
def test_bad_urls_are_refused(url, says):
    with pytest.raises(ValueError, match=says):
        check_url(url)


def test_credentials_come_from_the_environment_or_a_file(tmp_path):
    assert read_credentials(environ={AUTH_ENV: "ann:pa:ss"}) == {None: ("ann", "pa:ss")}
    assert read_credentials(environ={}) == {}
    path = tmp_path / "auth"
    path.write_text("# instances\nbob:one\nhttp://127.0.0.1:7861/ cy:two\n", encoding="utf-8")
    assert read_credentials(path, environ={AUTH_ENV: "ann:x"}) == {
        None: ("bob", "one"), "http://127.0.0.1:7861": ("cy", "two")}
    path.write_text("no-colon\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 1: credentials must be user:password"):
        read_credentials(path)


def test_basic_auth_is_sent_and_a_refusal_names_the_instance(monkeypatch):
    with FakeWebUI(auth=("ann", "s3cret")) as locked:
        monkeypatch.setenv(AUTH_ENV, "ann:s3cret")
        (batch,) = WebUIApiRenderer([locked.url], timeout=5).render(PROMPTS[:1], SETTINGS)
        assert batch.images.shape == (2, 3, 24, 32)
        monkeypatch.setenv(AUTH_ENV, "ann:wrong")
        with pytest.raises(NoInstanceLeft, match=f"{locked.url}.*HTTP 401"):
            WebUIApiRenderer([locked.url], timeout=5).render(PROMPTS[:1], SETTINGS)


# -- checks before the run -------------------------------------------------------
@pytest.mark.parametrize("options, key", [
    ({"sd_checkpoint_hash": "ffff"}, "sd_checkpoint_hash"), ({"sd_vae": "other.vae.pt"}, "sd_vae"),
    ({"CLIP_stop_at_last_layers": 2}, "CLIP_stop_at_last_layers"),
])
def test_a_different_model_or_vae_is_refused_naming_the_instance(options, key):
    with FakeWebUI() as first, FakeWebUI(options=options) as second:
        renderer = WebUIApiRenderer([first.url, second.url], timeout=5)
        with pytest.raises(InstanceMismatch, match=f"webui {second.url}: {key} is"):
            renderer.render(PROMPTS[:1], SETTINGS)
        assert first.renders == second.renders == []


def test_an_unknown_hash_reads_alike_as_empty_or_null():
    """--no-hashing, or a checkpoint not loaded yet (Forge loads it at the first render): "" on one, None on another."""
    with FakeWebUI(options={"sd_checkpoint_hash": None}) as first, \
            FakeWebUI(options={"sd_checkpoint_hash": ""}) as second:
        (batch,) = WebUIApiRenderer([first.url, second.url], timeout=5).render(PROMPTS[:1], SETTINGS)
        assert batch.images.shape[0] == SETTINGS.batch_size


def test_a_missing_sampler_or_scheduler_is_refused_before_any_image():
    with FakeWebUI() as first, FakeWebUI(samplers=["Euler"]) as second:
        renderer = WebUIApiRenderer([first.url, second.url], timeout=5)
        with pytest.raises(InstanceMismatch, match=f"{second.url}: has no sampler 'DPM\\+\\+ 2M'"):
            renderer.check(SETTINGS)
        with pytest.raises(InstanceMismatch, match="has no scheduler 'Align'"):
            renderer.check(SETTINGS.with_(sampler="Euler", scheduler="Align"))
        assert first.renders == second.renders == []


def test_an_unreachable_instance_is_refused_at_the_start():
    gone = FakeWebUI().start()
    url = gone.url
    gone.stop()
    with FakeWebUI() as alive:
        with pytest.raises(NoInstanceLeft, match=f"webui {url}: cannot be read"):
            WebUIApiRenderer([alive.url, url], timeout=5).connect()


def test_an_answer_with_another_vae_hash_is_a_fault(reference):
    with FakeWebUI(delay=0.05) as first, FakeWebUI(delay=0.05, vae_hash="0000") as other:
        renderer = WebUIApiRenderer([first.url, other.url], timeout=5)
        assert_same_batches(renderer.render(PROMPTS, SETTINGS), reference)
        assert len(renderer.faults) == 1 and "sd_vae_hash" in renderer.faults[0]["reason"]


# -- the work queue --------------------------------------------------------------
def test_a_faster_instance_renders_more_and_the_images_do_not_change(reference):
    with FakeWebUI(delay=0.01) as fast, FakeWebUI(delay=0.4) as slow:
        renderer = WebUIApiRenderer([slow.url, fast.url], timeout=5)
        batches = renderer.render(PROMPTS, SETTINGS)
    assert_same_batches(batches, reference)
    assert len(fast.renders) + len(slow.renders) == len(PROMPTS)
    assert 1 <= len(slow.renders) < len(fast.renders)
    assert [b["path"] for b in fast.bodies] == ["/sdapi/v1/txt2img"] * len(fast.renders)
    assert all(b["seed"] == 7 and b["batch_size"] == 2 and not b["save_images"] for b in fast.bodies)


def test_two_instances_take_about_half_the_time_of_one():
    delay = 0.15
    with FakeWebUI(delay=delay) as a, FakeWebUI(delay=delay) as b:
        started = time.perf_counter()
        WebUIApiRenderer([a.url], timeout=5).render(PROMPTS[:6], SETTINGS)
        one = time.perf_counter() - started
        started = time.perf_counter()
        WebUIApiRenderer([a.url, b.url], timeout=5).render(PROMPTS[:6], SETTINGS)
        two = time.perf_counter() - started
    assert one >= 6 * delay and two < 0.75 * one


def test_hyperbatch_samplers_get_their_branch_tree():
    settings = SETTINGS.with_(sampler="DPM++ 2M Karras - Hyperbatch", batch_size=4, steps=12)
    with FakeWebUI() as one:
        (batch,) = WebUIApiRenderer([one.url], timeout=5).render(PROMPTS[:1], settings)
    assert batch.traces.tolist() == [[0, 0, 0], [0, 0, 1], [0, 2, 2], [0, 2, 3]]


def test_init_images_go_to_img2img_with_the_denoising_strength():
    from PIL import Image

    start = Image.new("RGB", (32, 24), (200, 10, 10))
    with FakeWebUI() as one:
        WebUIApiRenderer([one.url], timeout=5, init_images=[start]).render(
            PROMPTS[:1], SETTINGS.with_(denoising_strength=0.6))
    assert one.bodies[0]["path"] == "/sdapi/v1/img2img" and one.bodies[0]["denoising_strength"] == 0.6


# -- faults ------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["error", "hang", "gone"])
def test_an_instance_failing_half_way_has_its_individual_resent(mode, reference, caplog):
    with FakeWebUI(delay=0.05) as healthy, FakeWebUI(delay=0.05, fail_after=2, fail_mode=mode) as failing:
        renderer = WebUIApiRenderer([failing.url, healthy.url], timeout=1.0)
        started = time.perf_counter()
        with caplog.at_level(logging.WARNING):
            batches = renderer.render(PROMPTS, SETTINGS)
        assert time.perf_counter() - started < 10
        assert_same_batches(batches, reference)
        assert len(failing.renders) == 2 and len(healthy.renders) == len(PROMPTS) - 2
        (fault,) = renderer.faults
        assert fault["instance"] == failing.url and fault["rendered"] == 2 and fault["time"]
        assert f"webui {failing.url} failed at" in caplog.text
        # the run goes on with the instance that remains; the failed one gets no more work
        renderer.render(PROMPTS[:2], SETTINGS)
        assert len(healthy.renders) == len(PROMPTS)
        assert healthy.requests < 40
        info = renderer.report_info()
        assert [i["failed"] for i in info["instances"]] == [True, False]


def test_no_instance_left_names_every_failure():
    with FakeWebUI(fail_after=1) as a, FakeWebUI(fail_after=2) as b:
        renderer = WebUIApiRenderer([a.url, b.url], timeout=5)
        with pytest.raises(NoInstanceLeft) as raised:
            renderer.render(PROMPTS, SETTINGS)
        assert a.url in str(raised.value) and b.url in str(raised.value)
        assert isinstance(raised.value, ConnectionError)
        with pytest.raises(NoInstanceLeft):
            renderer.render(PROMPTS[:1], SETTINGS)
        assert len(a.renders) + len(b.renders) == 3


def test_a_refused_request_ends_the_call_without_dropping_instances():
    with FakeWebUI() as one:
        renderer = WebUIApiRenderer([one.url], timeout=5)
        renderer.check(SETTINGS)
        one.samplers = ["Euler"]  # the sampler went away after the check
        with pytest.raises(WebUIRequestError, match="sampler not found"):
            renderer.render(PROMPTS[:1], SETTINGS)
        assert renderer.faults == []


def test_a_stop_request_interrupts_every_instance():
    with FakeWebUI(delay=0.05) as a, FakeWebUI(delay=5.0) as b:
        renderer = WebUIApiRenderer([a.url, b.url], timeout=10)
        calls = []

        def progress(done, total):
            calls.append(done)
            if done:
                raise RenderInterrupted("stop")

        started = time.perf_counter()
        with pytest.raises(RenderInterrupted):
            renderer.render(PROMPTS, SETTINGS, progress)
        assert time.perf_counter() - started < 4  # the slow one was interrupted, not waited for
        assert a.interrupts == 1 and b.interrupts == 1
