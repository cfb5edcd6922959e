"""modules/devices.py: ``device`` (where the model runs; the CPU with --use-cpu all) and ``cpu``."""
import torch

cpu = torch.device("cpu")
device = cpu
