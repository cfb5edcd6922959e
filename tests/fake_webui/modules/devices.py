"""modules/devices.py: ``device`` (where the model runs; the CPU with --use-cpu all) and ``cpu``."""
import torch

cpu = torch.device("cpu")
device = cpu


def autocast(disable=False):
    """The host's mixed-precision context; the stand-in computes in float32."""
    import contextlib

    return contextlib.nullcontext()
