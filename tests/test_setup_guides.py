"""The setup guides' shell commands: valid bash, every name defined, the Forge guide standing alone."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
GUIDES = ["forge_setup.md", "a1111_setup.md"]
SHELL_NAMES = {"HOME", "PATH", "PWD", "@", "#", "?", *map(str, range(10))}


def bash_blocks(name: str) -> list[str]:
    return re.findall(r"^ *```bash\n(.*?)^ *```", (DOCS / name).read_text(encoding="utf-8"), re.S | re.M)


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("name", GUIDES)
def test_every_bash_block_of_the_guides_parses(name):
    blocks = bash_blocks(name)
    assert blocks
    for block in blocks:
        done = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, f"{name}: {done.stderr}\n{block}"


def test_the_forge_guide_defines_every_name_it_uses():
    text = "\n".join(bash_blocks("forge_setup.md"))
    used = set(re.findall(r"\$\{?([A-Za-z_][A-Za-z_0-9]*|\d|[@#?])", text))
    defined = set(re.findall(r"(?:export\s+|local\s+|^\s*|;\s*)([A-Za-z_][A-Za-z_0-9]*)=", text, re.M))
    defined |= set(re.findall(r"\bfor\s+([A-Za-z_][A-Za-z_0-9]*)\s+in\b", text))
    defined |= {name for line in re.findall(r"local ([^\n;]+)", text) for name in re.findall(r"(\w+)=", line)}
    assert used - defined - SHELL_NAMES == set()
    assert {"FORGE", "REPO", "PY310"} <= defined and "A1111" not in used


def test_the_forge_guide_stands_alone():
    guide = (DOCS / "forge_setup.md").read_text(encoding="utf-8")
    blocks = bash_blocks("forge_setup.md")
    assert "Python 3.10" in guide and "pyenv install 3.10" in guide and '"$PY310" -m venv' in guide
    assert re.search(r"clone salesforce/BLIP \S+ \S+ BLIP\.gif", guide)  # the sparse rule
    (launch,) = [b for b in blocks if "launch.py" in b]
    assert "OMP_NUM_THREADS=1" in launch
    verify = [line for b in blocks for line in b.replace("\\\n", " ").splitlines() if "a1111_verify.py" in line]
    assert verify and all('--outputs "$FORGE/webui/outputs"' in line for line in verify)
    assert "Remote named 'origin'" in guide and "offline" in guide
    assert "make_random_checkpoint.py\" --ldm" in guide and "--text-config" in guide
