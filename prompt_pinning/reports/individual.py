"""Per-individual outputs.

Written at once, on the run's path: the PNG images (with infotext) and
``batch_stats.json``. Written later by the worker: ``loss_plot.png`` and
``summary.gif``, which read only the finished PNGs and the pair losses.
"""
from __future__ import annotations

from dataclasses import replace

import io
import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np
from PIL import Image

from .files import atomic_write_bytes, dump_json, jsonable
from .infotext import VALIDATION_LOSS_KEY, build_infotext, generation_params, parse_infotext, png_info, quote_value
from .quickplot import finite, loss_plot

if TYPE_CHECKING:  # records imports torch; the worker process never needs it
    from ..run.records import IndividualRecord, UnitRow

BATCH_STATS = "batch_stats.json"
LOSS_PLOT = "loss_plot.png"
SUMMARY_GIF = "summary.gif"
PNG_COMPRESS_LEVEL = 1  # fast to write; the run waits for these files
GIF_MAX_SIDE = 512
GIF_FRAME_MS = 600


def image_file_name(index: int, seed: int) -> str:
    return f"{index:02d}-{seed}.png"


def image_file_names(seeds: Sequence[int]) -> list[str]:
    return [image_file_name(i, int(seed)) for i, seed in enumerate(seeds)]


def images_to_uint8(images: Any) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] (tensor or array) to (B, H, W, 3) uint8."""
    if hasattr(images, "detach"):
        images = images.detach().to("cpu").float().numpy()
    array = np.asarray(images, dtype=np.float32)
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"record.images: expected shape (B, 3, H, W), got {tuple(array.shape)}")
    array = np.nan_to_num(array, nan=0.0)
    return (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def pinning_params(record: IndividualRecord) -> dict[str, Any]:
    """Infotext keys that say which individual of which run made the image."""
    return {
        "Pinning generation": record.generation,
        "Pinning individual": record.individual_id,
        "Pinning loss": _finite_or_none(record.loss),
        "Pinning size": _finite_or_none(record.size),
        VALIDATION_LOSS_KEY: _finite_or_none(record.validation_loss),
    }


def image_infotext(record: IndividualRecord, k: int, settings: Mapping[str, Any]) -> str:
    """Infotext of image ``k``: the host's own text when it gave one, else ours; plus the pinning keys."""
    pinning = {key: value for key, value in pinning_params(record).items() if value is not None}
    host_texts = record.extra.get("infotexts") or []
    if len(host_texts) == len(record.seeds) and isinstance(host_texts[k], str):
        host = host_texts[k].strip()
        if len(parse_infotext(host)) > 4:  # it ends in a parameter line we can extend
            return host + ", " + ", ".join(f"{key}: {quote_value(value)}" for key, value in pinning.items())
    params = {**generation_params(settings, int(record.seeds[k])), **pinning}
    return build_infotext(record.positive, record.negative, params)


def write_images(
    record: IndividualRecord, folder: Path, settings: Mapping[str, Any], infotexts: Optional[list[str]] = None
) -> list[str]:
    """Save every image as ``<index:02d>-<seed>.png`` with its infotext; return the file names.

    A record without images (a resumed run's placeholder) writes nothing.
    """
    pixels = images_to_uint8(record.images)
    if len(pixels) == 0:
        return []
    if len(record.seeds) != len(pixels):
        raise ValueError(
            f"record.seeds: one seed per image expected ({len(pixels)} images), got {len(record.seeds)}"
        )
    names = image_file_names(record.seeds)
    texts = infotexts or [image_infotext(record, k, settings) for k in range(len(names))]
    encoded = _encoder_pool().map(encode_png, pixels, texts)  # Pillow encodes without the GIL
    for name, data in zip(names, encoded):
        atomic_write_bytes(folder / name, data)
    return names


def encode_png(pixels: np.ndarray, infotext: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="PNG", pnginfo=png_info(infotext),
                                        compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


@lru_cache(maxsize=1)
def _encoder_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="png-encoder")


def batch_stats(
    record: IndividualRecord,
    settings: Mapping[str, Any],
    units: Sequence[UnitRow],
    image_names: list[str],
    infotexts: Sequence[str] = (),
) -> dict[str, Any]:
    offsets = np.asarray(record.offsets, dtype=np.float64).ravel()
    unit_rows = None
    if units and len(units) == offsets.size:
        unit_rows = [
            {
                "text": u.text,
                "prompt": u.prompt,
                "kind": u.kind,
                "base_weight": u.base_weight,
                "offset": float(o),
                "weight": replace(u, offset=float(o)).pinned_weight,
            }
            for u, o in zip(units, offsets)
        ]
    return jsonable(
        {
            "generation": record.generation,
            "index": record.index,
            "individual_id": record.individual_id,
            "settings": dict(settings),
            "prompt": record.positive,
            "negative_prompt": record.negative,
            "offsets": offsets,
            "units": unit_rows,
            "seeds": list(record.seeds),
            "images": image_names,
            "loss": record.loss,
            "pair_losses": np.asarray(record.pair_losses, dtype=np.float64).ravel(),
            "size": record.size,
            "traces": record.traces,
            "render_seconds": record.render_seconds,
            "loss_seconds": record.loss_seconds,
            "extra": {key: value for key, value in record.extra.items() if key != "infotexts"},
            "infotexts": list(infotexts),
        }
    )


def write_batch_stats(folder: Path, stats: dict[str, Any]) -> None:
    dump_json(folder / BATCH_STATS, stats)


def write_loss_plot(folder: Path, pair_losses: np.ndarray, loss: float, title: str) -> None:
    """``loss_plot.png``: histogram and sorted curve of the individual's pair losses."""
    shown = "nan" if not np.isfinite(loss) else f"{loss:.5f}"
    image = loss_plot(finite(pair_losses), f"{title}   loss {shown}")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    atomic_write_bytes(folder / LOSS_PLOT, buffer.getvalue())


def write_summary_gif(folder: Path, image_names: Sequence[str], frame_ms: int = GIF_FRAME_MS) -> None:
    """``summary.gif``: the individual's images, looping; read back from the saved PNGs."""
    frames = []
    for name in image_names:
        with Image.open(folder / name, formats=("PNG",)) as image:  # the run's own PNGs
            frame = image.convert("RGB")
        if max(frame.size) > GIF_MAX_SIDE:
            frame.thumbnail((GIF_MAX_SIDE, GIF_MAX_SIDE))
        # a fast palette per frame: Pillow's default (median cut) takes ten times as long
        frames.append(frame.quantize(colors=255, method=Image.Quantize.FASTOCTREE))
    if not frames:
        return
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=frame_ms, loop=0)
    atomic_write_bytes(folder / SUMMARY_GIF, buffer.getvalue())


def _finite_or_none(value: Optional[float]) -> Optional[float]:
    return jsonable(value) if value is not None else None
