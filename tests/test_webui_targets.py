"""Target files by name: only Gradio's own upload copies are read, every other name is refused unread."""
import io
import os

import pytest
from PIL import Image

import webui_stand_in

webui_stand_in.install()

from prompt_pinning_webui import images as target_images  # noqa: E402
from prompt_pinning_webui.args import ScriptArgumentError, default_args, parse_script_args  # noqa: E402
from prompt_pinning_webui.args import ARGUMENT_INDEX  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_host():
    webui_stand_in.reset()


def png_bytes(color):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def app():
    from modules import shared

    return shared.demo


class OpenSpy:
    """Stands in for ``open`` in the images module: records every path it is asked for."""

    def __init__(self):
        self.paths = []

    def __call__(self, path, *args, **kwargs):
        self.paths.append(str(path))
        return open(path, *args, **kwargs)


@pytest.fixture
def opened(monkeypatch):
    spy = OpenSpy()
    monkeypatch.setattr(target_images, "open", spy, raising=False)
    return spy.paths


def test_gradio_uploads_are_read_as_the_file_object_and_as_a_dict(opened):
    upload = app().upload(png_bytes((0, 255, 0)))
    images = target_images.decode_target_images([upload, {"name": upload.name}])
    assert [im.decode().getpixel((0, 0)) for im in images] == [(0, 255, 0), (0, 255, 0)]
    assert opened == [upload.name, upload.name]


def outside_png(tmp_path):
    path = tmp_path / "outside.png"
    path.write_bytes(png_bytes((255, 0, 0)))
    return path


def refused_names(tmp_path):
    """Names a caller might try: system files, a real PNG outside the uploads, a symlink, '..'."""
    upload = app().upload(png_bytes((0, 0, 255)))
    upload_dir = os.path.dirname(upload.name)
    link = os.path.join(upload_dir, "link.png")
    os.symlink(outside_png(tmp_path), link)
    return {
        "passwd": "/etc/passwd",
        "environ": "/proc/self/environ",
        "missing": str(tmp_path / "missing.png"),
        "outside png": str(outside_png(tmp_path)),
        "symlink in the upload folder": link,
        "dot-dot out of the upload folder": os.path.join(upload_dir, "..", os.path.basename(upload_dir),
                                                         os.path.basename(upload.name)),
        "relative": os.path.relpath(str(outside_png(tmp_path))),
    }


def test_every_other_name_gets_one_refusal_without_being_opened(tmp_path, opened):
    messages = {}
    for label, name in refused_names(tmp_path).items():
        for form in ({"name": name}, type("Uploaded", (), {"name": name})()):
            with pytest.raises(ValueError) as caught:
                target_images.decode_target_images([form])
            messages[label] = str(caught.value)
    assert opened == []
    assert len(set(messages.values())) == 1, messages  # missing and existing files look the same
    message = next(iter(messages.values()))
    assert "targets[0]" in message and "base64" in message and "/etc" not in message


def test_without_a_gradio_app_no_name_is_read(tmp_path, opened):
    from modules import shared

    upload = app().upload(png_bytes((0, 255, 0)))
    shared.demo = None  # as with --nowebui: the API alone
    with pytest.raises(ValueError, match="uploaded through the WebUI"):
        target_images.decode_target_images({"name": upload.name})
    assert opened == []


def test_an_upload_that_vanished_gets_the_same_refusal(tmp_path):
    upload = app().upload(png_bytes((0, 255, 0)))
    refused = {"name": "/etc/passwd"}
    with pytest.raises(ValueError) as other:
        target_images.decode_target_images(refused)
    os.remove(upload.name)
    with pytest.raises(ValueError) as gone:
        target_images.decode_target_images({"name": upload.name})
    assert str(gone.value) == str(other.value)


def test_script_arguments_refuse_a_name_with_the_argument_named():
    args = default_args()
    args[ARGUMENT_INDEX["targets"]] = [{"name": "/etc/passwd"}]
    with pytest.raises(ScriptArgumentError, match=r"targets.*uploaded through the WebUI"):
        parse_script_args(args)
