"""Masked targets: the loss counts only the pixels the mask marks, in every pair it compares."""
import io
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

import flip_evaluator
import skimage.data as skdata

from prompt_pinning.score import flip
from prompt_pinning.config import PinningConfig
from prompt_pinning.score.loss import PinningLoss
from prompt_pinning.score.masks import MaskError, alpha_mask, build_mask, load_mask
from prompt_pinning.rendering import GenerationSettings

SUPPORT = 10  # FLIP's widest filter (the colour CSF at the default ppd) reaches 10 pixels


@pytest.fixture(scope="module")
def photo():
    return skdata.astronaut().astype(np.float32) / 255.0


def tiles(photo, size, *corners):
    return torch.from_numpy(np.stack([photo[t:t + size, l:l + size] for t, l in corners])).permute(0, 3, 1, 2).contiguous()


def left_mask(size, columns):
    mask = torch.zeros(size, size)
    mask[:, :columns] = 1.0
    return mask


def test_a_change_outside_the_mask_leaves_the_loss_unchanged_and_one_inside_changes_it(photo):
    targets, images = tiles(photo, 64, (100, 150), (120, 170)), tiles(photo, 64, (101, 152), (300, 250), (30, 200))
    loss = PinningLoss(targets, mask=left_mask(64, 24))
    before = loss.evaluate(images).value
    outside = images.clone()
    outside[:, :, :, 24 + SUPPORT + 1:] = torch.rand(3, 3, 64, 64 - 24 - SUPPORT - 1, generator=torch.Generator().manual_seed(1))
    assert loss.evaluate(outside).value == before
    inside = images.clone()
    inside[1, :, 10:20, 5:15] = 1.0 - inside[1, :, 10:20, 5:15]
    assert loss.evaluate(inside).value != before
    unmasked = PinningLoss(targets)
    assert unmasked.evaluate(outside).value != unmasked.evaluate(images).value  # the change is real


def test_batch_pairs_are_masked_too(photo):
    images = tiles(photo, 64, (101, 152), (300, 250), (30, 200))
    loss = PinningLoss(variant="consistency", mask=left_mask(64, 24))
    outside = images.clone()
    outside[0, :, :, 40:] = 0.0
    assert loss.evaluate(outside).value == loss.evaluate(images).value


def test_a_mask_of_ones_equals_the_unmasked_loss_bit_for_bit(crops):
    targets, images = crops[:3], crops[3:8]
    traces = np.array([[0, 0], [0, 1], [1, 2], [1, 3], [1, 4]])
    plain = PinningLoss(targets).evaluate(images, traces)
    ones = PinningLoss(targets, mask=torch.ones(crops.shape[2:])).evaluate(images, traces)
    assert plain.value == ones.value
    assert np.array_equal(plain.pair_losses, ones.pair_losses)


def test_without_a_mask_pair_values_are_the_plain_flip_means(crops):
    targets, images = crops[:2], crops[2:5]
    result = PinningLoss(targets, hyperbatch_weights=False).evaluate(images)
    union = flip.preprocess(torch.cat([targets, images]))
    i, j = result.pairs[:, 0], result.pairs[:, 1]
    assert np.array_equal(result.pair_losses, flip.pair_means(union, union, i, j).numpy())


def reference_map(ref, test):
    errmap, _, _ = flip_evaluator.evaluate(np.ascontiguousarray(ref), np.ascontiguousarray(test), "LDR",
                                           applyMagma=False, computeMeanError=False)
    return errmap[..., 0].astype(np.float64)


def test_a_rectangle_mask_gives_the_flip_mean_over_that_rectangle(photo):
    ref, test = photo[100:164, 200:264], photo[103:167, 205:269]
    top, bottom, left, right = 8, 56, 4, 44
    mask = torch.zeros(64, 64)
    mask[top:bottom, left:right] = 1.0
    ours = PinningLoss(tiles(photo, 64, (100, 200)), mask=mask, hyperbatch_weights=False)
    value = ours.evaluate(tiles(photo, 64, (103, 205))).pair_losses[0]
    # The whole images' error map, averaged over the rectangle.
    full = reference_map(ref, test)
    assert value == pytest.approx(full[top:bottom, left:right].mean(), rel=1e-5)
    # flip-evaluator on the crop: its filters see replicated edges where ours see the neighbours,
    # so the two agree inside the rectangle, SUPPORT pixels from its edges.
    crop = reference_map(ref[top:bottom, left:right], test[top:bottom, left:right])
    inner = torch.zeros(64, 64)
    inner[top + SUPPORT:bottom - SUPPORT, left + SUPPORT:right - SUPPORT] = 1.0
    ours_inner = PinningLoss(tiles(photo, 64, (100, 200)), mask=inner, hyperbatch_weights=False)
    value_inner = ours_inner.evaluate(tiles(photo, 64, (103, 205))).pair_losses[0]
    assert value_inner == pytest.approx(crop[SUPPORT:-SUPPORT, SUPPORT:-SUPPORT].mean(), rel=1e-5)
    assert abs(value - crop.mean()) < 0.05  # the edges move the crop's mean only a little


