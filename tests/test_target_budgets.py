"""Target images: only the allowed decoders run, and memory is bounded in pixels."""
import base64
import io
import os
import stat

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from prompt_pinning.run import checkpoint
from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.options import MAX_PIXELS_PER_GENERATION
from prompt_pinning.rendering import GenerationSettings
from prompt_pinning.score.targets import MAX_TARGETS, EncodedImage, TargetImageError, load_targets
from prompt_pinning_webui import images as webui_images

OTHER_FORMATS = ("EPS", "TIFF", "BMP", "GIF", "ICO", "PPM", "TGA")


def encoded(fmt, size=(16, 16)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def other_decoders(monkeypatch):
    """Every registered Pillow decoder except PNG/JPEG/WEBP, wrapped to record that it was asked."""
    Image.init()
    asked = []
    for name, (factory, accept) in list(Image.OPEN.items()):
        if name in ("PNG", "JPEG", "WEBP"):
            continue

        def spy(*args, _name=name, _factory=factory, **kwargs):
            asked.append(_name)
            return _factory(*args, **kwargs)

        monkeypatch.setitem(Image.OPEN, name, (spy, accept))
    return asked


@pytest.fixture
def stand_in_ghostscript(tmp_path, monkeypatch):
    """A fake ``gs`` that leaves a mark when Pillow runs it."""
    mark = tmp_path / "gs-ran"
    gs = tmp_path / "gs"
    gs.write_text(f"#!/bin/sh\ntouch '{mark}'\nexit 1\n")
    gs.chmod(gs.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", str(gs))
    return mark


@pytest.mark.parametrize("fmt", OTHER_FORMATS)
def test_api_targets_never_reach_another_decoder(fmt, other_decoders):
    text = base64.b64encode(encoded(fmt)).decode()
    with pytest.raises(ValueError, match=r"targets\[0\]: not a PNG, JPEG or WebP image"):
        webui_images.decode_target_images([text])
    assert other_decoders == []


def test_an_eps_target_never_runs_ghostscript(tmp_path, stand_in_ghostscript):
    eps = encoded("EPS")
    with pytest.raises(ValueError, match="not a PNG, JPEG or WebP"):
        webui_images.decode_target_images(["data:image/png;base64," + base64.b64encode(eps).decode()])
    path = tmp_path / "target.png"  # the name says PNG; the bytes are PostScript
    path.write_bytes(eps)
    with pytest.raises(TargetImageError, match="not a PNG, JPEG or WebP"):
        load_targets([path], 16, 16)
    assert not stand_in_ghostscript.exists()


def test_command_line_targets_never_reach_another_decoder(tmp_path, other_decoders):
    for fmt in ("TIFF", "ICO"):
        path = tmp_path / f"target.{fmt.lower()}"
        path.write_bytes(encoded(fmt))
        with pytest.raises(TargetImageError, match=f"target image {path}: not a PNG"):
            load_targets([path], 16, 16)
    assert other_decoders == []


def rss_bytes():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_api_targets_stay_encoded_until_loaded_one_at_a_time():
    big = base64.b64encode(encoded("PNG", (4096, 4096))).decode()  # 48 MiB decoded, a few kB as PNG
    before = rss_bytes()
    targets = webui_images.decode_target_images([big] * 4)
    grown = rss_bytes() - before
    assert all(isinstance(t, EncodedImage) and (t.width, t.height) == (4096, 4096) for t in targets)
    assert grown < 64 * 2**20, f"checking 4 targets kept {grown / 2**20:.0f} MiB"  # decoded: 192 MiB
    tensor = load_targets(targets, 64, 48)
    assert tensor.shape == (4, 3, 48, 64)
    assert tensor[:, 0].mean().item() == pytest.approx(200 / 255, abs=1e-3)


def settings(**changes):
    return GenerationSettings(seed=1, **changes)


def test_a_generation_is_capped_in_pixels_naming_the_option():
    ok = PinningConfig(positive="cat", generation=settings(batch_size=8, width=512, height=512), lambda_=128)
    ok.validate()
    huge = PinningConfig(positive="cat", generation=settings(batch_size=8, width=8192, height=8192), lambda_=4)
    with pytest.raises(ConfigError, match=r"lambda_: batch size x lambda_ x width x height = 8 x 4 x 8192 x 8192"):
        huge.validate()
    assert 8 * 4 * 8192 * 8192 > MAX_PIXELS_PER_GENERATION >= 8 * 128 * 512 * 512


def test_the_automatic_lambda_is_capped_in_pixels_too():
    from prompt_pinning.search.optimizer import make_optimizer

    config = PinningConfig(positive="cat", generation=settings(batch_size=64, width=2048, height=2048)).validate()
    with pytest.raises(ConfigError, match=r"lambda_: .* pixels per generation"):
        make_optimizer(config, 10, cma_seed=1)


def test_the_number_of_targets_is_the_same_limit_everywhere(tmp_path):
    assert webui_images.MAX_TARGETS == checkpoint.MAX_TARGETS == MAX_TARGETS == 64
    paths = [tmp_path / f"{i}.png" for i in range(MAX_TARGETS + 1)]
    with pytest.raises(ConfigError, match=rf"targets: {MAX_TARGETS + 1} images given; at most {MAX_TARGETS}"):
        PinningConfig(positive="cat", targets=paths, generation=settings()).validate()
    with pytest.raises(ValueError, match=rf"{MAX_TARGETS + 1} images given; at most {MAX_TARGETS}"):
        load_targets([np.zeros((4, 4, 3), np.uint8)] * (MAX_TARGETS + 1), 4, 4)


def test_command_line_refuses_more_targets_than_a_resume_accepts(tmp_path, capsys):
    from prompt_pinning.cli import main

    path = tmp_path / "t.png"
    Image.new("RGB", (8, 8)).save(path)
    args = ["--prompt", "cat", "--outdir", str(tmp_path / "out")]
    for _ in range(MAX_TARGETS + 1):
        args += ["--target", str(path)]
    assert main(args) != 0
    assert f"at most {MAX_TARGETS}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_targets_are_capped_in_pixels_at_the_generation_size():
    many = [np.zeros((8, 8, 3), np.uint8)] * 64
    with pytest.raises(ConfigError, match=r"targets: 64 images at the generation size 2048x2048"):
        PinningConfig(positive="cat", targets=many, generation=settings(width=2048, height=2048)).validate()
    with pytest.raises(TargetImageError, match=r"targets: 17 images at the generation size 2048x2048"):
        load_targets(many[:17], 2048, 2048)
