"""Ray as the engine past one machine (``pip install ".[ray]"``); see docs/ray.md.

``RayRenderer(RendererSpec("builtin"), actors=2)`` renders a generation's individuals on
Ray actors; ``sweep`` runs one pinning run per prompt as Ray tasks. Ray is imported only
when one of them is used.
"""
from .cluster import connect
from .renderer import NoActorLeft, RayRenderer
from .spec import RendererSpec

__all__ = ["NoActorLeft", "RayRenderer", "RendererSpec", "connect"]
