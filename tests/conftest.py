import os
import sys
from pathlib import Path

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
