"""The report link: the page builds it from the run's comment, and the host's file= route serves it."""
import html
import re
from pathlib import Path

import pytest

import forge_stand_in
import webui_stand_in
from file_route_stand_in import FileRouteServer, file_status

webui_stand_in.install()

from modules import processing, shared  # noqa: E402

from prompt_pinning_webui.links import REPORT_LABEL, UNSERVED_LABEL, report_comment, served_path  # noqa: E402
from test_reports_browser import CHROMIUM, Chromium, needs_chromium  # noqa: E402
from test_webui_script import load_script_module, run_args  # noqa: E402

JS = webui_stand_in.REPO / "javascript" / "prompt_pinning.js"


@pytest.fixture
def webui(tmp_path, monkeypatch):
    """A WebUI folder as the working directory, with the default outputs inside it."""
    folder = tmp_path / "webui"
    folder.mkdir()
    monkeypatch.chdir(folder)
    webui_stand_in.reset()
    shared.cmd_opts.gradio_allowed_path = [str(folder)]
    yield folder
    webui_stand_in.reset()
    del shared.cmd_opts.gradio_allowed_path


@pytest.mark.parametrize("host", ["a1111", "forge"])
def test_served_path_is_relative_to_the_webui_folder_or_absolute_where_allowed(webui, tmp_path, host):
    if host == "forge":
        forge_stand_in.install()
    inside = webui / "outputs" / "txt2img-images" / "prompt_pins" / "00000001" / "index.html"
    assert served_path(inside) == "outputs/txt2img-images/prompt_pins/00000001/index.html"
    outside = tmp_path / "elsewhere" / "index.html"
    assert served_path(outside) is None
    assert report_comment(outside, "prompt_pins/00000001/index.html", is_api=False) == (
        UNSERVED_LABEL + "prompt_pins/00000001/index.html")
    shared.cmd_opts.gradio_allowed_path.append(str(tmp_path / "elsewhere"))
    assert served_path(outside) == outside.resolve().as_posix()
    # an API reply never names the server's absolute path
    assert report_comment(outside, "x/index.html", is_api=True) == REPORT_LABEL + "x/index.html"
    # Forge's Gradio serves only allowed paths, even under its working folder
    shared.cmd_opts.gradio_allowed_path[:] = [str(tmp_path / "elsewhere")]
    assert (served_path(inside) is None) == (host == "forge")


def host_boxes(processed) -> str:
    """What A1111 v1.10.1 and Forge show under the gallery (modules/txt2img.py, plaintext_to_html):
    the infotext in #html_info_txt2img, the comments in #html_log_txt2img, then the time taken."""
    def as_html(text, classname=None):
        head = f'<p class="{classname}">' if classname else "<p>"
        return head + "<br>\n".join(html.escape(line) for line in text.split("\n")) + "</p>"

    return (f'<div id="html_info_txt2img">{as_html(processed.info)}</div>'
            f'<div id="html_log_txt2img">{as_html(processed.comments, "comments")}'
            '<div class="performance"><p class="time">Time taken: <wbr><span class="measurement">3.1 sec.</span>'
            '</p></div></div>')


def run_in_webui(interrupt: str = ""):
    script = load_script_module().Script()
    if interrupt == "first image":
        processing.before_batch_hooks.append(lambda p, n: setattr(shared.state, "interrupted", True))
    elif interrupt == "later":
        processing.before_batch_hooks.append(
            lambda p, n: setattr(shared.state, "interrupted", len(processing.calls) >= 3))
    p = processing.StableDiffusionProcessingTxt2Img(
        prompt="red circle", negative_prompt="", seed=5, subseed=-1, batch_size=1, steps=2, width=8,
        height=8, sampler_name="DPM++ 2M", outpath_samples="outputs/txt2img-images")  # as A1111 passes it
    shared.state.begin()
    return script.run(p, *run_args(generations=1, lambda_=2, validation_batches=0))


