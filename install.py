"""Install what prompt pinning needs into the WebUI's Python, only if missing.

A1111 runs this file from its own folder when the extension is installed and
at every launch (unless --skip-install). It is quick when everything is
present: it only reads installed package versions. It never installs,
upgrades or downgrades torch, numpy or Pillow (the WebUI pins numpy 1.26 and
Pillow 9.5, which prompt pinning supports); pip is told to leave installed
dependencies alone.

The report's clusters of explored weights (HDBSCAN, from scikit-learn) and its UMAP
layout are optional: they are installed only when the WebUI is launched with the
environment variable PROMPT_PINNING_MAPS=1 (for example in webui-user.sh/.bat).
"""
import importlib.metadata
import os
import subprocess
import sys

# distribution name -> pip requirement (versions that work with A1111 v1.10.1's pins)
REQUIREMENTS = {
    "deap": "deap==1.4.4",
    "regex": "regex",
    "ftfy": "ftfy",
    "tqdm": "tqdm>=4.60",
}
EXACT = {"deap": "1.4.4"}
# Only with PROMPT_PINNING_MAPS=1: clusters (HDBSCAN, scikit-learn >= 1.3) and a UMAP layout.
OPTIONAL_MAPS = {"scikit-learn": "scikit-learn>=1.3", "umap-learn": "umap-learn"}
MAPS_SWITCH = "PROMPT_PINNING_MAPS"
NEVER_TOUCH = ("torch", "numpy", "pillow")


def installed_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def maps_enabled(environ=None):
    value = (os.environ if environ is None else environ).get(MAPS_SWITCH, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def missing_requirements(environ=None):
    missing = []
    for name, requirement in REQUIREMENTS.items():
        version = installed_version(name)
        if version is None or (name in EXACT and version != EXACT[name]):
            missing.append(requirement)
    if maps_enabled(environ):
        missing += [requirement for name, requirement in OPTIONAL_MAPS.items() if installed_version(name) is None]
    return missing


def pip_install(requirements):
    command = [sys.executable, "-m", "pip", "install", "--prefer-binary",
               "--upgrade-strategy", "only-if-needed", *requirements]
    print("prompt pinning: installing " + " ".join(requirements), flush=True)
    subprocess.check_call(command)


def main():
    missing = missing_requirements()
    if any(r.lower().startswith(NEVER_TOUCH) for r in missing):
        raise RuntimeError(f"prompt pinning must not install {NEVER_TOUCH}: {missing}")
    if missing:
        pip_install(missing)


if __name__ == "__main__":
    main()
