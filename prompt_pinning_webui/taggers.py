"""Taggers in the WebUI: A1111's DeepBooru and the WD14 tagger extension.

Both follow ``prompt_pinning.score.tags.Tagger``: images in, a probability per tag
out. Tags are compared as the engine writes them (lower case, spaces for
underscores). A tagger loads its model when it is made, before the run
renders anything, so a missing model is a ``TaggerUnavailable`` naming what is
missing and what to do, not a traceback in the middle of a run.
``available_taggers`` says which of them can run here, for the UI.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from prompt_pinning.score.tags import TaggerUnavailable

DEEPBOORU_SIZE = 512  # DeepBooru's input: 512 x 512 RGB in [0, 1], channels last
DEEPBOORU_FILE = "model-resnet_custom_v3.pt"
WD14_PREFERRED = ("wd14-vit-v2-git", "wd14-vit-v2", "wd14-convnext-v2-git")


def normal_tag(tag: str) -> str:
    return " ".join(str(tag).replace("_", " ").lower().split())


def _columns(vocabulary: Sequence[str], tags: Sequence[str], who: str) -> list[int]:
    index = {normal_tag(t): k for k, t in enumerate(vocabulary)}
    missing = [t for t in tags if t not in index]
    if missing:
        raise ValueError(f"wanted_tags/unwanted_tags: {who} has no tag {missing[0]!r} "
                         f"(its vocabulary has {len(index)} tags, written like 'long hair' or 'red background')")
    return [index[t] for t in tags]


class DeepBooruTagger:
    """A1111's ``modules.deepbooru`` model, loaded (or downloaded by the WebUI) once."""

    name = "deepbooru"

    def __init__(self):
        try:
            from modules import deepbooru
        except ImportError as error:
            raise TaggerUnavailable(f"tagger 'deepbooru': this WebUI has no modules.deepbooru ({error})") from None
        self.host = deepbooru.model
        try:
            self.host.start()  # loads the weights; the WebUI downloads them if they are missing
        except Exception as error:  # offline download, damaged file, ...: one clear message
            raise TaggerUnavailable(
                f"tagger 'deepbooru': its weights are missing and could not be downloaded "
                f"({type(error).__name__}: {error}); put {DEEPBOORU_FILE} in the WebUI's models/DeepDanbooru "
                "folder, or choose another tagger") from None
        finally:
            self._stop()
        self._started = False  # moved to the device at the first scoring, kept there until release()

    def _stop(self) -> None:
        try:
            self.host.stop()
        except Exception:  # stopping only frees memory
            pass

    def release(self) -> None:
        """Give the model back to the host (to the CPU, unless the host keeps it): the run is over."""
        if self._started:
            self._started = False
            self._stop()

    def check(self, tags: Sequence[str]) -> None:
        _columns(self.host.model.tags, tags, "DeepBooru")

    def probabilities(self, images: torch.Tensor, tags: Sequence[str], batch: Any = None) -> np.ndarray:
        columns = _columns(self.host.model.tags, tags, "DeepBooru")
        from modules import devices

        x = F.interpolate(images.float().cpu(), size=(DEEPBOORU_SIZE, DEEPBOORU_SIZE), mode="bilinear",
                          antialias=True, align_corners=False).clamp_(0, 1).permute(0, 2, 3, 1).contiguous()
        if not self._started:
            self.host.start()
            self._started = True
        with torch.no_grad(), devices.autocast():
            y = self.host.model(x.to(devices.device)).float().cpu().numpy()
        return np.clip(y[:, columns].astype(np.float64), 0.0, 1.0)


def deepbooru_path() -> str:
    try:
        from modules import paths

        return os.path.join(paths.models_path, "DeepDanbooru", DEEPBOORU_FILE)
    except ImportError:
        return os.path.join("models", "DeepDanbooru", DEEPBOORU_FILE)