@needs_chromium
@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("host,interrupt", [("a1111", ""), ("forge", ""), ("a1111", "later"),
                                            ("forge", "first image")])
def test_the_link_the_page_builds_answers_200_from_the_file_route(webui, host, interrupt):
    pytest.importorskip("prompt_pinning.score.loss")
    if host == "forge":
        forge_stand_in.install()
    processed = run_in_webui(interrupt)
    assert REPORT_LABEL in processed.comments
    # a prompt (in the infotext) that holds the comments' words must not pass for them
    processed.info = f"decoy {REPORT_LABEL} elsewhere/index.html Prompt pinning result: decoy\n{processed.info}"
    page = (f'<!doctype html><html><body>{host_boxes(processed)}'
            f'<script src="/prompt_pinning.js"></script></body></html>').encode()
    server = FileRouteServer(webui, [webui], serves_working_dir=host == "a1111",
                             pages={"/": page, "/prompt_pinning.js": JS.read_bytes()})
    chrome = Chromium(CHROMIUM, 1600, 1200)
    try:
        chrome.call("Page.navigate", {"url": server.url}, session=True)
        chrome.wait_for_event("Page.loadEventFired")
        link = chrome.evaluate(
            "(() => { const a = document.querySelector('#html_info_txt2img a.prompt-pinning-report');"
            " if (!a) return null; const s = getComputedStyle(a);"
            " return {href: a.href, text: a.textContent, line: s.textDecorationLine, weight: s.fontWeight}; })()")
        assert link is not None, processed.comments
        assert re.fullmatch(re.escape(server.url) + r"file=outputs/txt2img-images/prompt_pins/\d{8}/index\.html",
                            link["href"]), link["href"]
        assert link["text"] == "Open the prompt pinning report"
        assert link["line"] == "underline" and int(link["weight"]) < 600  # a link, not a heading
        first = chrome.evaluate("document.querySelector('#html_info_txt2img').firstElementChild.textContent")
        if processed.images:  # the result line leads the box, before the infotext
            assert re.match(r"Result: (loss \d\.\d+ -> \d\.\d+( \([+-][\d.]+%\))? on your seeds |no improvement found)", first), first
        assert first.endswith("Open the prompt pinning report")
        status = chrome.evaluate(f"fetch({link['href']!r}).then(r => r.status)")
        assert status == 200
        assert server.requests[-1][1] == 200
    finally:
        chrome.close()
        server.close()


def test_the_route_stand_in_refuses_what_gradio_refuses(tmp_path):
    (tmp_path / "webui" / "outputs").mkdir(parents=True)
    (tmp_path / "webui" / "outputs" / "a.html").write_text("x")
    (tmp_path / "other.html").write_text("x")
    webui = tmp_path / "webui"
    assert file_status("outputs/a.html", webui, [], serves_working_dir=True) == 200
    assert file_status("outputs/a.html", webui, [], serves_working_dir=False) == 403
    assert file_status("txt2img-images/a.html", webui, [webui], serves_working_dir=True) == 404  # the old link
    assert file_status(str(tmp_path / "other.html"), webui, [webui], serves_working_dir=True) == 403
    assert file_status(str(tmp_path / "other.html"), webui, [tmp_path], serves_working_dir=False) == 200


def test_a_linked_extension_is_served_under_the_webui_folder(webui, tmp_path):
    """An extension linked into extensions/ from elsewhere: Gradio keeps the link in the path."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "README.md").write_text("docs")
    (webui / "extensions").mkdir()
    (webui / "extensions" / "sd-prompt-pinning").symlink_to(checkout)
    readme = webui / "extensions" / "sd-prompt-pinning" / "README.md"
    assert served_path(readme) == "extensions/sd-prompt-pinning/README.md"
    assert file_status(served_path(readme), webui, [webui], serves_working_dir=True) == 200
    # the same file named by its real place is outside every served folder
    assert served_path(readme.resolve()) is None
    assert file_status(str(readme.resolve()), webui, [webui], serves_working_dir=True) == 403
