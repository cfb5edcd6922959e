"""Loading target images: files, PIL images and arrays of any common kind."""
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from prompt_pinning.score.targets import TargetImageError, crop_box, load_targets


def rgb_pattern(h, w):
    rng = np.random.default_rng(h * 1000 + w)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_rgb_file_of_the_right_size_loads_exactly(tmp_path):
    pixels = rgb_pattern(12, 16)
    path = tmp_path / "target.png"
    Image.fromarray(pixels).save(path)
    out = load_targets([path, str(path)], width=16, height=12)
    assert out.shape == (2, 3, 12, 16) and out.dtype == torch.float32
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    assert torch.equal(out[0], expected) and torch.equal(out[1], expected)


def test_rgba_is_composited_over_white(tmp_path):
    pixels = np.zeros((4, 4, 4), np.uint8)
    pixels[..., 0] = 200  # red channel
    pixels[:2, :, 3] = 255  # top half opaque, bottom half transparent
    pixels[2, :, 3] = 128
    path = tmp_path / "rgba.png"
    Image.fromarray(pixels, "RGBA").save(path)
    out = load_targets(path, 4, 4)[0]
    assert torch.allclose(out[:, 0, 0], torch.tensor([200 / 255, 0, 0]))
    assert torch.allclose(out[:, 3, 0], torch.ones(3))
    a = 128 / 255
    assert torch.allclose(out[:, 2, 0], torch.tensor([200 / 255 * a + 1 - a, 1 - a, 1 - a]), atol=1e-6)
    grey_alpha = Image.fromarray(pixels[..., [0, 3]], "LA")
    flat = load_targets(grey_alpha, 4, 4)[0]
    assert torch.allclose(flat[:, 0, 0], torch.full((3,), 200 / 255))
    assert torch.allclose(flat[:, 3, 0], torch.ones(3))


def test_greyscale_palette_and_16_bit(tmp_path):
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    palette = Image.fromarray(rgb_pattern(8, 8)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "palette.png")
    deep = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000 + 7)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = load_targets([tmp_path / "grey.png", tmp_path / "palette.png", tmp_path / "deep.png"], 8, 8)
    assert torch.equal(out[0, 0], torch.from_numpy(grey).float() / 255)
    assert torch.equal(out[0, 0], out[0, 1]) and torch.equal(out[0, 1], out[0, 2])
    expected_palette = torch.from_numpy(np.array(palette.convert("RGB"))).permute(2, 0, 1).float() / 255
    assert torch.equal(out[1], expected_palette)
    assert torch.allclose(out[2, 1], torch.from_numpy(deep.astype(np.float32) / 65535), atol=1e-7)


def test_transparent_palette_image_is_flattened(tmp_path):
    image = Image.new("P", (4, 4), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    image.info["transparency"] = 0  # index 0 (black) is transparent
    image.save(tmp_path / "p.png", transparency=0)
    out = load_targets(tmp_path / "p.png", 4, 4)[0]
    assert torch.allclose(out[:, 0, 0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(out[:, 1, 1], torch.ones(3))


def test_other_size_is_cropped_to_aspect_and_resized_with_a_log_line(tmp_path, caplog):
    # Three vertical bands (red, green, blue), 90x30: the centred square is the green band.
    bands = np.zeros((30, 90, 3), np.uint8)
    bands[:, :30, 0] = bands[:, 30:60, 1] = bands[:, 60:, 2] = 255
    path = tmp_path / "wide.png"
    Image.fromarray(bands).save(path)
    with caplog.at_level(logging.INFO, logger="prompt_pinning.score.targets"):
        out = load_targets([path], width=16, height=16)[0]
    assert out.shape == (3, 16, 16)
    assert torch.allclose(out[1, :, 2:-2], torch.ones(16, 12), atol=1e-3)
    assert out[0].max() < 0.1 and out[2].max() < 0.1
    assert "wide.png" in caplog.text and "90x30" in caplog.text and "16x16" in caplog.text
    assert "cropped" in caplog.text


def test_crop_box_keeps_the_aspect_ratio():
    assert crop_box(90, 30, 16, 16) == (30, 0, 30, 30)
    assert crop_box(100, 200, 768, 512) == (0, 66, 100, 67)  # (200 - 67) // 2
    assert crop_box(64, 64, 64, 64) == (0, 0, 64, 64)


def test_unreadable_or_missing_file_names_the_file(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(TargetImageError, match="notes.png"):
        load_targets([bad], 8, 8)
    with pytest.raises(TargetImageError, match="missing.png"):
        load_targets([tmp_path / "missing.png"], 8, 8)


def test_arrays_and_tensors_in_common_layouts():
    pixels = rgb_pattern(6, 5)
    expected = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    as_chw_tensor = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    sixteen = pixels.astype(np.uint16) * 257
    out = load_targets([pixels, as_chw_tensor, sixteen, Image.fromarray(pixels)], 5, 6)
    for k in range(4):
        assert torch.allclose(out[k], expected, atol=1e-6)
    batch = load_targets(np.stack([pixels, pixels]), 5, 6)
    assert batch.shape == (2, 3, 6, 5)
    mask = load_targets(np.eye(4, dtype=bool), 4, 4)[0]
    assert torch.equal(mask[2], torch.eye(4))
    assert load_targets([], 8, 8).shape == (0, 3, 8, 8)


def test_bad_arrays_get_clear_errors():
    with pytest.raises(TargetImageError, match=r"\[0, 1\]"):
        load_targets(np.full((4, 4, 3), 255.0), 4, 4)
    with pytest.raises(TargetImageError, match="NaN"):
        load_targets(np.full((4, 4, 3), np.nan), 4, 4)
    with pytest.raises(TargetImageError, match="colour channels"):
        load_targets(np.zeros((5, 6, 7), np.float32), 4, 4)
    with pytest.raises(TargetImageError, match="expected a file path"):
        load_targets([42], 4, 4)
    with pytest.raises(ValueError, match="width"):
        load_targets([], 0, 4)
