"""Install what prompt pinning needs into the WebUI's Python, only if missing.

A1111 runs this file from its own folder when the extension is installed and
at every launch (unless --skip-install). It is quick when everything is
present: it only reads installed package versions. It never installs,
upgrades or downgrades torch, numpy, scipy or Pillow (the WebUI pins numpy 1.26 and
Pillow 9.5, which prompt pinning supports), not even as a dependency of what it
installs: pip gets a constraints file holding their installed versions, so a
package that would need others is refused by pip instead (an optional one with a
warning).

The report's clusters of explored weights (HDBSCAN, from scikit-learn) and its UMAP
layout are optional: they are installed only when the WebUI is launched with the
environment variable PROMPT_PINNING_MAPS=1 (for example in webui-user.sh/.bat).
"""
import importlib.metadata
import os
import subprocess
import sys
import tempfile

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
# Kept at their installed versions whatever is installed (the constraints pip is given).
PINNED = ("torch", "numpy", "scipy", "pillow")


def installed_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def maps_enabled(environ=None):
    value = (os.environ if environ is None else environ).get(MAPS_SWITCH, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def missing_requirements(environ=None, optional=False):
    """The required packages that are missing (or the optional map packages, when enabled)."""
    if optional:
        if not maps_enabled(environ):
            return []
        return [requirement for name, requirement in OPTIONAL_MAPS.items() if installed_version(name) is None]
    missing = []
    for name, requirement in REQUIREMENTS.items():
        version = installed_version(name)
        if version is None or (name in EXACT and version != EXACT[name]):
            missing.append(requirement)
    return missing


def constraints():
    """pip constraints holding torch, numpy, scipy and Pillow at their installed versions."""
    return [f"{name}=={version}" for name in PINNED if (version := installed_version(name)) is not None]


def pip_install(requirements):
    """``pip install`` with the installed torch, numpy, scipy and Pillow as constraints."""
    with tempfile.TemporaryDirectory() as folder:
        pinned = os.path.join(folder, "constraints.txt")
        with open(pinned, "w", encoding="utf-8") as handle:
            handle.write("\n".join(constraints()) + "\n")
        command = [sys.executable, "-m", "pip", "install", "--prefer-binary",
                   "--upgrade-strategy", "only-if-needed", "-c", pinned, *requirements]
        print("prompt pinning: installing " + " ".join(requirements), flush=True)
        subprocess.check_call(command)


def main():
    missing = missing_requirements()
    optional = missing_requirements(optional=True)
    if any(r.lower().startswith(NEVER_TOUCH) for r in missing + optional):
        raise RuntimeError(f"prompt pinning must not install {NEVER_TOUCH}: {missing + optional}")
    if missing:
        pip_install(missing)
    if optional:
        try:
            pip_install(optional)
        except subprocess.CalledProcessError:  # they would need another numpy or scipy: left out
            print("prompt pinning: the optional " + " ".join(optional) + " could not be installed without "
                  "changing numpy, scipy, torch or Pillow; the report's maps go without clusters and UMAP",
                  flush=True)


if __name__ == "__main__":
    main()
