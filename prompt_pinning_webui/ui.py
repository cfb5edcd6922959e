"""Gradio components for the Script, built from the option schema.

``build_components`` creates one input per argument, in argument order,
inside one accordion per group, and returns them (A1111 passes their values
to ``run`` in that order). It only creates components, so calling it again
(the API does, to read defaults) is harmless. Hover hints travel to the page
as a hidden JSON block that javascript/prompt_pinning.js reads.
"""
from __future__ import annotations

import html
import json
from typing import Any, Callable, Optional

from prompt_pinning.options import GROUPS, Option

from .args import ARGUMENTS

ELEM_PREFIX = "prompt_pinning"


def elem_id(tab: str, name: str) -> str:
    return f"{ELEM_PREFIX}_{tab}_{name}"


def default_text(option: Option) -> str:
    if option.kind == "images":
        return "none (the unmodified prompt's first batch)"
    if option.kind == "mask":
        return "none (every pixel counts)"
    if option.auto:
        return "0 = auto" if option.kind in ("int", "float") else "empty = auto"
    if option.kind in ("path", "matrix", "text"):
        return "empty"
    return str(option.default)


def hint(option: Option) -> str:
    """The hover and info text: what it does, its computed default and its limits."""
    return f"{option.full_hint(api=True)} Default: {default_text(option)}."


def hints_html(tab: str) -> str:
    """Hidden element carrying every argument's hint, keyed by element id."""
    data = {elem_id(tab, option.name): hint(option) for option in ARGUMENTS}
    return (f'<div id="{ELEM_PREFIX}_{tab}_hints" style="display:none" '
            f'data-hints="{html.escape(json.dumps(data), quote=True)}"></div>')


def make_component(gr, tab: str, option: Option):
    """The schema's widget for this option, starting at its script_args default."""
    common = {"label": option.label, "elem_id": elem_id(tab, option.name)}
    widget = option.widget
    if widget == "File":
        return gr.File(file_count="single" if option.kind == "mask" else "multiple", file_types=["image"], **common)
    if widget == "Checkbox":
        return gr.Checkbox(value=option.ui_default, info=option.hint, **common)
    if widget == "Dropdown":
        return gr.Dropdown(choices=list(option.choices), value=option.ui_default, info=option.hint, **common)
    if widget == "Number":
        whole = option.kind == "int"
        return gr.Number(value=option.ui_default, precision=0 if whole else None,
                         step=1 if whole else 0.01, info=hint(option), **common)
    return gr.Textbox(value=option.ui_default, lines=2 if option.kind == "matrix" else 1,
                      info=hint(option), **common)


def build_components(gr, tab: str, describe: Optional[Callable] = None, prompts: tuple = ()) -> list:
    """All argument components, grouped; returns them in argument order.

    ``describe(prompt, negative, unit_mode) -> html`` fills the "N units"
    display when the prompt boxes of this tab are given in ``prompts``.
    """
    components: dict[str, Any] = {}
    units_info = None
    gr.HTML(hints_html(tab))
    for group in GROUPS:
        with gr.Accordion(f"Prompt pinning: {group.lower()}", open=group == "Target",
                          elem_id=f"{ELEM_PREFIX}_{tab}_{group.lower().replace(' ', '_')}"):
            if group == "Target":
                units_info = gr.HTML(units_placeholder(), elem_id=f"{ELEM_PREFIX}_{tab}_units")
                count = gr.Button("Count units (N)", elem_id=f"{ELEM_PREFIX}_{tab}_count_units")
                gr.HTML(_taggers_html(), elem_id=f"{ELEM_PREFIX}_{tab}_taggers")
            for option in ARGUMENTS:
                if option.group == group:
                    components[option.name] = make_component(gr, tab, option)
    if describe is not None and len(prompts) == 2 and units_info is not None:
        count.click(fn=describe, inputs=[prompts[0], prompts[1], components["unit_mode"]],
                    outputs=[units_info], show_progress=False)
    return [components[option.name] for option in ARGUMENTS]


def _taggers_html() -> str:
    from .taggers import taggers_html

    return taggers_html()


def units_placeholder() -> str:
    return ("<p>N (pinnable units) and the defaults it implies appear here: "
            "press <b>Count units</b> (it needs a loaded model).</p>")


def implied_defaults(n: int) -> dict[str, int]:
    """The run's plan for N units with every option at its default."""
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.search.optimizer import make_optimizer, resolve_generations
    from prompt_pinning.run.plan import make_plan

    config = PinningConfig(positive="")
    optimizer = make_optimizer(config, n, 0)
    plan = make_plan(config, n, optimizer, resolve_generations(config, n))
    training = 1 + sum(size * count for size, count in plan.population_runs(1, plan.generations))
    return {"N": n, "generations": plan.generations, "lambda_": plan.population, "mu": optimizer.resolved["mu"],
            "evaluations": training, "other_renders": plan.total - training}


def units_html(n: int) -> str:
    d = implied_defaults(n)
    return (f"<p><b>N = {n}</b> pinnable units. Defaults: {d['generations']} generations, "
            f"lambda_ = {d['lambda_']}, mu = {d['mu']}, "
            f"{d['evaluations']} individuals in all (baseline included), and {d['other_renders']} more "
            f"renders to choose the result and show it on your seeds.</p>")


def describe_units(positive: str, negative: str, unit_mode: str) -> str:
    """HTML with N and its implied defaults, or the reason it cannot be computed."""
    try:
        from prompt_pinning.prompt.weights import PromptVector

        from .tokenizer import HostTokenizer

        # never loads a checkpoint from a UI event (Forge loads it at the first generation)
        vector = PromptVector.from_prompts(positive, negative, HostTokenizer.from_model(load=False), unit_mode)
        return units_html(vector.size)
    except Exception as error:  # shown to the user, not raised
        return f"<p>Cannot count units: {html.escape(str(error))}</p>"
