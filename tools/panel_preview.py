"""Serve the Script panel with real Gradio and measure it in headless Chromium.

The panel as first opened and with every group open, at a window size, and the live cost
line after a prompt is typed (the A1111 stand-in's model does the tokenizing):

    python tools/panel_preview.py --size 1600x1200 [--screenshot panel.png]

Needs Gradio 3.41.2 with fastapi 0.94.0 (A1111 v1.10.1's pins) beside the project's
packages (e.g. a ``python -m venv --system-site-packages`` environment) and Debian's
``chromium``. The page is plain Gradio beside a prompt column, not A1111's theme:
heights come close to the WebUI's, they are not equal.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]

MEASURE = """(() => {
  const app = document.querySelector('gradio-app'); const root = (app && app.shadowRoot) || document;
  const height = id => Math.round(root.querySelector(id).getBoundingClientRect().height);
  return {panel: height('#pp_panel'), basic: height('#prompt_pinning_txt2img_basic')};
})()"""
TYPE_PROMPT = """(() => {
  const app = document.querySelector('gradio-app'); const root = (app && app.shadowRoot) || document;
  const box = root.querySelector('#txt2img_prompt textarea');
  box.value = 'a red circle on a blue square'; box.dispatchEvent(new Event('input', {bubbles: true}));
})()"""
COST = "(document.querySelector('gradio-app')?.shadowRoot || document).querySelector('#prompt_pinning_txt2img_cost').textContent"
OPEN_ALL = """(() => {
  const app = document.querySelector('gradio-app'); const root = (app && app.shadowRoot) || document;
  [...root.querySelectorAll('#pp_panel .label-wrap:not(.open)')].forEach(b => b.click());
})()"""


def serve(port: int):
    import gradio as gr  # the real one, imported before the stand-in's modules are on the path

    import stand_in_models
    import webui_stand_in

    webui_stand_in.install()
    from modules import shared

    shared.opts, shared.sd_model = shared.default_opts(), stand_in_models.a1111_model()
    from prompt_pinning_webui.cost import describe_cost
    from prompt_pinning_webui.ui import build_components

    with gr.Blocks() as demo:
        with gr.Row():
            with gr.Column():
                boxes = (gr.Textbox(label="Prompt", lines=3, elem_id="txt2img_prompt"),
                         gr.Textbox(label="Negative prompt", lines=2, elem_id="txt2img_neg_prompt"),
                         gr.Slider(1, 8, value=8, step=1, label="Batch size"),
                         gr.Slider(1, 150, value=20, step=1, label="Sampling steps"))
            with gr.Column():
                gr.Dropdown(label="Script", choices=["None", "Prompt pinning"], value="Prompt pinning")
                with gr.Group(elem_id="pp_panel"):
                    build_components(gr, "txt2img", describe_cost, boxes)
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True)
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1600x1200", help="window WIDTHxHEIGHT")
    parser.add_argument("--port", type=int, default=7961)
    parser.add_argument("--screenshot", type=Path, help="save the first-opened page as PNG")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    demo = serve(args.port)
    from test_reports_browser import CHROMIUM, Chromium

    chrome = Chromium(CHROMIUM, width, height)
    try:
        chrome.call("Page.navigate", {"url": f"http://127.0.0.1:{args.port}/"}, session=True)
        chrome.wait_for_event("Page.loadEventFired", 60)
        for _ in range(300):
            if chrome.evaluate("!!(document.querySelector('gradio-app')?.shadowRoot || document)"
                               ".querySelector('#prompt_pinning_txt2img_cost')"):
                break
            time.sleep(0.2)
        time.sleep(2)
        first = chrome.evaluate(MEASURE)
        chrome.evaluate(TYPE_PROMPT)
        time.sleep(3)
        cost = chrome.evaluate(COST)
        if args.screenshot:
            data = chrome.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
            args.screenshot.write_bytes(base64.b64decode(data))
        for _ in range(3):  # nested groups open one level per pass
            chrome.evaluate(OPEN_ALL)
            time.sleep(1)
        print(json.dumps({"size": args.size, "first_opened_px": first, "all_open_px": chrome.evaluate(MEASURE),
                          "cost_line_after_typing": cost.strip()}))
    finally:
        chrome.close()
        demo.close()


if __name__ == "__main__":
    main()
