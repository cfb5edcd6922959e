"""preload.py, install.py, the host tokenizer adapter, the page script and the API docs."""
import argparse
import importlib.util
import re
import shutil
import subprocess

import pytest

import webui_stand_in

from prompt_pinning_webui.args import ARGUMENTS
from prompt_pinning_webui.tokenizer import HostTokenizer, text_encoders

REPO = webui_stand_in.REPO


def load(path):
    spec = importlib.util.spec_from_file_location(path.name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_preload_adds_the_command_line_options():
    parser = argparse.ArgumentParser()
    load(REPO / "preload.py").preload(parser)
    args = parser.parse_args(["--prompt-pinning-max-images-per-call", "16"])
    assert args.prompt_pinning_max_images_per_call == 16 and args.prompt_pinning_no_samplers is False
    assert parser.parse_args([]).prompt_pinning_max_images_per_call == 0


def test_install_needs_nothing_when_present_and_never_touches_torch(monkeypatch):
    install = load(REPO / "install.py")
    assert install.missing_requirements() == []
    assert not any(r.lower().startswith(("torch", "numpy", "pillow")) for r in install.REQUIREMENTS.values())
    versions = {"deap": "1.4.3"}
    monkeypatch.setattr(install, "installed_version", lambda name: versions.get(name, "9"))
    assert install.missing_requirements() == ["deap==1.4.4"]
    installed = []
    monkeypatch.setattr(install, "pip_install", installed.append)
    install.main()
    assert installed == [["deap==1.4.4"]]


def test_install_gives_pip_the_installed_numpy_scipy_torch_and_pillow_as_constraints(monkeypatch):
    import subprocess

    install = load(REPO / "install.py")
    versions = {"numpy": "1.26.2", "scipy": "1.11.4", "torch": "2.1.2", "pillow": "9.5.0"}
    monkeypatch.setattr(install, "installed_version", lambda name: versions.get(name))
    monkeypatch.setenv("PROMPT_PINNING_MAPS", "1")
    commands = []

    def pip(command):
        pinned = command[command.index("-c") + 1]
        with open(pinned, encoding="utf-8") as handle:
            commands.append((command[command.index(pinned) + 1:], handle.read().split()))
        if "umap-learn" in command:  # it would need another numpy: pip refuses under the constraints
            raise subprocess.CalledProcessError(1, command)

    monkeypatch.setattr(install.subprocess, "check_call", pip)
    install.main()  # an optional package that cannot be had is a warning, not a failed launch
    pinned = ["torch==2.1.2", "numpy==1.26.2", "scipy==1.11.4", "pillow==9.5.0"]
    assert commands == [(["deap==1.4.4", "regex", "ftfy", "tqdm>=4.60"], pinned),
                        (["scikit-learn>=1.3", "umap-learn"], pinned)]


class FakeHF:
    def __init__(self, vocab):
        self.vocab = vocab

    def convert_ids_to_tokens(self, ids):
        inverse = {v: k for k, v in self.vocab.items()}
        return [inverse[i] for i in ids]


class Embedder:
    """A1111's custom-words embedder surface: tokenize(texts) -> ids without start/end."""

    def __init__(self, vocab, hf=True):
        self.vocab = vocab
        if hf:
            self.tokenizer = FakeHF(vocab)

    def tokenize(self, texts):
        return [[self.vocab[w + "</w>"] for w in t.split()] for t in texts]


class Model:
    pass


def test_tokenizer_sd1_and_sdxl_two_encoders():
    vocab = {"red</w>": 5, "circle</w>": 9}
    sd1 = Model()
    sd1.cond_stage_model = Embedder(vocab)
    tok = HostTokenizer.from_model(sd1)
    assert tok.encode("red circle") == [5, 9] and tok.token_strings([9, 5]) == ["circle</w>", "red</w>"]
    sdxl = Model()
    sdxl.conditioner = Model()
    sdxl.conditioner.embedders = [Embedder(vocab), object(), Embedder(vocab, hf=False)]
    assert len(text_encoders(sdxl)) == 2
    assert HostTokenizer.from_model(sdxl).encode("circle") == [9]
    sdxl.conditioner.embedders[2] = Embedder({"red</w>": 5, "circle</w>": 10}, hf=False)
    with pytest.raises(ValueError, match="split"):
        HostTokenizer.from_model(sdxl).encode("circle")
    with pytest.raises(ValueError, match="no text encoder"):
        text_encoders(Model())


def test_no_host_imports_at_module_level():
    for path in (REPO / "prompt_pinning_webui").glob("*.py"):
        for line in path.read_text().splitlines():
            assert not re.match(r"(from|import) modules", line), f"{path.name}: {line}"


IMPORT_ENGINE_WITH_MODULES_BLOCKED = r"""
import importlib, json, pkgutil, sys

attempts = []

class BlockWebUI:
    def find_spec(self, name, path=None, target=None):
        if name == "modules" or name.startswith("modules."):
            attempts.append(name)
            raise ModuleNotFoundError(f"the WebUI's {name!r} is blocked")
        return None

sys.path.insert(0, sys.argv[1])  # the stand-in WebUI: importable but for the blocker
sys.meta_path.insert(0, BlockWebUI())
try:
    import modules.shared
except ModuleNotFoundError:
    pass
assert attempts == ["modules"], attempts  # the blocker works
del attempts[:]
imported, culprits = [], {}

def load(name):
    before = len(attempts)
    module = importlib.import_module(name)  # any error fails the test too
    imported.append(name)
    if len(attempts) > before:
        culprits[name] = attempts[before:]
    return module

for package in ("prompt_pinning", "hyperbatch"):
    root = load(package)
    for info in pkgutil.walk_packages(root.__path__, package + "."):
        if not info.name.endswith(".__main__"):  # that runs the CLI (prompt_pinning.cli is loaded here)
            load(info.name)
print(json.dumps({"imported": imported, "culprits": culprits, "attempts": attempts}))
"""


def test_engine_imports_without_the_webui():
    """Every engine module imports in a fresh interpreter where ``modules`` cannot be found."""
    import json
    import sys

    done = subprocess.run([sys.executable, "-c", IMPORT_ENGINE_WITH_MODULES_BLOCKED, str(webui_stand_in.FAKE_WEBUI)],
                          capture_output=True, text=True, cwd=REPO, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["culprits"] == {} and report["attempts"] == []
    engine = {path.relative_to(REPO).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
              for package in ("prompt_pinning", "hyperbatch") for path in (REPO / package).rglob("*.py")
              if path.name != "__main__.py"}
    assert engine <= set(report["imported"])


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node")
def test_page_script_parses():
    subprocess.run(["node", "--check", str(REPO / "javascript" / "prompt_pinning.js")], check=True)


def test_api_doc_lists_every_argument_in_order():
    doc = (REPO / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", doc, flags=re.M)
    assert [(int(i), n) for i, n in rows] == [(i, s.name) for i, s in enumerate(ARGUMENTS)]
    assert '"script_name": "prompt pinning"' in doc and "webuiapi" in doc
