"""`make demo` / `make test` install only what is missing, and torch only when it is absent."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("setup_env", REPO / "tools" / "setup_env.py")
setup_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_env)


def test_nothing_is_installed_when_everything_is_there():
    assert setup_env.plan(["plots", "test"], REPO / "requirements-nodeps.txt") == []


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_setup_runs_no_pip_when_everything_is_there():
    done = subprocess.run(["make", "-s", "setup", f"PYTHON={sys.executable}"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "nothing to do" in done.stdout and "pip install" not in done.stdout


@pytest.mark.parametrize("cuda, index", [(False, ["--index-url", setup_env.CPU_WHEELS]), (True, [])])
def test_torch_is_installed_only_when_missing_from_cpu_wheels_without_cuda(cuda, index):
    steps = setup_env.plan(["plots"], torch_present=False, cuda=cuda)
    assert steps == [[f"torch=={setup_env.TORCH_VERSION}", *index]]
    assert setup_env.plan(["plots"], torch_present=True, cuda=cuda) == []


def test_a_missing_or_too_old_requirement_reinstalls_the_package_but_never_torch():
    present = setup_env.install.installed_version

    def without(name, version=None):
        return lambda n: version if n.lower() == name else present(n)

    for version in (without("matplotlib"), without("deap", "1.3.0"), without(setup_env.DISTRIBUTION)):
        (step,) = setup_env.plan(["plots"], torch_present=True, version=version)
        assert step == ["-e", f"{REPO}[plots]"]
    # a dependency whose name starts with "torch" is still the package's to install
    (step,) = setup_env.plan([], torch_present=True, version=without("torchsde"))
    assert step == ["-e", str(REPO)]
    nodeps = REPO / "requirements-nodeps.txt"
    (step,) = setup_env.plan([], nodeps, torch_present=True, version=without("k-diffusion"))
    assert step == ["--no-deps", "-r", str(nodeps)]


def test_the_readme_says_what_make_installs():
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "installs torch only when it cannot be imported" in readme
    assert "CPU wheels" in readme and "nothing to do" in readme


def test_make_test_installs_the_ray_extra_so_the_ray_tests_run():
    recipe = (REPO / "Makefile").read_text().split("setup-test:")[1].split("\n\n")[0]
    assert "ray" in recipe.split("--extras ")[1].split()[0].split(",")
    present = setup_env.install.installed_version
    (step,) = setup_env.plan(["ray"], torch_present=True, version=lambda n: None if n == "ray" else present(n))
    assert step == ["-e", f"{REPO}[ray]"]
