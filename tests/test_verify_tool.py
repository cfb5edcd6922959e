"""tools/a1111_verify.py names the host it talks to (A1111 or Forge) from /internal/sysinfo."""
import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import webui_stand_in

TOOL = webui_stand_in.REPO / "tools" / "a1111_verify.py"


def load_tool():
    spec = importlib.util.spec_from_file_location("a1111_verify", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sysinfo_server():
    answers = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            status, body = answers.get(self.path, (404, {"detail": "Not Found"}))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", answers
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("version, kind", [("v1.10.1", "AUTOMATIC1111 WebUI"),
                                           ("f2.0.1v1.10.1-previous-669-gdfdcbab6", "Forge")])
def test_the_host_and_its_version_are_printed(sysinfo_server, capsys, version, kind):
    url, answers = sysinfo_server
    answers["/internal/sysinfo"] = (200, {"Version": version, "Python": "3.10.14"})
    assert load_tool().show_host(url) == version
    assert f"host: {kind}, version {version}, Python 3.10.14" in capsys.readouterr().out


def test_a_webui_without_sysinfo_is_reported_not_failed(sysinfo_server, capsys):
    url, _ = sysinfo_server
    assert load_tool().show_host(url) is None
    assert "HTTP 404; version unknown" in capsys.readouterr().out


def load_lora_part():
    spec = importlib.util.spec_from_file_location("a1111_verify_lora", TOOL.parent / "a1111_verify_lora.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png(image, **options):
    import base64
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_the_lora_part_reads_the_pixels_of_a_png(mode):
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(1).integers(0, 256, (9, 7, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA").convert(mode)
    width, height, per_pixel, data = load_lora_part().png_pixels(png(image, optimize=True))
    assert (width, height, per_pixel) == (7, 9, len(mode))
    assert data == np.asarray(image).tobytes()  # every filter type (optimize picks per row) undone


def test_the_lora_part_measures_how_much_images_differ():
    import numpy as np
    from PIL import Image

    part = load_lora_part()
    base = np.full((8, 8, 3), 100, dtype=np.uint8)
    moved = base.copy()
    moved[:4] += 20  # half the pixels, 20 levels
    a, b = png(Image.fromarray(base)), png(Image.fromarray(moved))
    assert part.difference(a, a) == 0
    assert part.difference(a, b) == pytest.approx(10.0)
    assert part.difference(a, png(Image.fromarray(base[:4]))) == float("inf")


def test_the_lora_part_reads_lora_hashes_from_an_infotext():
    part = load_lora_part()
    text = ('a cat <lora:random:0.8>\nNegative prompt: green\nSteps: 3, Seed: 1, '
            'Lora hashes: "random: 0123abcd, other: 4567", Version: v1.10.1')
    assert part._field(text, "Lora hashes") == "random: 0123abcd, other: 4567"
    assert part._field(text, "Steps") == "3"
    assert part._field(text, "Hypernet hashes") is None


def test_arguments_are_found_by_option_name_under_the_panel_labels():
    from prompt_pinning.options import OPTIONS
    from prompt_pinning_webui.panel import label

    tool = load_tool()
    info = {"args": [{"label": label(option.name), "value": option.ui_default} for option in OPTIONS]}
    args = tool.script_args_from(info, {"initial_std": -1, "resume": "run"})
    assert args[5] == -1 and args[24] == "run"
    assert [i for i, (a, o) in enumerate(zip(args, OPTIONS)) if a != o.ui_default] == [5, 24]
    info["args"][24]["label"] = "Something else"
    with pytest.raises(SystemExit, match="argument 24 \\(resume\\)"):
        tool.arg_index(info, "resume")
    args = tool.script_args_from(info, {"lambda_": 2, "network_units": True, "max_images_per_call": 6})
    assert (args[7], args[39]) == (2, True) and args[tool.arg_index(info, "max_images_per_call")] == 6
