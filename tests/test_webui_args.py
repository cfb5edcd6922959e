"""Script arguments: order, defaults, validation errors that name the argument, targets."""
import base64
import io

import pytest
from PIL import Image

from prompt_pinning.config import PinningConfig
from prompt_pinning.options import OPTION
from prompt_pinning_webui.args import (ARGUMENT_INDEX, ARGUMENTS, ScriptArgumentError, default_args,
                                       parse_script_args)
from prompt_pinning_webui.images import decode_target_images


def png_base64(color=(255, 0, 0), size=(8, 8), fmt="PNG"):
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def with_arg(name, value):
    args = default_args()
    args[ARGUMENT_INDEX[name]] = value
    return args


def test_defaults_parse_to_the_config_defaults():
    parsed = parse_script_args(default_args())
    config = PinningConfig(positive="x").validate()
    assert parsed.pop("targets") == [] and config.targets == ()
    assert parsed == {name: getattr(config, name) for name in parsed}
    assert parsed["validation_batches"] == 1 and parsed["seed_schedule"] == "rotating"
    assert parsed["loss_variant"] == "union" and parsed["cmatrix"] is None and parsed["resume"] is None


# The API contract: these 25 keep their positions and meanings for good.
FIRST_25 = ("targets", "unit_mode", "cma_logging", "cma_seed", "generations", "initial_std", "initial_radius",
            "lambda_", "mu", "weights", "cs", "damps", "ccum", "ccov1", "ccovmu", "cmatrix", "size_limit",
            "size_limit_error", "size_limit_weight", "hyperbatch_weights_enabled",
            "hyperbatch_weights_force_allowed", "hyperbatch_weight_type", "hyperbatch_weight_scale",
            "max_images_per_call", "resume")


def test_the_first_25_keep_their_positions_and_new_options_are_appended():
    names = tuple(spec.name for spec in ARGUMENTS)
    assert names[:25] == FIRST_25
    assert names[25:29] == ("validation_batches", "seed_schedule", "loss_variant", "start_from")
    assert default_args()[25:29] == [1, "rotating", "union", ""]
    assert names[29:] == ("target_mask", "target_mask_source", "wanted_tags", "unwanted_tags", "tag_loss_weight",
                          "tag_loss_only", "tagger", "fade_guard", "fade_tolerance", "fade_guard_form",
                          "network_units")
    assert default_args()[29:] == [None, "mask image", "", "", 1.0, False, "auto", OPTION["fade_guard"].default,
                                   OPTION["fade_tolerance"].default, OPTION["fade_guard_form"].default, False]


def test_an_older_clients_25_arguments_take_the_defaults_for_the_rest():
    assert parse_script_args(default_args()[:25]) == parse_script_args(default_args())
    shorter = with_arg("generations", 7)[:26]
    assert parse_script_args(shorter)["generations"] == 7


def test_every_config_option_of_the_seed_table_is_an_argument():
    names = {spec.name for spec in ARGUMENTS}
    for option in ("cma_logging", "cma_seed", "generations", "initial_std", "initial_radius", "size_limit",
                   "size_limit_error", "size_limit_weight", "lambda_", "mu", "cmatrix", "weights", "cs",
                   "damps", "ccum", "ccov1", "ccovmu", "hyperbatch_weights_enabled",
                   "hyperbatch_weights_force_allowed", "hyperbatch_weight_type", "hyperbatch_weight_scale"):
        assert option in names
        assert hasattr(PinningConfig(positive="x"), option)


@pytest.mark.parametrize("name,value", [("generations", 0), ("lambda_", ""), ("cs", None), ("mu", 0.0)])
def test_zero_or_empty_means_auto(name, value):
    assert parse_script_args(with_arg(name, value))[name] is None


@pytest.mark.parametrize("name,value,fragment", [
    ("initial_std", "abc", "must be a number"),
    ("initial_std", 0, "must be > 0"),
    ("generations", 2.5, "whole number"),
    ("generations", -3, ">= 0"),
    ("lambda_", True, "finite number"),
    ("cma_logging", "yes", "true or false"),
    ("weights", "quadratic", "superlinear, linear, equal"),
    ("hyperbatch_weight_type", "Linear", "Geometric"),
    ("cmatrix", "[[1, 0], [0]]", "square"),
    ("cmatrix", "not json", "JSON"),
    ("targets", "!!!", "base64"),
    ("targets", "https://example.com/a.png", "URL"),
    ("resume", 5, "must be a path (a string)"),
    ("generations", 10_001, "must be <= 10,000"),
    ("generations", 10**9, "must be <= 10,000"),
    ("lambda_", 1, "must be >= 2"),
    ("lambda_", 1001, "must be <= 1,000"),
    ("mu", -1, ">= 0"),
    ("cma_seed", 2**70, "must be <= 4,294,967,295"),
    ("cma_seed", -5, ">= 0"),
    ("initial_std", 1e6, "must be <= 10"),
    ("initial_radius", 11, "must be <= 10"),
    ("hyperbatch_weight_scale", 1e308, "must be <= 10"),
    ("hyperbatch_weight_scale", "inf", "finite number"),
    ("size_limit", 1e308, "must be <= 1,000"),
    ("size_limit_weight", 1e7, "must be <= 1,000,000"),
    ("cs", 2, "must be <= 1"),
    ("damps", 1e9, "must be <= 100"),
    ("max_images_per_call", 10**6, "must be <= 1,024"),
    ("validation_batches", 9, "must be <= 8"),
    ("validation_batches", "", "must not be empty"),
    ("seed_schedule", "random", "fixed, rotating"),
    ("loss_variant", "pairs", "union, target, consistency"),
    ("fade_guard", -1, "must be >= 0"),
    ("fade_guard", 1e9, "must be <= 100"),
])
def test_bad_values_name_the_argument(name, value, fragment):
    with pytest.raises(ScriptArgumentError) as info:
        parse_script_args(with_arg(name, value))
    message = str(info.value)
    assert f"script_args[{ARGUMENT_INDEX[name]}]" in message and name in message
    assert fragment in message


