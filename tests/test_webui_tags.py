"""Tag targets in the WebUI: DeepBooru (the stand-in's) drives a run; unavailable taggers are clear errors."""
import importlib.util
import json
import os

import pytest

import webui_stand_in

webui_stand_in.install()

import gradio  # noqa: E402  (the stand-in)
from modules import deepbooru, paths, shared  # noqa: E402

from prompt_pinning.run import checkpoint as ckpt  # noqa: E402
from prompt_pinning_webui.args import ARGUMENT_INDEX  # noqa: E402
from prompt_pinning_webui.taggers import available_taggers, make_tagger  # noqa: E402
from prompt_pinning.score.tags import TaggerUnavailable  # noqa: E402
from test_webui_script import engine_ready, run_args, txt2img_p  # noqa: E402,F401

SCRIPT = webui_stand_in.REPO / "scripts" / "prompt_pinning.py"


@pytest.fixture
def script():
    webui_stand_in.reset()
    gradio.created.clear()
    spec = importlib.util.spec_from_file_location("prompt_pinning.py", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Script()


def weights_file():
    return os.path.join(paths.models_path, "DeepDanbooru", deepbooru.WEIGHTS)


def without_weights():
    if os.path.exists(weights_file()):
        os.remove(weights_file())


def test_the_tag_arguments_come_after_the_mask_arguments():
    names = ["wanted_tags", "unwanted_tags", "tag_loss_weight", "tag_loss_only", "tagger"]
    assert [ARGUMENT_INDEX[n] for n in names] == list(range(31, 36))


def test_deepbooru_drives_a_full_run_and_the_report_shows_the_tags(script, engine_ready, tmp_path):  # noqa: F811
    shared.state.begin()
    args = run_args(generations=2, lambda_=3, wanted_tags="red", unwanted_tags="(green:2)")
    processed = script.run(txt2img_p(tmp_path), *args)
    assert len(processed.images) == 2
    (run_dir,) = list((tmp_path / "txt2img-images" / "prompt_pins").iterdir())
    entries = ckpt.read_individuals(run_dir)
    assert len(entries) == 1 + 2 * 3 + 1  # the baseline, two generations of three, the final centroid
    for entry in entries:
        tags = entry["extra"]["tags"]
        assert set(tags) == {"red", "green"} and all(0 <= p <= 1 for p in tags.values())
        assert entry["loss"] == pytest.approx(entry["extra"]["image_loss"] + entry["extra"]["tag_loss"])
    assert len({round(e["extra"]["tag_loss"], 12) for e in entries}) > 1  # the tagger sees each prompt's images
    page = (run_dir / "index.html").read_text()
    assert 'id="tags-title"' in page and "unwanted" in page
    data = json.loads(page.split('id="pp-data">', 1)[1].split("</script>", 1)[0])
    assert all(set(row["tags"]) == {"red", "green"} for row in data["rows"])
    assert [row["tag"] for row in data["tags"]] == ["red", "green"] and data["tags"][1]["weight"] == 2.0
    assert data["tags"][0]["base"] == pytest.approx(entries[0]["extra"]["tags"]["red"])


def test_missing_deepbooru_weights_without_a_network_are_a_422_not_a_traceback(script, engine_ready, tmp_path):  # noqa: F811
    without_weights()
    deepbooru.offline = True
    p = txt2img_p(tmp_path)
    p.is_api = True
    with pytest.raises(Exception) as info:
        script.run(p, *run_args(wanted_tags="red"))
    detail = str(getattr(info.value, "detail", info.value))
    assert "tagger 'deepbooru'" in detail and "could not be downloaded" in detail and "DeepDanbooru" in detail
    if type(info.value).__name__ == "HTTPException":
        assert info.value.status_code == 422


def test_unknown_tags_and_missing_extensions_are_refused_before_the_run(script, engine_ready, tmp_path):  # noqa: F811
    with pytest.raises(ValueError, match="DeepBooru has no tag 'circle'"):
        script.run(txt2img_p(tmp_path), *run_args(wanted_tags="circle"))
    with pytest.raises(TaggerUnavailable, match="WD14 tagger extension is not installed"):
        make_tagger("wd14")
    with pytest.raises(TaggerUnavailable, match="built-in model's images only"):
        make_tagger("builtin")


def test_the_ui_says_which_taggers_are_available(script):
    without_weights()
    states = available_taggers()
    assert states["deepbooru"].startswith("available") and "downloaded on first use" in states["deepbooru"]
    assert states["wd14"].startswith("not installed")
    script.ui(False)
    shown = [c.args[0] for c in gradio.created if c.kind == "HTML" and "Taggers for tag targets" in str(c.args[0])]
    assert shown and "wd14: not installed" in shown[0]


def test_deepbooru_moves_its_model_once_per_run_not_once_per_scoring():
    import torch

    from prompt_pinning_webui.renderer import A1111Renderer

    renderer = A1111Renderer(None)
    tagger = renderer.tagger("deepbooru")
    starts, stops = deepbooru.model.starts, deepbooru.model.stops
    images = torch.rand(2, 3, 16, 16)
    for _ in range(4):
        assert tagger.probabilities(images, ["red", "blue"]).shape == (2, 2)
    assert (deepbooru.model.starts - starts, deepbooru.model.stops - stops) == (1, 0)
    renderer.release()  # the run is over: back to the host
    assert deepbooru.model.stops - stops == 1
    tagger.probabilities(images, ["red"])  # a later use starts it again
    assert deepbooru.model.starts - starts == 2


class FakeWD14Interrogator:
    """The WD14 tagger extension's interrogator: tags from selected_tags.csv, scores above a cut-off."""

    def __init__(self):
        self.tags = None

    def load(self):
        self.tags = {"name": ["red_background", "long_hair", "circle"]}

    def interrogate(self, image):
        return {}, {"red_background": 0.9, "circle": 0.6}


def test_wd14_refuses_a_misspelled_tag_instead_of_scoring_it_zero(monkeypatch):
    import sys
    import types

    import torch

    utils = types.ModuleType("tagger.utils")
    utils.interrogators = {"wd14-vit-v2-git": FakeWD14Interrogator()}
    package = types.ModuleType("tagger")
    package.utils = utils
    monkeypatch.setitem(sys.modules, "tagger", package)
    monkeypatch.setitem(sys.modules, "tagger.utils", utils)
    tagger = make_tagger("wd14")
    tagger.check(["red background", "long hair"])
    with pytest.raises(ValueError, match="the WD14 tagger has no tag 'red backgrond'"):
        tagger.check(["red backgrond"])
    assert tagger.probabilities(torch.rand(1, 3, 8, 8), ["red background", "long hair"]).tolist() == [[0.9, 0.0]]
    utils.interrogators["wd14-vit-v2-git"].tags = None  # no vocabulary: refused, not guessed
    with pytest.raises(TaggerUnavailable, match="lists no tags"):
        tagger.check(["red background"])
