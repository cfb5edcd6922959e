"""Gradio components for the Script: the panel (``panel.LAYOUT``) over the option schema.

``build_components`` creates one input per argument inside the panel's groups
(an open "Basic" group, then every other group folded under "More options")
and returns them in argument order (A1111 passes their values to ``run`` in
that order). It only creates components, so calling it again (the API does, to
read defaults) is harmless. Each field shows a one-line help; the schema's full
hint travels to the page as a hidden JSON block that javascript/prompt_pinning.js
turns into tooltips.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Callable, Optional

from prompt_pinning.options import Option

from . import panel
from .args import ARGUMENTS

ELEM_PREFIX = "prompt_pinning"
AUTO = "auto"


def elem_id(tab: str, name: str) -> str:
    return f"{ELEM_PREFIX}_{tab}_{name}"


def default_text(option: Option) -> str:
    if option.kind == "images":
        return "none (the unmodified prompt's first batch)"
    if option.kind == "mask":
        return "none (every pixel counts)"
    if option.auto:
        return "empty = auto"
    if option.kind in ("path", "matrix", "text"):
        return "empty"
    return str(option.default)


def hint(option: Option) -> str:
    """The tooltip: what it does, its computed default and its limits."""
    return f"{option.full_hint(api=True)} Default: {default_text(option)}."


def hints_html(tab: str) -> str:
    """Hidden element carrying every argument's tooltip, keyed by element id."""
    data = {elem_id(tab, option.name): hint(option) for option in ARGUMENTS}
    return (f'<div id="{ELEM_PREFIX}_{tab}_hints" style="display:none" '
            f'data-hints="{html.escape(json.dumps(data), quote=True)}"></div>')


def intro_html(docs_href: Optional[str]) -> str:
    link = (f' <a href="{html.escape(docs_href, quote=True)}" target="_blank" rel="noopener" '
            f'style="text-decoration:underline">How it works</a>' if docs_href else "")
    return f"<p>{html.escape(panel.INTRO)}{link}</p>"


def docs_href() -> Optional[str]:
    """The extension's README as the host's file= route serves it (no network needed); the
    folder as the host loaded it, which may be a link into its extensions folder."""
    from .links import served_path

    try:  # served_path makes it absolute without following links
        served = served_path(Path(__file__).parent.parent / "README.md")
    except Exception:  # outside a WebUI: no link
        return None
    return f"file={served}" if served else None


def make_component(gr, tab: str, option: Option):
    """The panel's widget for this option; an auto number is a text box whose placeholder says "auto"."""
    common = {"label": panel.label(option.name), "elem_id": elem_id(tab, option.name)}
    info = panel.HELP.get(option.name) or option.hint
    widget = option.widget
    if widget == "File":
        return gr.File(file_count="single" if option.kind == "mask" else "multiple", file_types=["image"], **common)
    if widget == "Checkbox":
        return gr.Checkbox(value=option.ui_default, info=info, **common)
    if widget == "Dropdown":
        return gr.Dropdown(choices=list(option.choices), value=option.ui_default, info=info, **common)
    if option.auto:  # empty means auto, as 0 does (args.parse_argument)
        return gr.Textbox(value="", placeholder=AUTO, lines=2 if option.kind == "matrix" else 1, info=info, **common)
    if widget == "Number":
        whole = option.kind == "int"
        return gr.Number(value=option.ui_default, precision=0 if whole else None,
                         step=1 if whole else 0.01, info=info, **common)
    return gr.Textbox(value=option.ui_default, lines=1, info=info, **common)


def _group_fields(group: str, last: bool) -> list[Option]:
    fields = [o for o in ARGUMENTS if panel.GROUP_OF.get(o.name) == group]
    if last:  # an option the panel does not place yet
        fields += [o for o in ARGUMENTS if o.name not in panel.GROUP_OF]
    return fields


def build_components(gr, tab: str, describe: Optional[Callable] = None, inputs: tuple = ()) -> list:
    """All argument components, in the panel's groups; returns them in argument order.

    ``describe(prompt, negative, unit_mode, generations, lambda_, validation_batches, batch_size, steps,
    width, height)`` fills the live cost line when this tab's boxes are given in ``inputs``:
    (prompt, negative) or (prompt, negative, batch size, steps, width, height).
    """
    components: dict[str, Any] = {}
    gr.HTML(hints_html(tab))
    gr.HTML(intro_html(docs_href()), elem_id=f"{ELEM_PREFIX}_{tab}_intro")
    groups = [group for group, _ in panel.LAYOUT]
    with gr.Accordion(panel.BASIC, open=True, elem_id=f"{ELEM_PREFIX}_{tab}_basic"):
        fields = _group_fields(panel.BASIC, last=False)
        components["targets"] = make_component(gr, tab, fields[0])
        # 130: one row of thumbnails plus Gradio 4.40's padding fits unscrolled (at 120 it scrolled by 2 px)
        preview = gr.Gallery(label="Targets", show_label=False, visible=False, columns=6, height=130,
                             elem_id=f"{ELEM_PREFIX}_{tab}_target_preview")
        with gr.Row():
            for option in fields[1:]:
                components[option.name] = make_component(gr, tab, option)
        cost = gr.HTML("<p class='prompt-pinning-cost'>Type a prompt to see what a run costs.</p>",
                       elem_id=f"{ELEM_PREFIX}_{tab}_cost")
    with gr.Accordion("More options", open=False, elem_id=f"{ELEM_PREFIX}_{tab}_more"):
        for group in groups[1:]:
            with gr.Accordion(group, open=False, elem_id=f"{ELEM_PREFIX}_{tab}_{panel.elem_suffix(group)}"):
                for option in _group_fields(group, last=group == groups[-1]):
                    components[option.name] = make_component(gr, tab, option)
                if group == "Target details":
                    gr.HTML(_taggers_html(), elem_id=f"{ELEM_PREFIX}_{tab}_taggers")
    components["targets"].change(fn=target_preview, inputs=[components["targets"]], outputs=[preview],
                                 show_progress=False)
    if describe is not None and len(inputs) >= 2:
        watched = [inputs[0], inputs[1], components["unit_mode"], components["generations"],
                   components["lambda_"], components["validation_batches"], *inputs[2:6]]
        for source in watched:
            source.change(fn=describe, inputs=watched, outputs=[cost], show_progress=False)
    return [components[option.name] for option in ARGUMENTS]


def target_preview(files):
    """Thumbnails of the uploaded target images (hidden while there are none)."""
    import gradio as gr

    names = [getattr(f, "name", f) for f in (files or [])]
    return gr.update(value=names or None, visible=bool(names))


def _taggers_html() -> str:
    from .taggers import taggers_html

    return taggers_html()

