"""A WebUI's answers are checked before their images are decoded: count, header size, body size."""
import base64
import io
import json
import zlib

import pytest
from PIL import Image

from fake_webui_api import FakeWebUI
from prompt_pinning.remote.client import InstanceFault, WebUIInstance, answer_limit
from prompt_pinning.rendering import GenerationSettings

SETTINGS = GenerationSettings(seed=7, batch_size=2, steps=4, width=32, height=24, scheduler="karras")


def png(width: int, height: int, claimed: tuple[int, int] = None) -> str:
    """A PNG as base64; ``claimed``: the size its header says (its pixels stay width x height)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    if claimed is not None:
        data[16:24] = claimed[0].to_bytes(4, "big") + claimed[1].to_bytes(4, "big")
        data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return base64.b64encode(bytes(data)).decode("ascii")


class Crafted(FakeWebUI):
    """A fake whose renders answer with the given images (and padding)."""

    def __init__(self, images, pad: int = 0):
        super().__init__()
        self.answer = {"images": images, "info": json.dumps({"all_seeds": [7, 8]}), "pad": "x" * pad}

    def _render(self, request, body):
        self._send(request, 200, self.answer)


@pytest.fixture
def decoded(monkeypatch):
    """How many images were decoded."""
    import prompt_pinning.score.targets as targets

    calls = []
    real = targets.load_opened
    monkeypatch.setattr(targets, "load_opened", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


@pytest.mark.parametrize("images, says", [
    ([png(32, 24)] * 3, "3 images for a batch of 2"),
    ([png(32, 24), png(8, 8, claimed=(8000, 8000))], "8000x8000 for a render of 32x24"),
    ([png(32, 24), png(8, 8, claimed=(60000, 60000))], "at most 67,108,864 pixels"),
    ([png(32, 24), "not base64!"], "unreadable answer"),
])
def test_wrong_answers_are_refused_before_any_image_is_decoded(images, says, decoded):
    with Crafted(images[::-1]) as fake:
        with pytest.raises(InstanceFault, match=says):
            WebUIInstance(fake.url, timeout=10).render(("a red circle", ""), SETTINGS)
    assert decoded == []


def test_an_answer_larger_than_its_batch_could_be_is_not_read(decoded):
    limit = answer_limit(SETTINGS)
    assert limit < 2**21  # two 32x24 images and their info
    with Crafted([png(32, 24)] * 2, pad=limit) as fake:
        with pytest.raises(InstanceFault, match=f"at most {limit:,}"):
            WebUIInstance(fake.url, timeout=10).render(("a red circle", ""), SETTINGS)
    assert decoded == []
    with Crafted([png(32, 24)] * 2) as fake:  # the same answer without the padding is read
        batch, _ = WebUIInstance(fake.url, timeout=10).render(("a red circle", ""), SETTINGS)
    assert tuple(batch.images.shape) == (2, 3, 24, 32) and len(decoded) == 2
