"""Screenshot a running WebUI's txt2img tab with a Script selected, in headless Chromium.

    python tools/webui_screenshot.py --url http://127.0.0.1:7860 --out docs/webui.png

Opens the page at --size, picks --script in the txt2img "Script" dropdown with real
mouse clicks, types --prompt into the prompt box (so the live cost line shows), then
saves the tab from the prompt box down to the script panel's end, at most --max-height
pixels tall. It prints the script panel's height as first opened, in pixels, as JSON.
Needs Debian's ``chromium`` (and ``fonts-noto-color-emoji`` for the WebUI's button icons); drives
it with the test suite's DevTools driver. Talks to --url only (keep it on a loopback address).
Checked on A1111 v1.10.1.
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
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "benchmarks")]  # Chromium: tests/test_reports_browser.py

ROOT = "(document.querySelector('gradio-app')?.shadowRoot || document)"
# The script's panel: the outermost Gradio group in the tab's script container that holds ``inner``
# (None while hidden).
PANEL_RECT = """((tab, inner) => {
  const root = %s, box = root.querySelector('#' + tab + '_script_container'), el = root.querySelector(inner);
  if (!box || !el) return null;
  let node = null;
  for (let e = el; e && e !== box; e = e.parentElement) if (e.classList.contains('gr-group')) node = e;
  if (!node) return null;
  const r = node.getBoundingClientRect();
  return r.height > 0 ? {top: r.top + scrollY, bottom: r.bottom + scrollY, left: r.left, right: r.right,
                         height: Math.round(r.height)} : null;
})""" % ROOT
# Each script's panel is found by one element inside it.
PANEL_MARKERS = {"prompt pinning": "#prompt_pinning_{tab}_intro", "x/y/z plot": "#script_{tab}_xyz_plot_x_type"}


def wait_for(chrome, expression: str, timeout: float = 60, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = chrome.evaluate(expression)
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(f"timed out waiting for {what or expression}")


def click(chrome, selector: str) -> None:
    """A real mouse click in the middle of the element (scrolled into view first)."""
    rect = chrome.evaluate(f"""(() => {{ const e = {ROOT}.querySelector({json.dumps(selector)});
        if (!e) return null; e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
        return {{x: r.left + r.width / 2, y: r.top + r.height / 2}}; }})()""")
    if rect is None:
        raise LookupError(f"no element {selector}")
    for kind in ("mousePressed", "mouseReleased"):
        chrome.call("Input.dispatchMouseEvent", {"type": kind, "x": rect["x"], "y": rect["y"], "button": "left",
                                                 "clickCount": 1}, session=True)


def open_webui(chrome, url: str) -> None:
    chrome.call("Page.navigate", {"url": url}, session=True)
    chrome.wait_for_event("Page.loadEventFired", 120)
    wait_for(chrome, f"!!{ROOT}.querySelector('#txt2img_script_container #script_list input')", 120, "the WebUI")
    time.sleep(1)


def select_script(chrome, tab: str, title: str) -> None:
    """Pick ``title`` in the tab's Script dropdown (Gradio's list opens on a click, then takes a click)."""
    click(chrome, f"#{tab}_script_container #script_list input")
    wait_for(chrome, f"!!{ROOT}.querySelector('#{tab}_script_container #script_list ul.options li')", 10,
             "the Script list")
    index = chrome.evaluate(f"""[...{ROOT}.querySelectorAll('#{tab}_script_container #script_list ul.options li')]
        .findIndex(li => (li.dataset.value || '').toLowerCase() === {json.dumps(title.lower())})""")
    if index < 0:
        raise LookupError(f"no script {title!r} in the {tab} Script list")
    click(chrome, f"#{tab}_script_container #script_list ul.options li:nth-child({index + 1})")
    wait_for(chrome, f"{ROOT}.querySelector('#{tab}_script_container #script_list input').value"
             f".toLowerCase() === {json.dumps(title.lower())}", 10, f"{title} in the Script list")


def panel_rect(chrome, tab: str, title: str, timeout: float = 30):
    marker = PANEL_MARKERS[title.lower()].format(tab=tab)
    return wait_for(chrome, f"{PANEL_RECT}({json.dumps(tab)}, {json.dumps(marker)})", timeout, f"the {title} panel")


def type_prompt(chrome, tab: str, text: str) -> None:
    click(chrome, f"#{tab}_prompt textarea")
    chrome.call("Input.insertText", {"text": text}, session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "webui.png")
    parser.add_argument("--size", default="1600x1200", help="window WIDTHxHEIGHT")
    parser.add_argument("--script", default="Prompt pinning")
    parser.add_argument("--prompt", default="a red circle, on a blue background")
    parser.add_argument("--max-height", type=int, default=1400, help="crop the picture to at most this height")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    from test_reports_browser import CHROMIUM, Chromium

    chrome = Chromium(CHROMIUM, width, height)
    try:
        open_webui(chrome, args.url)
        select_script(chrome, "txt2img", args.script)
        first = panel_rect(chrome, "txt2img", args.script)
        if args.prompt:
            type_prompt(chrome, "txt2img", args.prompt)
            time.sleep(3)  # the cost line is filled by the server
        chrome.evaluate("window.scrollTo(0, 0)")
        panel = panel_rect(chrome, "txt2img", args.script)
        top = chrome.evaluate(f"{ROOT}.querySelector('#txt2img_prompt_container, #txt2img_toprow')"
                              ".getBoundingClientRect().top + scrollY")
        clip = {"x": 0, "y": max(0, top - 8), "width": width, "scale": 1}
        clip["height"] = min(args.max_height, panel["bottom"] + 8 - clip["y"])
        data = chrome.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                           session=True)["data"]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(base64.b64decode(data))
        print(json.dumps({"size": args.size, "script": args.script, "panel_first_opened_px": first["height"],
                          "out": str(args.out), "bytes": args.out.stat().st_size}))
    finally:
        chrome.close()


if __name__ == "__main__":
    main()
