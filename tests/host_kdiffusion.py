"""Makes the installed k-diffusion's ``sampling`` module importable as ``k_diffusion.sampling``.

The WebUI ships k-diffusion with everything its package imports. The PyPI
package (a test dependency, installed without its dependencies) imports
torchvision, jsonmerge and more in its ``__init__``, while ``sampling.py`` needs
only torch, scipy, torchsde, torchdiffeq, tqdm and ``utils.append_dims``. So the
package is registered without running its ``__init__``, with a one-function
``utils``, and ``sampling.py`` is then imported from the installed package.
"""
import importlib
import importlib.util
import sys
import types


def _append_dims(x, ndim):
    return x[(...,) + (None,) * (ndim - x.ndim)]


def install() -> types.ModuleType:
    """Import and return ``k_diffusion.sampling``; fail (never skip) if k-diffusion is missing."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("k-diffusion is not installed (pip install --no-deps k-diffusion)")
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = _append_dims
    package.utils = utils
    sys.modules["k_diffusion"] = package
    sys.modules["k_diffusion.utils"] = utils
    sampling = importlib.import_module("k_diffusion.sampling")
    package.sampling = sampling
    return sampling
