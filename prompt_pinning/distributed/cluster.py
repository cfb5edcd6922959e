"""Joining Ray: ``local`` starts Ray on this machine; ``auto`` or HOST:PORT joins a running cluster."""
from __future__ import annotations

import os
from typing import Optional


def ray_module():
    """Ray, or a clear error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ValueError('--ray: Ray is not installed; pip install ".[ray]" (ray>=2.9)') from None
    return ray


def connect(address: str, num_cpus: Optional[int] = None) -> None:
    """Start or join Ray once per process. ``num_cpus`` (``local`` only): the CPUs Ray may
    schedule on, default this machine's."""
    ray = ray_module()
    if not isinstance(address, str) or not address.strip():
        raise ValueError("--ray: give local, auto or a cluster address (HOST:PORT or ray://HOST:PORT)")
    if ray.is_initialized():
        return
    if address == "local":
        ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