def test_grey_weighs_in_between(crops):
    targets, images = crops[:1], crops[1:2]
    maps = flip.flip_error_map(targets, images)[0].double()
    mask = torch.zeros(24, 24)
    mask[:, :12], mask[:, 12:] = 1.0, 0.25
    value = PinningLoss(targets, mask=mask, hyperbatch_weights=False).evaluate(images).pair_losses[0]
    expected = (maps[:, :12].sum() + 0.25 * maps[:, 12:].sum()) / (24 * 12 * 1.25)
    assert value == pytest.approx(float(expected), rel=1e-6)


# ---- loading masks ------------------------------------------------------------------------

def save(image, path, fmt="PNG"):
    image.save(path, format=fmt)
    return path


def test_a_grey_png_is_read_as_weights_and_resized_to_the_generation_size(tmp_path):
    values = np.zeros((16, 32), dtype=np.uint8)
    values[:, :16] = 255
    values[:, 16:] = 128
    path = save(Image.fromarray(values, "L"), tmp_path / "mask.png")
    mask = load_mask(path, 8, 4)
    assert mask.shape == (4, 8)
    assert torch.allclose(mask[:, :3], torch.ones(4, 3)) and torch.allclose(mask[:, 5:], torch.full((4, 3), 128 / 255))


def test_colour_masks_count_by_luminance_and_their_transparency_as_black():
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., :3] = 255
    rgba[:, :2, 3] = 255  # right half transparent
    mask = load_mask(Image.fromarray(rgba, "RGBA"), 4, 4)
    assert mask[:, :2].eq(1).all() and mask[:, 2:].eq(0).all()


def test_the_target_alpha_channel_is_a_mask(tmp_path):
    rgba = np.full((8, 8, 4), 200, dtype=np.uint8)
    rgba[..., 3] = 0
    rgba[:, :4, 3] = 255
    path = save(Image.fromarray(rgba, "RGBA"), tmp_path / "target.png")
    config = PinningConfig("x", targets=[path], target_mask_source="target alpha",
                           generation=GenerationSettings(1, width=8, height=8))
    mask = build_mask(config)
    assert mask[:, :4].eq(1).all() and mask[:, 4:].eq(0).all()
    with pytest.raises(MaskError, match="no alpha channel"):
        alpha_mask(Image.new("RGB", (8, 8)), 8, 8)


def test_the_inverted_inpaint_mask_counts_the_unmasked_part():
    drawn = np.zeros((8, 8), dtype=np.uint8)
    drawn[:, :2] = 255
    config = PinningConfig("x", target_mask=Image.fromarray(drawn, "L"), target_mask_source="inverted inpaint mask",
                           generation=GenerationSettings(1, width=8, height=8))
    mask = build_mask(config)
    assert mask[:, :2].eq(0).all() and mask[:, 2:].eq(1).all()
    config.target_mask = None
    with pytest.raises(MaskError, match="inpaint tab"):
        build_mask(config)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4), dtype=np.uint8), "black everywhere"),
    (np.full((4, 4), 1.5, dtype=np.float32), r"\[0, 1\]"),
    (np.zeros((4, 4, 3), dtype=np.float32), "one channel"),
    ("no-such-file.png", "no such file"),
])
def test_bad_masks_are_refused_with_their_name(bad, message):
    with pytest.raises(MaskError, match=f"target_mask.*{message}"):
        load_mask(bad, 4, 4)


def test_only_png_jpeg_and_webp_files_are_opened(tmp_path):
    path = save(Image.new("L", (4, 4), 255), tmp_path / "mask.gif", "GIF")
    with pytest.raises(MaskError, match="not a PNG, JPEG or WebP image"):
        load_mask(path, 4, 4)
    buffer = io.BytesIO()
    Image.new("L", (4, 4), 255).save(buffer, format="WEBP")
    (tmp_path / "mask.webp").write_bytes(buffer.getvalue())
    assert load_mask(tmp_path / "mask.webp", 4, 4).eq(1).all()


def test_a_mask_of_another_size_than_the_images_is_refused(crops):
    with pytest.raises(ValueError, match="mask"):
        PinningLoss(crops[:2], mask=torch.ones(8, 8))


def _claimed_size_png(path, side: int):
    """A valid 1x1 PNG whose header then claims side x side pixels."""
    Image.new("L", (1, 1), 255).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = side.to_bytes(4, "big") * 2
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # the IHDR chunk's CRC
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("side", [5000, 70000])  # over the mask limit; over Pillow's bomb limit too
def test_masks_and_targets_share_one_opener_and_its_messages(tmp_path, side):
    from prompt_pinning.score.targets import TargetImageError, load_targets

    huge = _claimed_size_png(tmp_path / "huge.png", side)
    text = tmp_path / "text.png"
    text.write_text("not an image")
    for path, reason in ((huge, "at most 16,777,216 pixels"), (text, "not a PNG, JPEG or WebP image"),
                         (tmp_path / "none.png", "no such file")):
        with pytest.raises(MaskError) as as_mask:
            load_mask(path, 4, 4)
        with pytest.raises(TargetImageError) as as_target:
            load_targets([path], 4, 4)
        assert reason in str(as_mask.value) and reason in str(as_target.value)
        assert str(as_mask.value).startswith(f"target_mask {path}: ")
        assert str(as_target.value).startswith(f"target image {path}: ")
        assert str(as_mask.value).split(": ", 1)[1] == str(as_target.value).split(": ", 1)[1]