def _wd14_utils():
    """The WD14 tagger extension's ``tagger.utils``, or None when it is not installed."""
    try:
        return importlib.import_module("tagger.utils")
    except ImportError:
        pass
    try:
        from modules import extensions

        folders = [e.path for e in extensions.active() if os.path.isfile(os.path.join(e.path, "tagger", "utils.py"))]
    except Exception:  # no extension list: not installed as far as we can tell
        return None
    for folder in folders:
        if folder not in sys.path:
            sys.path.append(folder)
        try:
            return importlib.import_module("tagger.utils")
        except Exception:
            continue
    return None


class WD14Tagger:
    """The WD14 tagger extension's interrogator (its preferred WD 1.4 model)."""

    name = "wd14"

    def __init__(self):
        utils = _wd14_utils()
        if utils is None:
            raise TaggerUnavailable("tagger 'wd14': the WD14 tagger extension is not installed; install it from "
                                    "Extensions, or choose deepbooru")
        try:
            if not getattr(utils, "interrogators", None):
                utils.refresh_interrogators()
            names = list(utils.interrogators)
            chosen = next((n for n in WD14_PREFERRED if n in names), sorted(names)[0] if names else None)
            if chosen is None:
                raise RuntimeError("it lists no interrogator")
            self.interrogator = utils.interrogators[chosen]
            self.interrogator.load()  # downloads the model from Hugging Face when missing
        except Exception as error:
            raise TaggerUnavailable(f"tagger 'wd14': its model could not be loaded or downloaded "
                                    f"({type(error).__name__}: {error}); download it once from the extension's "
                                    "own tab, or choose deepbooru") from None

    def check(self, tags: Sequence[str]) -> None:
        """Refuse tags the model does not know (it would score them p = 0 for ever)."""
        _columns(wd14_vocabulary(self.interrogator), tags, "the WD14 tagger")

    def probabilities(self, images: torch.Tensor, tags: Sequence[str], batch: Any = None) -> np.ndarray:
        from PIL import Image

        rows = []
        pixels = (images.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        for array in pixels:
            _, found = self.interrogator.interrogate(Image.fromarray(array))
            found = {normal_tag(t): float(p) for t, p in found.items()}
            rows.append([found.get(t, 0.0) for t in tags])  # a tag below the model's cut-off: probability ~0
        return np.clip(np.array(rows, dtype=np.float64), 0.0, 1.0)


def wd14_vocabulary(interrogator: Any) -> list[str]:
    """The tags a loaded WD14 interrogator knows: its ``tags`` table's "name" column (selected_tags.csv)."""
    table = getattr(interrogator, "tags", None)
    try:
        names = table["name"] if table is not None and not isinstance(table, (list, tuple)) else table
        vocabulary = [str(name) for name in names] if names is not None else []
    except (KeyError, TypeError, IndexError):
        vocabulary = []
    if not vocabulary:
        raise TaggerUnavailable("tagger 'wd14': its model lists no tags (no selected_tags.csv was loaded), so "
                                "wanted and unwanted tags cannot be checked; choose deepbooru")
    return vocabulary


def make_tagger(name: str):
    """The WebUI's tagger for the ``tagger`` option ("auto" is DeepBooru)."""
    if name in ("auto", "deepbooru"):
        return DeepBooruTagger()
    if name == "wd14":
        return WD14Tagger()
    raise TaggerUnavailable(f"tagger: {name!r} tags the built-in model's images only; in the WebUI choose "
                            "deepbooru, wd14 or auto")


def available_taggers() -> dict[str, str]:
    """Each WebUI tagger and whether it can run here, in words (no model is loaded)."""
    try:
        importlib.import_module("modules.deepbooru")
        weights = os.path.isfile(deepbooru_path())
        deepbooru = "available" + ("" if weights else " (its weights are downloaded on first use)")
    except ImportError:
        deepbooru = "not available in this WebUI"
    wd14 = "available" if _wd14_utils() is not None else "not installed (the WD14 tagger extension)"
    return {"deepbooru": deepbooru, "wd14": wd14}


def taggers_html() -> str:
    import html

    items = "; ".join(f"{name}: {html.escape(state)}" for name, state in available_taggers().items())
    return f"<p>Taggers for tag targets: {items}.</p>"
