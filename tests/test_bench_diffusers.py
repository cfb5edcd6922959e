"""benchmarks/diffusers_renderer.py: the package's renderer on random weights, for the benchmarks."""
import pytest
import torch

import diffusers_renderer as dr  # benchmarks/ is on the path (conftest)
from prompt_pinning.diffusers.renderer import CPU_MAX_IMAGES, default_max_images_per_call, images_per_call


def test_call_sizes_and_memory_default():
    assert images_per_call(20, 8, whole_individuals=True) == 16
    assert images_per_call(5, 8, whole_individuals=True) == 8
    assert images_per_call(20, 8, whole_individuals=False) == 20
    assert default_max_images_per_call(torch.device("cpu"), 320, 4096, 4) == CPU_MAX_IMAGES


def test_bench_hyperbatch_factory_runs_the_unet_with_cfg(tiny_diffusers, monkeypatch):
    monkeypatch.setattr(dr, "tiny_pipeline", lambda seed=0: tiny_diffusers["sd15"])
    denoiser, shape = dr.hyperbatch_denoiser("cpu")
    assert shape == (4, 8, 8)
    x = torch.randn(3, *shape)
    out = denoiser(x, torch.full((3,), 2.0))
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="preset must be one of sd15, tiny"):
        dr.build_renderer("xl")
