"""From the WebUI and its API, start_from reads only run folders in the WebUI's outputs."""
import pytest

import webui_stand_in

webui_stand_in.install()

from modules import shared  # noqa: E402

from prompt_pinning.config import PinningConfig  # noqa: E402
from prompt_pinning.options import ConfigError  # noqa: E402
from prompt_pinning_webui.webui_run import confine_resume  # noqa: E402


def test_start_from_is_confined_to_the_outputs(tmp_path):
    shared.opts.outdir_txt2img_samples = str(tmp_path / "txt2img-images")
    shared.opts.outdir_img2img_samples = str(tmp_path / "img2img-images")
    inside = tmp_path / "txt2img-images" / "prompt_pins" / "00000004"
    inside.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere" / "00000004"
    elsewhere.mkdir(parents=True)
    config = confine_resume(PinningConfig(positive="x", start_from=f"{inside}/../00000004:3"))
    assert config.start_from == f"{inside.resolve()}:3"
    with pytest.raises(ConfigError, match="start_from: .*only .*prompt_pins"):
        confine_resume(PinningConfig(positive="x", start_from=f"{elsewhere}:1"))
    with pytest.raises(ConfigError, match="start_from: must be RUN_FOLDER:CLUSTER"):
        confine_resume(PinningConfig(positive="x", start_from=str(inside)))


def test_a_relative_start_from_is_read_against_the_outputs_folder_like_resume(tmp_path, monkeypatch):
    shared.opts.outdir_txt2img_samples = str(tmp_path / "outputs" / "txt2img-images")
    shared.opts.outdir_img2img_samples = str(tmp_path / "outputs" / "img2img-images")
    inside = tmp_path / "outputs" / "txt2img-images" / "prompt_pins" / "00000002"
    inside.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)  # the WebUI's folder: the relative name is not found from here
    name = "txt2img-images/prompt_pins/00000002"
    config = confine_resume(PinningConfig(positive="x", start_from=f"{name}:1", resume=name,
                                          outdir=tmp_path / "outputs" / "txt2img-images"))
    assert config.start_from == f"{inside.resolve()}:1" and config.resume == inside.resolve()


def test_a_start_from_folder_is_saved_relative_to_the_outputs_folder(tmp_path):
    import numpy as np

    from prompt_pinning.search.start_from import StartPoint

    folder = tmp_path / "outputs" / "txt2img-images" / "prompt_pins" / "00000002"
    config = PinningConfig(positive="x", start_from=f"{folder}:3", outdir=tmp_path / "outputs" / "txt2img-images")
    saved = config.to_dict()
    assert saved["start_from"] == "txt2img-images/prompt_pins/00000002:3" and saved["outdir"] == "txt2img-images"
    start = StartPoint(np.zeros(2), 0.1, np.eye(2), folder, 3)
    assert start.resolved()["run"] == "txt2img-images/prompt_pins/00000002"
    assert str(tmp_path) not in str(saved) + str(start.resolved())
