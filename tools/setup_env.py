"""What ``make demo`` and ``make test`` install: only what is missing.

* torch is installed only when it cannot be imported: ``torch==TORCH_VERSION``,
  from PyTorch's CPU wheels unless an NVIDIA driver (``nvidia-smi``) is present.
  A torch that is there (a WebUI's environment) is never replaced.
* The package and its extras (``pip install -e .[extras]``) only when the package
  or one of its requirements is missing, with the installed torch, numpy, scipy
  and Pillow as constraints (``install.py``), so pip cannot move them.
* ``--nodeps FILE``: requirements installed with ``--no-deps`` when missing.

With everything there it only reads installed versions and says so.
"""
from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
import install  # noqa: E402  (the WebUI's installer: installed versions and constraints)

TORCH_VERSION = "2.13.0"
CPU_WHEELS = "https://download.pytorch.org/whl/cpu"
DISTRIBUTION = "sd-prompt-pinning"


def has_cuda() -> bool:
    return shutil.which("nvidia-smi") is not None


def torch_importable() -> bool:
    return importlib.util.find_spec("torch") is not None


def unmet(requirements: list[str], version: Callable[[str], Optional[str]] = install.installed_version) -> list[str]:
    """The requirements whose distribution is missing or outside the requirement's versions."""
    try:
        from packaging.requirements import Requirement
    except ImportError:  # a fresh virtual environment: pip's own copy
        from pip._vendor.packaging.requirements import Requirement

    missing = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        found = version(requirement.name)
        if found is None or not requirement.specifier.contains(found.split("+")[0], prereleases=True):
            missing.append(text)
    return missing


def project_requirements(extras: list[str]) -> list[str]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        from pip._vendor import tomli as tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    return [*project["dependencies"], *(r for extra in extras for r in optional[extra])]


def file_requirements(path: Path) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line]


def requirement_name(requirement: str) -> str:
    """The distribution name of a requirement line ("torchsde>=0.2.6" -> "torchsde")."""
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()


def plan(extras: list[str], nodeps: Optional[Path] = None, *, torch_present: Optional[bool] = None,
         cuda: Optional[bool] = None, version: Callable[[str], Optional[str]] = install.installed_version
         ) -> list[list[str]]:
    """The ``pip install`` arguments still needed, in order; [] when everything is there."""
    steps = []
    if not (torch_importable() if torch_present is None else torch_present):
        steps.append([f"torch=={TORCH_VERSION}", *([] if (has_cuda() if cuda is None else cuda)
                                                   else ["--index-url", CPU_WHEELS])])
    needed = [r for r in project_requirements(extras) if requirement_name(r) != "torch"]
    if version(DISTRIBUTION) is None or unmet(needed, version):
        steps.append(["-e", f"{REPO}[{','.join(extras)}]" if extras else str(REPO)])
    if nodeps is not None and unmet(file_requirements(nodeps), version):
        steps.append(["--no-deps", "-r", str(nodeps)])
    return steps


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--extras", default="", help="comma-separated extras of the package, e.g. plots,test")
    parser.add_argument("--nodeps", type=Path, default=None, help="a requirements file installed with --no-deps")
    args = parser.parse_args(argv)
    steps = plan([e for e in args.extras.split(",") if e], args.nodeps)
    if not steps:
        print("setup: everything is installed; nothing to do")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        constraints = Path(folder) / "constraints.txt"
        constraints.write_text("\n".join(install.constraints()) + "\n", encoding="utf-8")
        for step in steps:
            pinned = [] if step[0].startswith("torch==") else ["-c", str(constraints)]
            print("setup: pip install " + " ".join(step), flush=True)
            subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", *pinned, *step])
    return 0


if __name__ == "__main__":
    sys.exit(main())
