"""Every request that docs/api.md and the README show is sent, as written, to the WebUI stand-in."""
import json
import re
import sys
import types
from pathlib import Path

import pytest
from PIL import Image

import webui_stand_in

webui_stand_in.install()

from prompt_pinning_webui.args import ARGUMENT_INDEX, parse_script_args  # noqa: E402
from test_webui_script import engine_ready, script, txt2img_p  # noqa: E402,F401  (fixtures)

REPO = Path(__file__).resolve().parent.parent
API_MD = (REPO / "docs" / "api.md").read_text(encoding="utf-8")


def python_requests() -> list[str]:
    return [block for block in re.findall(r"```python\n(.*?)```", API_MD, re.S) if "api.txt2img(" in block]


def json_requests() -> list[dict]:
    blocks = re.findall(r"```json\n(.*?)```", API_MD, re.S)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    blocks += [m for m in re.findall(r"-d '(\{.*?\})'", readme, re.S)]
    return [json.loads(block) for block in blocks]


class Answer:
    def __init__(self, processed):
        self.info = {"infotexts": list(processed.infotexts)}
        self.images = list(processed.images)


def fake_webuiapi(script, tmp_path, sent: list):
    """``webuiapi`` whose txt2img checks the script_args as the API would, then runs them small."""

    class WebUIApi:
        def __init__(self, host="127.0.0.1", port=7860):
            pass

        def txt2img(self, script_name, script_args, prompt, negative_prompt="", seed=-1, **generation):
            assert script_name == "prompt pinning"
            sent.append(parse_script_args(script_args))  # as sent: a wrong position is refused here
            args = list(script_args)
            args[ARGUMENT_INDEX["generations"]], args[ARGUMENT_INDEX["lambda_"]] = 1, 2  # small, same options
            p = txt2img_p(tmp_path, prompt=prompt, negative_prompt=negative_prompt, seed=seed)
            p.is_api = True
            return Answer(script.run(p, *args))

    return types.SimpleNamespace(WebUIApi=WebUIApi)


def test_every_documented_request_is_found():
    assert len(python_requests()) == 3 and len(json_requests()) == 2


@pytest.mark.slow
@pytest.mark.parametrize("number", range(3))
def test_the_documented_python_requests_run(script, engine_ready, tmp_path, monkeypatch, number):  # noqa: F811
    code = python_requests()[number]
    sent = []
    monkeypatch.setitem(sys.modules, "webuiapi", fake_webuiapi(script, tmp_path, sent))
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "target.png")  # the examples' target.png
    printed = []
    exec(compile(code, f"docs/api.md example {number}", "exec"), {"print": printed.append, "__name__": "doc"})
    (config,) = sent
    assert len(printed) == 1 and "Pinning stop: completed" in printed[0], printed
    if "script_args[" in code and "data_url(mask)" in code:
        assert config["target_mask"] is not None and config["targets"]
    if "deepbooru" in code:
        assert config["wanted_tags"] == "red hair, (smile:1.5)" and config["tagger"] == "deepbooru"


@pytest.mark.parametrize("number", range(2))
def test_the_documented_json_requests_are_accepted(number):
    request = json_requests()[number]
    parsed = parse_script_args(request["script_args"])
    assert parsed["cma_seed"] in (None, 0, 1234)
