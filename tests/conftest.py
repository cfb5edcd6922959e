import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# The benchmark-only modules (diffusers_renderer, synthetic_run) live beside the benchmarks.
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

# Two cores on CI: keep torch from oversubscribing them.
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def outdir(tmp_path):
    return tmp_path / "outputs"


CROP_SIZE = 24


@pytest.fixture(scope="module")
def crops():
    """Ten distinct 24x24 crops of a photograph, as (N, 3, H, W) float32 (the loss tests' images)."""
    import skimage.data as skdata

    photo = skdata.astronaut().astype(np.float32) / 255.0
    tiles = [photo[40 * k + 100:40 * k + 100 + CROP_SIZE, 30 * k + 50:30 * k + 50 + CROP_SIZE] for k in range(10)]
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="session")
def tiny_diffusers(tmp_path_factory):
    """Folders of the tiny random SD1.5 and SDXL pipelines (tools/make_tiny_diffusers.py), by kind."""
    tools = Path(__file__).resolve().parents[1] / "tools"
    if str(tools) not in sys.path:
        sys.path.insert(0, str(tools))
    from make_tiny_diffusers import make_tiny

    root = tmp_path_factory.mktemp("tiny_diffusers")
    return {"sd15": make_tiny(root / "sd15", seed=0), "sdxl": make_tiny(root / "sdxl", seed=0, sdxl=True)}


@pytest.fixture(scope="module")
def ray_session():
    """A local Ray on 2 CPUs for one test module (its start takes seconds: once per module)."""
    ray = pytest.importorskip("ray")
    # Ray's memory monitor kills workers when the whole machine is short of memory, whoever uses it;
    # a retried task then resumes its run, which the tests would see as another path. Off here.
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    del os.environ["RAY_memory_monitor_refresh_ms"]
