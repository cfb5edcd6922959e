"""Rendering on Ray actors: the same run as without Ray, whatever actor rendered what or died."""
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")

from prompt_pinning.builtin import BuiltinRenderer  # noqa: E402
from prompt_pinning.cli import main  # noqa: E402
from prompt_pinning.config import PinningConfig  # noqa: E402
from prompt_pinning.distributed import RayRenderer, RendererSpec  # noqa: E402
from prompt_pinning.rendering import GenerationSettings, RenderInterrupted  # noqa: E402
from prompt_pinning.run import run_pinning  # noqa: E402
from prompt_pinning.run.store import MemoryStore  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_session")  # one local Ray per module (conftest)
REPO = Path(__file__).resolve().parents[1]
SETTINGS = GenerationSettings(seed=3, batch_size=2, steps=4, width=32, height=32)
LOOSE = "circle square triangle red blue"
RUN = ["--prompt", LOOSE, "--batch-size", "2", "--steps", "4", "--width", "32", "--height", "32",
       "--generations", "3", "--lambda", "4", "--initial-std", "0.3", "--validation-batches", "1", "--no-progress"]
BUILTIN = RendererSpec("builtin", options={"threads": 1})


@pytest.fixture(scope="module")
def target_png(tmp_path_factory):
    """Red circles: a target the loose prompt can move towards, so the run's result differs from its start."""
    from PIL import Image

    batch = BuiltinRenderer().render([("red circle", "")], SETTINGS.with_(batch_size=1))[0]
    path = tmp_path_factory.mktemp("target") / "target.png"
    Image.fromarray((batch.images[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(path)
    return path


def comparable(value, key=""):
    """A final_result.json without what says how long things took, where they went or what rendered them."""
    if isinstance(value, dict):
        return {k: comparable(v, k) for k, v in value.items()
                if not k.endswith("_seconds") and k not in ("renderer", "run_dir", "outdir")}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def final_result(outdir):
    return json.loads((outdir / "txt2img-images" / "prompt_pins" / "00000000" / "final_result.json").read_text())


def cli_run(outdir, *extra):
    assert main([*RUN, "--outdir", str(outdir), *extra]) == 0


@pytest.fixture(scope="module")
def plain_cli(tmp_path_factory, target_png):
    outdir = tmp_path_factory.mktemp("plain")
    cli_run(outdir, "--target", str(target_png))
    return final_result(outdir)


def test_a_cli_run_on_two_local_actors_ends_as_the_run_without_ray(tmp_path, plain_cli, target_png):
    cli_run(tmp_path, "--target", str(target_png), "--ray", "local", "--ray-actors", "2")
    through_ray = final_result(tmp_path)
    assert plain_cli["improvement"]["improvement"] != 0  # the run moved: the comparison means something
    assert comparable(through_ray) == comparable(plain_cli)
    ray_info = through_ray["config"]["renderer"]["ray"]
    assert ray_info["actors"] == 2 and all(n > 0 for n in ray_info["rendered"]) and ray_info["faults"] == []
    assert cpus_free_within(20) == 2  # the command line ended its actors


def test_the_same_run_on_tiny_diffusers_through_ray(tmp_path):  # before `pair`: it needs both CPUs
    pytest.importorskip("prompt_pinning.diffusers")
    import importlib.util

    pipeline = tmp_path / "tiny"
    tool = importlib.util.spec_from_file_location("make_tiny_diffusers", REPO / "tools" / "make_tiny_diffusers.py")
    module = importlib.util.module_from_spec(tool)
    tool.loader.exec_module(module)
    assert not module.main([str(pipeline)])  # `python tools/make_tiny_diffusers.py DIR`, in this process
    small = ["--diffusers", str(pipeline), "--width", "64", "--height", "64", "--generations", "1", "--lambda", "3",
             "--validation-batches", "0"]
    cli_run(tmp_path / "plain", *small)
    cli_run(tmp_path / "ray", *small, "--ray", "local", "--ray-actors", "2")
    plain, through_ray = final_result(tmp_path / "plain"), final_result(tmp_path / "ray")
    assert through_ray["config"]["renderer"]["ray"]["actors"] == 2
    assert [u["pinned_weight"] for u in through_ray["units"]] == pytest.approx(
        [u["pinned_weight"] for u in plain["units"]], abs=1e-6)
    for key in ("baseline_loss", "result_loss"):
        assert through_ray["improvement"][key] == pytest.approx(plain["improvement"][key], rel=1e-5)


def cpus_free_within(seconds):
    end = time.monotonic() + seconds
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < end:
        time.sleep(0.1)
    return ray.available_resources().get("CPU", 0)


@pytest.fixture(scope="module")
def pair():
    """Two actors on half a CPU each (the command-line tests before it use both CPUs)."""
    renderer = RayRenderer(BUILTIN, 2, num_cpus=0.5)
    yield renderer
    renderer.shutdown()


def test_images_do_not_depend_on_which_actor_renders_them(pair):
    prompts = [(f"red circle {'blue ' * k}", "green" if k % 2 else "") for k in range(7)]
    alone = BuiltinRenderer().render(prompts, SETTINGS)
    assert pair.negative_networks is True  # the built-in model pins negative-prompt networks too
    for parts in (1, 3):  # 2 parts of 4 and 3 individuals, then 6 parts taken by whichever actor is free
        pair.parts_per_actor, before = parts, list(pair.rendered)
        batches = pair.render(prompts, SETTINGS)
        assert [b.seeds for b in batches] == [[3, 4]] * 7
        assert all(torch.equal(b.images, a.images) for b, a in zip(batches, alone)), parts
        rendered = [n - m for n, m in zip(pair.rendered, before)]
        assert sum(rendered) == 7 and min(rendered) > 0
    pair.parts_per_actor = 1


class KillDuring:
    """The RayRenderer, with actor 0 killed while render call ``at`` is in flight."""

    def __init__(self, inner: RayRenderer, at: int):
        self.inner, self.at, self.calls, self.killed_pid = inner, at, 0, None

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def render(self, prompts, settings, progress=None):
        self.calls += 1

        def hook(done, total):
            if self.calls == self.at and self.killed_pid is None:
                self.killed_pid = ray.get(self.inner.actors[0].state.remote())["pid"]
                ray.kill(self.inner.actors[0], no_restart=False)
            if progress is not None:
                progress(done, total)

        return self.inner.render(prompts, settings, hook)


def pin(renderer, target):
    config = PinningConfig(positive=LOOSE, generation=SETTINGS, targets=[target], generations=3, lambda_=4,
                           initial_std=0.3, validation_batches=1, cma_logging=False)
    return run_pinning(config, renderer, store=MemoryStore())


def essentials(result):
    return {"stop": result.stop_reason, "offsets": [float(x) for x in result.best.offsets],
            "best": result.best.positive, "paired": result.paired.to_dict(), "yours": result.user_seeds.to_dict(),
            "generations": [(g.best_loss, g.sigma) for g in result.generations]}


@pytest.fixture(scope="module")
def target_image():
    return BuiltinRenderer().render([("red circle", "")], SETTINGS.with_(batch_size=1))[0].images[0]


@pytest.fixture(scope="module")
def plain_result(target_image):
    return essentials(pin(BuiltinRenderer(), target_image))


def test_killing_an_actor_mid_run_changes_nothing(pair, target_image, plain_result):
    killing = KillDuring(pair, at=3)  # generation 2's render call
    result = pin(killing, target_image)
    assert killing.killed_pid is not None and essentials(result) == plain_result
    # Ray restarted the actor and retried its part there
    assert ray.get(pair.actors[0].state.remote())["pid"] != killing.killed_pid
    assert pair.faults == [] and pair.live == [0, 1]


def test_an_actor_gone_for_good_leaves_its_part_to_another(target_image, plain_result):
    renderer = RayRenderer(BUILTIN, 2, max_restarts=0, num_cpus=0.5)
    killing = KillDuring(renderer, at=3)
    try:
        result = pin(killing, target_image)
        assert killing.killed_pid is not None and essentials(result) == plain_result
        (fault,) = renderer.faults
        assert fault["actor"] == 0 and renderer.live == [1] and fault["individuals_rerendered"]
    finally:
        renderer.shutdown()


def test_a_stop_request_stops_the_parts_in_flight(pair):
    prompts = [(f"red circle {'blue ' * k}", "") for k in range(8)]
    slow = SETTINGS.with_(steps=40, width=64, height=64, batch_size=4)
    before = [s["renders"] for s in ray.get([actor.state.remote() for actor in pair.actors])]

    started = time.monotonic()

    def stop(done, total):  # once an actor renders this call, so the stop reaches a part in flight
        states = ray.get([actor.state.remote() for actor in pair.actors])
        if any(s["rendering"] == pair.last_call for s in states):
            raise RenderInterrupted("stop requested")
        assert time.monotonic() - started < 60, "no actor began rendering the call"

    with pytest.raises(RenderInterrupted):
        pair.render(prompts, slow, stop)
    call = pair.last_call
    deadline = time.monotonic() + 20
    while True:  # the actors hear the stop at their renderer's next step
        states = ray.get([actor.state.remote() for actor in pair.actors])
        if all(s["rendering"] is None and call in s["stopped"] for s in states) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert all(s["rendering"] is None and call in s["stopped"] for s in states), states
    assert [s["renders"] for s in states] == before  # neither finished its part
    assert len(pair.render(prompts[:2], SETTINGS)) == 2  # the actors take the next call


def test_a_forwarded_call_waits_for_the_render_in_flight():
    import threading

    from prompt_pinning.distributed.actor import RenderActor

    started, release, seen = threading.Event(), threading.Event(), []

    class Held(BuiltinRenderer):
        def render(self, prompts, settings, progress=None):
            started.set()
            release.wait(10)
            seen.append("render done")
            return super().render(prompts, settings, progress)

        def check(self, generation):
            seen.append("check")

    class Spec:
        options: dict = {}

        def build(self):
            return Held()

    actor = RenderActor(Spec())
    render = threading.Thread(target=actor.render, args=(0, [("red circle", "")], SETTINGS))
    render.start()
    assert started.wait(10)
    call = threading.Thread(target=actor.call, args=("check", SETTINGS))
    call.start()
    call.join(0.5)
    assert call.is_alive() and seen == []  # held while the render runs
    release.set()
    render.join(30)
    call.join(30)
    assert seen == ["render done", "check"]


def test_bad_actor_counts_are_refused_naming_the_flag():
    with pytest.raises(ValueError, match="--ray-actors"):
        RayRenderer(BUILTIN, 0)
    with pytest.raises(ValueError, match="--ray-actors: 3 actors need 3 CPUs; the Ray cluster has 2"):
        RayRenderer(BUILTIN, 3)
    assert main([*RUN, "--ray", "local", "--ray-actors", "-1"]) == 2


def test_each_webui_instance_gets_an_actor_and_a_failed_one_leaves_its_part_to_another():
    from fake_webui_api import FakeWebUI

    from prompt_pinning.remote import WebUIApiRenderer

    prompts = [(f"a red circle {k}", "green") for k in range(4)]
    with FakeWebUI() as a, FakeWebUI(fail_after=1) as b:  # b answers once, then with errors
        renderer = RayRenderer(RendererSpec("webui", [a.url, b.url], {"timeout": 10}))
        try:
            assert len(renderer.actors) == 2 and renderer.resources == {"num_cpus": 0}
            assert renderer.host_settings()["instances"] == [a.url, b.url]
            assert renderer.negative_networks is False  # the WebUIs apply positive prompts' networks only
            batches = renderer.render(prompts, SETTINGS)
        finally:
            renderer.shutdown()
        alone = WebUIApiRenderer([a.url], timeout=10).render(prompts, SETTINGS)
    assert all(torch.equal(x.images, y.images) for x, y in zip(batches, alone))
    (fault,) = renderer.faults
    assert fault["actor"] == 1 and fault["individuals_rerendered"] == [2, 4] and renderer.live == [0]
    assert len(b.renders) == 1 and renderer.rendered == [4, 0]


def test_renderer_specs_travel_and_refuse_what_they_cannot_build():
    import pickle

    spec = RendererSpec("factory", "prompt_pinning.builtin:BuiltinRenderer", {"kwargs": {"max_images_per_call": 4}})
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert spec.build().max_images_per_call == 4
    for kind, target, said in (("gpu", None, "not one of builtin, diffusers, webui, factory"),
                               ("webui", "http://127.0.0.1:7860", "a list of one or more WebUI URLs"),
                               ("diffusers", None, "the pipeline folder"),
                               ("factory", "prompt_pinning.builtin", "'package.module:callable'")):
        with pytest.raises(ValueError, match=said):
            RendererSpec(kind, target)


def test_a_renderers_own_error_reaches_the_run_as_it_would_without_ray(pair):
    with pytest.raises(ValueError, match="^unknown sampler 'Nope'; valid: Euler") as raised:
        pair.render([("red circle", "")], SETTINGS.with_(sampler="Nope"))
    assert not isinstance(raised.value, ray.exceptions.RayError)


def test_a_tagger_turns_tags_on_in_every_actor_restarted_ones_too(pair):  # last: it leaves tags on
    assert pair.tagger("builtin").name == "builtin"
    prompts = [("red circle", ""), ("blue square", "")]
    tagged = pair.render(prompts, SETTINGS)
    assert all(b.tag_probabilities for b in tagged) and pair.rendered[0] and pair.rendered[1]
    pid = ray.get(pair.actors[1].state.remote())["pid"]
    ray.kill(pair.actors[1], no_restart=False)  # Ray restarts it from its spec: tags off there
    again = pair.render(prompts, SETTINGS)
    assert ray.get(pair.actors[1].state.remote())["pid"] != pid
    for before, after in zip(tagged, again):
        assert before.tag_probabilities.keys() == after.tag_probabilities.keys()
        assert all(np.array_equal(before.tag_probabilities[t], after.tag_probabilities[t])
                   for t in before.tag_probabilities)