@pytest.mark.parametrize("count", [24, len(ARGUMENTS) + 1])
def test_wrong_number_of_arguments_lists_the_order(count):
    with pytest.raises(ValueError) as info:
        parse_script_args((default_args() * 2)[:count])
    assert f"takes 25 to {len(ARGUMENTS)} script_args (missing trailing ones take their defaults), got {count}" \
        in str(info.value)
    assert "0: targets" in str(info.value)


def test_numbers_may_arrive_as_strings_and_ints_as_floats():
    parsed = parse_script_args(with_arg("initial_std", "0.1"))
    assert parsed["initial_std"] == pytest.approx(0.1)
    assert parse_script_args(with_arg("generations", 4.0))["generations"] == 4


def test_targets_accept_base64_data_urls_jpeg_and_a_single_string():
    red, blue = png_base64((255, 0, 0)), png_base64((0, 0, 255), fmt="JPEG")
    encoded = parse_script_args(with_arg("targets", [red, "data:image/jpeg;base64," + blue]))["targets"]
    assert [(im.format, im.width, im.height) for im in encoded] == [("PNG", 8, 8), ("JPEG", 8, 8)]
    images = [im.decode() for im in encoded]
    assert [im.mode for im in images] == ["RGB", "RGB"]
    assert images[0].getpixel((0, 0)) == (255, 0, 0)
    assert images[1].getpixel((0, 0))[2] > 200
    assert len(decode_target_images(red)) == 1


def test_targets_refuse_other_formats():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="BMP")
    with pytest.raises(ValueError, match="not a PNG, JPEG or WebP image"):
        decode_target_images(base64.b64encode(buffer.getvalue()).decode())


def encoded(image, fmt="PNG"):
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_targets_keep_their_mode_so_the_engine_converts_them():
    import numpy as np

    from prompt_pinning.score.targets import load_targets

    grey16 = Image.fromarray(np.full((8, 8), 16384, dtype=np.uint16))  # a quarter of full scale
    hidden = Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent, red underneath
    half = Image.new("RGBA", (8, 8), (0, 0, 255, 128))
    images = parse_script_args(with_arg("targets", [encoded(grey16), encoded(hidden), hidden]))["targets"]
    images.append(decode_target_images("data:image/png;base64," + encoded(half))[0])
    tensor = load_targets(images, 8, 8)
    assert tensor[0].mean().item() == pytest.approx(16384 / 65535, abs=1e-3)  # not clipped to white
    assert tensor[1].min().item() == pytest.approx(1.0) and tensor[2].min().item() == pytest.approx(1.0)
    assert tensor[3][:, 0, 0].tolist() == pytest.approx([127 / 255, 127 / 255, 1.0], abs=2e-3)


def test_a_plain_string_is_never_read_as_a_server_file(tmp_path):
    path = tmp_path / "secret.png"
    Image.new("RGB", (4, 4), (0, 255, 0)).save(path)
    with pytest.raises(ScriptArgumentError, match=r"targets.*base64.*data URL"):
        parse_script_args(with_arg("targets", [str(path)]))
    with pytest.raises(ValueError, match=r"targets\[0\].*base64"):
        decode_target_images(str(path))


def test_targets_refuse_huge_canvases_and_too_many_images():
    from prompt_pinning_webui.images import MAX_TARGETS

    buffer = io.BytesIO()
    Image.new("1", (5000, 4000)).save(buffer, format="PNG")  # 20 Mpixel in a few kilobytes
    with pytest.raises(ValueError, match=r"targets\[0\]: 5000x4000; at most 16,777,216 pixels"):
        decode_target_images([base64.b64encode(buffer.getvalue()).decode()])
    with pytest.raises(ValueError, match=rf"{MAX_TARGETS + 1} images given; at most {MAX_TARGETS}"):
        decode_target_images([png_base64()] * (MAX_TARGETS + 1))
