"""Target masks from the WebUI: an upload or base64 string, and img2img's inpaint mask."""
import base64
import importlib.util
import io

import numpy as np
import pytest
from PIL import Image

import webui_stand_in

webui_stand_in.install()

from modules import processing, shared  # noqa: E402

from prompt_pinning_webui.args import ARGUMENT_INDEX, ScriptArgumentError, default_args, parse_script_args  # noqa: E402
from prompt_pinning_webui.webui_run import build_config  # noqa: E402
from test_webui_script import engine_ready, run_args, txt2img_p  # noqa: E402,F401

SCRIPT = webui_stand_in.REPO / "scripts" / "prompt_pinning.py"


@pytest.fixture
def script():
    webui_stand_in.reset()
    spec = importlib.util.spec_from_file_location("prompt_pinning.py", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Script()


def encoded(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def left_half(size=16):
    values = np.zeros((size, size), dtype=np.uint8)
    values[:, :size // 2] = 255
    return Image.fromarray(values, "L")


def with_mask(value, source="mask image"):
    args = default_args()
    args[ARGUMENT_INDEX["target_mask"]] = value
    args[ARGUMENT_INDEX["target_mask_source"]] = source
    return args


def test_the_mask_arguments_come_last_and_default_to_no_mask():
    assert (ARGUMENT_INDEX["target_mask"], ARGUMENT_INDEX["target_mask_source"]) == (29, 30)  # after the first 29
    parsed = parse_script_args(default_args())
    assert parsed["target_mask"] is None and parsed["target_mask_source"] == "mask image"


@pytest.mark.parametrize("form", ["base64", "data URL", "one-item list", "PIL image", "PIL image in a list"])
def test_an_api_mask_is_a_base64_png(form):
    text = encoded(left_half())
    value = {"base64": text, "data URL": "data:image/png;base64," + text, "one-item list": [text],
             "PIL image": left_half(), "PIL image in a list": [left_half()]}[form]
    mask = parse_script_args(with_mask(value))["target_mask"]
    assert mask.size == (16, 16) and mask.getpixel((0, 0)) == 255 and mask.getpixel((15, 0)) == 0


def test_a_bad_mask_names_its_script_argument():
    index = ARGUMENT_INDEX["target_mask"]
    with pytest.raises(ScriptArgumentError, match=rf"script_args\[{index}\].*target_mask"):
        parse_script_args(with_mask("not base64!"))
    with pytest.raises(ScriptArgumentError, match="one mask image"):
        parse_script_args(with_mask([encoded(left_half()), encoded(left_half())]))
    with pytest.raises(ScriptArgumentError, match="target_mask"):
        parse_script_args(with_mask(encoded(left_half(), "GIF")))


def test_the_inpaint_mask_of_img2img_becomes_the_target_mask():
    p = processing.StableDiffusionProcessingImg2Img(prompt="red circle", seed=1, subseed=0, batch_size=2, steps=3,
                                                    width=16, height=16, sampler_name="Euler")
    p.image_mask = left_half()
    config = build_config(p, parse_script_args(with_mask(None, "inverted inpaint mask")), True)
    assert config.target_mask is p.image_mask
    from prompt_pinning.score.masks import build_mask

    mask = build_mask(config)
    assert mask[:, :8].eq(0).all() and mask[:, 8:].eq(1).all()
    with pytest.raises(ValueError, match="give no mask image"):
        build_config(p, parse_script_args(with_mask(encoded(left_half()), "inpaint mask")), True)


def test_an_inpaint_mask_source_without_a_drawn_mask_is_a_422_naming_it(script, tmp_path):
    p = txt2img_p(tmp_path)
    p.is_api = True
    with pytest.raises(Exception) as info:
        script.run(p, *with_mask(None, "inpaint mask"))
    assert "target_mask_source" in str(getattr(info.value, "detail", info.value))
    assert "inpaint tab" in str(getattr(info.value, "detail", info.value))


def test_a_masked_api_run_writes_its_mask(script, engine_ready, tmp_path):  # noqa: F811
    p = txt2img_p(tmp_path)
    args = run_args(generations=1, lambda_=2)
    args[ARGUMENT_INDEX["target_mask"]] = encoded(left_half(32))  # resized to the 16x16 generation
    shared.state.begin()
    processed = script.run(p, *args)
    assert len(processed.images) == 2
    run_dirs = list((tmp_path / "txt2img-images" / "prompt_pins").iterdir())
    assert len(run_dirs) == 1
    mask = np.load(run_dirs[0] / "mask.npz")["mask"]
    assert mask.shape == (16, 16) and mask[:, :7].min() == 1.0 and mask[:, 9:].max() == 0.0


def test_an_api_target_with_transparency_gives_the_mask():
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :4, 3] = 255  # only the left quarter is opaque
    args = with_mask(None, "target alpha")
    args[ARGUMENT_INDEX["targets"]] = ["data:image/png;base64," + encoded(Image.fromarray(rgba, "RGBA"))]
    p = processing.StableDiffusionProcessingTxt2Img(prompt="red circle", seed=1, subseed=0, batch_size=2, steps=3,
                                                    width=16, height=16, sampler_name="Euler")
    from prompt_pinning.score.masks import build_mask

    mask = build_mask(build_config(p, parse_script_args(args), False))
    assert mask[:, :4].eq(1).all() and mask[:, 4:].eq(0).all()
