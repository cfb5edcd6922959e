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
