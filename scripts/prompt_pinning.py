"""Prompt pinning as a txt2img/img2img Script (the "Script" dropdown and the API).

Kept thin: the components come from prompt_pinning_webui.ui, the run from
prompt_pinning_webui.webui_run. Loading this file also registers the
hyperbatch samplers with the WebUI.
"""
import logging
import os
import sys

EXTENSION_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_importable():
    """A1111 puts the extension folder on sys.path only while loading scripts,
    then restores the old list: add it back wherever our modules are imported."""
    if EXTENSION_ROOT not in sys.path:
        sys.path.append(EXTENSION_ROOT)


ensure_importable()

import gradio as gr  # noqa: E402

from modules import scripts  # noqa: E402

from prompt_pinning_webui import samplers as pinning_samplers  # noqa: E402
from prompt_pinning_webui.args import ScriptArgumentError  # noqa: E402
from prompt_pinning_webui.cost import describe_cost  # noqa: E402
from prompt_pinning_webui.ui import build_components  # noqa: E402

pinning_samplers.register_when_ready()

# The host's boxes the live cost line reads: prompt, negative prompt, batch size, sampling steps, size.
WATCHED = ("prompt", "neg_prompt", "batch_size", "steps", "width", "height")
WATCHED_IDS = {f"{tab}_{name}" for tab in ("txt2img", "img2img") for name in WATCHED}


class Script(scripts.Script):
    def __init__(self):
        super().__init__()
        self.prompt_boxes = {}
        self.wired_tabs = set()

    def title(self):
        return "Prompt pinning"

    def show(self, is_img2img):
        return True

    def after_component(self, component, **kwargs):
        if kwargs.get("elem_id") in WATCHED_IDS:
            self.prompt_boxes[kwargs["elem_id"]] = component

    def ui(self, is_img2img):
        tab = "img2img" if is_img2img else "txt2img"
        boxes = [self.prompt_boxes.get(f"{tab}_{name}") for name in WATCHED]
        boxes = boxes[:2] if None in boxes[2:] else boxes  # the sliders are optional
        wire = tab not in self.wired_tabs and None not in boxes
        if wire:  # events only in the first (real) UI build, never in the API's repeat call
            self.wired_tabs.add(tab)
        return build_components(gr, tab, describe_cost if wire else None, tuple(boxes) if wire else ())

    def run(self, p, *args):
        ensure_importable()
        from prompt_pinning.config import ConfigError
        from prompt_pinning_webui.public import HostFailure
        from prompt_pinning_webui.webui_run import run_from_script

        try:
            return run_from_script(p, args, is_img2img=self.is_img2img)
        except (ScriptArgumentError, ConfigError, ValueError) as error:
            if getattr(p, "is_api", False):
                raise _http_error(error, 422) from None  # the API names the argument by its index
            if isinstance(error, (ScriptArgumentError, ConfigError)):  # the panel names the field's label
                from prompt_pinning_webui.panel import setting_error

                name = error.name if isinstance(error, ScriptArgumentError) else error.option
                raise setting_error(name, error.reason) from None
            raise
        except HostFailure as error:  # out of memory at the caller's size is the caller's to change
            if getattr(p, "is_api", False):
                raise _http_error(error, 422 if error.out_of_memory else 500) from None
            raise
        except Exception as error:  # anything else: the cause in one line; the traceback stays in the log
            if getattr(p, "is_api", False) and type(error).__name__ != "HTTPException":
                logging.getLogger("prompt_pinning").error("prompt pinning failed", exc_info=True)
                raise _http_error(f"{type(error).__name__}: {error}", 500) from None
            raise


def _http_error(error, status):
    """An HTTP error naming the argument or the cause, with no server path and no traceback
    (fastapi is the WebUI's API framework)."""
    from prompt_pinning_webui.public import public_message

    detail = f"Prompt pinning: {public_message(str(error))}"
    try:
        from fastapi import HTTPException
    except ImportError:  # no WebUI (tests): a ValueError that carries the same status and detail
        fallback = ValueError(detail)
        fallback.status_code, fallback.detail = status, detail
        return fallback
    return HTTPException(status_code=status, detail=detail)
