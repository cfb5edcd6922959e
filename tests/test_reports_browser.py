"""index.html in real headless Chromium (Debian's ``chromium``), driven over the DevTools pipe.

Checks that the page renders, sorts, filters and pages; that it logs no console
errors, makes no network request and runs no injected prompt. A screenshot is
kept under test-artifacts/.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from prompt_pinning.reports import INDEX_HTML, ReportWriter
from synthetic_run import synthetic_run
from prompt_pinning.reports.jobs import write_run_reports
from prompt_pinning.reports.plot_data import RunPlotData
from prompt_pinning.reports.page_data import page_data

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
INJECTED = 'a </script><script>window.__pwned=1</script> "q" \'s\' <b>bold</b> & <img src=x onerror="window.__pwned=2">'
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--remote-debugging-pipe"]

# CI sets PP_REQUIRE_BROWSER=1: there a missing browser is a failure, not a skip.
REQUIRED = os.environ.get("PP_REQUIRE_BROWSER") == "1"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED,
    reason="Debian's chromium is not installed (apt-get install -y chromium)")


class Chromium:
    """Headless Chromium with one page, spoken to over --remote-debugging-pipe (fds 3 and 4)."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000):
        self._profile = tempfile.mkdtemp(prefix="pp-chromium-")
        to_chrome_read, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_write = os.pipe()

        def map_pipes():  # in the child: its fd 3 reads our commands, its fd 4 writes replies
            read_end, write_end = os.dup(to_chrome_read), os.dup(from_chrome_write)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=map_pipes, pass_fds=(3, 4))
        os.close(to_chrome_read)
        os.close(from_chrome_write)
        self._buffer, self._next_id = b"", 0
        self.events: list[dict[str, Any]] = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)

    def call(self, method: str, params: Optional[dict] = None, session: bool = False, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise TimeoutError("no reply from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def wait_for_event(self, method: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if e.get("method") == method]
            if found:
                return found[-1]
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": True}, session=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page error in {expression!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, path: Path, timeout: float = 30) -> float:
        """Load a file and wait until the page says it is ready; return the seconds that took."""
        started = time.monotonic()
        self.call("Page.navigate", {"url": path.resolve().as_uri()}, session=True)
        self.wait_for_event("Page.loadEventFired", timeout)
        while self.evaluate("document.documentElement && document.documentElement.getAttribute('data-pp-ready')") != "1":
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{path} never became ready")
            time.sleep(0.05)
        return time.monotonic() - started

    def settle(self, seconds: float = 0.3) -> None:
        """Let the page work (lazy images, timers) while collecting its events."""
        deadline = time.monotonic() + seconds
        self.evaluate("new Promise(r => setTimeout(r, %d))" % int(seconds * 1000))
        while time.monotonic() < deadline:
            time.sleep(0.02)

    def screenshot(self, path: Path, height: int = 2600) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": 1400, "height": height, "deviceScaleFactor": 1, "mobile": False}, session=True)
        self.settle(0.5)
        data = self.call("Page.captureScreenshot", {"format": "png"}, session=True)["data"]
        import base64

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and dialogs seen so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                found.append(f"console.{params['type']}: {params.get('args')}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
            elif method == "Page.javascriptDialogOpening":
                found.append(f"dialog: {params.get('message')}")
        return found

    def requested_urls(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self._profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("PP_REQUIRE_BROWSER=1 but chromium is not installed")
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    chrome = Chromium(CHROMIUM)
    yield chrome
    chrome.close()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("browser") / "00000001"
    synthetic_run(run_dir, ReportWriter(), generations=3, population=4, batch=4, side=32,
                  positive=INJECTED, negative="blurry <i>dark</i>", size_limit=0.5)
    return run_dir


def column_values(chrome: Chromium, selector: str) -> list[float]:
    return chrome.evaluate(
        f"[...document.querySelectorAll({json.dumps(selector)})].map(td => parseFloat(td.dataset.v ?? td.textContent))")


def click_header(chrome: Chromium, table: str, label: str) -> None:
    clicked = chrome.evaluate(
        f"(() => {{ const b = [...document.querySelectorAll('{table} thead button')]"
        f".find(b => b.textContent.trim().startsWith({json.dumps(label)})); if (b) b.click(); return !!b; }})()")
    assert clicked, f"no {label!r} heading in {table}"


@needs_chromium
def test_page_renders_sorts_and_stays_offline(browser, small_run):
    browser.events.clear()
    browser.open(small_run / INDEX_HTML)
    assert browser.evaluate("document.querySelectorAll('#ind-table tbody tr').length") == 13
    assert browser.evaluate("document.querySelectorAll('#convergence svg path').length") >= 2
    assert browser.evaluate("document.querySelectorAll('#units-table tbody tr').length") == 11

    headings = browser.evaluate("[...document.querySelectorAll('#ind-table thead button')].map(b => b.textContent)")
    assert not any(h.startswith("Loss (own seeds)") for h in headings)  # raw losses of different seed blocks
    click_header(browser, "#ind-table", "Loss vs original")  # paired: each row against its own seeds' baseline
    values = column_values(browser, "#ind-table tbody td.delta")
    scored = [v for v in values if v == v]
    assert scored == sorted(scored) and len(scored) >= 10 and values[:len(scored)] == scored  # unscored last
    click_header(browser, "#ind-table", "Loss vs original")
    values = column_values(browser, "#ind-table tbody td.delta")
    assert [v for v in values if v == v] == sorted(scored, reverse=True)

    click_header(browser, "#units-table", "Tightness")
    tightness = column_values(browser, "#units-table tbody td:nth-child(8)")
    assert tightness == sorted(tightness)
    click_header(browser, "#units-table", "Change")
    change = column_values(browser, "#units-table tbody td:nth-child(6)")
    assert change == sorted(change) and len(change) == 11

    browser.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # lazy images below the fold
    browser.settle(0.6)
    browser.evaluate("window.scrollTo(0, 0)")
    browser.screenshot(ARTIFACTS / "report_index.png")
    assert browser.problems() == []
    urls = browser.requested_urls()
    assert any(url.endswith("/summary.gif") for url in urls)  # lazy images did load
    assert all(url.startswith(("file://", "data:")) for url in urls), urls


@needs_chromium
def test_injected_prompt_is_shown_as_text_and_never_runs(browser, small_run):
    browser.events.clear()
    browser.open(small_run / INDEX_HTML)
    browser.settle(0.3)
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.evaluate("document.getElementById('original-pos').textContent") == INJECTED
    assert browser.evaluate("document.querySelectorAll('script').length") == 2
    assert browser.evaluate("document.querySelectorAll('pre b, td b, .prompt-text b').length") == 0
    browser.evaluate("document.getElementById('ind-filter').value = '__pwned';"
                     "document.getElementById('ind-filter').dispatchEvent(new Event('input'))")
    browser.settle(0.4)
    assert browser.evaluate("window.ppReport.shownCount()") == 13  # every prompt holds the text
    assert browser.evaluate("typeof window.__pwned") == "undefined"
    assert browser.problems() == []


@needs_chromium
def test_two_thousand_individuals_page_and_filter(browser, small_run, tmp_path):
    writer = ReportWriter(worker="thread")  # small_run's table rows, made again (a made-up run keeps no journal)
    synthetic_run(tmp_path / "rows", writer, generations=3, population=4, batch=4, side=32,
                  positive=INJECTED, negative="blurry <i>dark</i>", size_limit=0.5)
    rows = list(writer._rows.values())
    many = []
    for k in range(2000):
        row = dict(rows[k % len(rows)])
        row.update(g=k // 40, i=k % 40, loss=0.5 - k * 1e-4, id=f"id{k:05d}")
        many.append(row)
    from prompt_pinning.run.records import RunResult

    result = RunResult(run_dir=small_run, original_positive="red", original_negative="", baseline=None,
                       best=None, hall_of_fame=[], units=[], generations=[], stop_reason="completed")
    run_copy = tmp_path / "run"
    shutil.copytree(small_run, run_copy)
    page = page_data(run_copy, result, many, [], "completed", {}, "2026-01-01 00:00:00")
    write_run_reports(run_copy, RunPlotData(), page, final=True)
    browser.events.clear()
    browser.open(run_copy / INDEX_HTML)
    assert browser.evaluate("document.querySelectorAll('#ind-table tbody tr').length") == 50
    assert browser.evaluate("document.getElementById('ind-count').textContent") == "2000 of 2000 individuals"
    click_header(browser, "#ind-table", "Gen")  # the table starts sorted by generation: now the last first
    assert column_values(browser, "#ind-table tbody td.loss")[0] == pytest.approx(0.5 - 1960e-4, abs=1e-5)  # 49, #0
    browser.evaluate("document.getElementById('ind-next').click()")
    assert browser.evaluate("document.getElementById('ind-page').textContent") == "Page 2 of 40"
    browser.evaluate("window.ppReport.setFilter('g:7')")
    assert browser.evaluate("window.ppReport.shownCount()") == 40
    assert browser.evaluate("document.querySelectorAll('#ind-table tbody img[loading=lazy]').length") == 80
    browser.settle(0.3)
    assert browser.problems() == []


@needs_chromium
def test_copy_button_puts_the_best_prompt_on_the_clipboard(browser, small_run):
    browser.call("Browser.grantPermissions", {"permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
    browser.call("Emulation.setFocusEmulationEnabled", {"enabled": True}, session=True)
    browser.events.clear()
    browser.open(small_run / INDEX_HTML)
    best = browser.evaluate("document.getElementById('best-pos').textContent")
    assert "__pwned" in best  # the pinned prompt keeps the injected words, as text
    browser.evaluate("document.querySelector('button[data-copy=\"best-pos\"]').click()")
    browser.settle(0.3)
    assert browser.evaluate("navigator.clipboard.readText()") == best
    assert browser.evaluate("document.querySelector('button[data-copy=\"best-pos\"]').textContent") == "Copied"
    assert browser.problems() == []


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    """A small real run on the built-in model: fade guard on, validation on, rotating seeds."""
    from prompt_pinning.builtin.renderer import BuiltinRenderer
    from prompt_pinning.config import PinningConfig
    from prompt_pinning.rendering import GenerationSettings
    from prompt_pinning.run import run_pinning

    settings = GenerationSettings(seed=11, batch_size=3, steps=4, width=24, height=24, cfg_scale=3.0, sampler="Euler")
    config = PinningConfig(positive="circle square red blue", outdir=tmp_path_factory.mktemp("first-screen"),
                           generation=settings, cma_logging=False, generations=3, lambda_=4, validation_batches=1)
    return run_pinning(config, BuiltinRenderer(), sink=ReportWriter())


@needs_chromium
def test_first_screen_names_the_headline_seeds_and_shows_their_images(browser, builtin_run):
    result = builtin_run
    seeds = result.paired.seeds
    assert result.paired.basis == "validation seeds" and list(seeds) == result.validation_seeds
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=True)
    browser.events.clear()
    browser.open(result.run_dir / INDEX_HTML)
    browser.settle(0.5)
    first_screen = """(() => {
      const seen = el => { const r = el.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight
                           && r.width > 0 && r.height > 0; };
      const headline = document.querySelector('.headline');
      const images = [...document.querySelectorAll('.validation-view img')].filter(seen);
      return {text: headline && seen(headline) ? headline.innerText : '',
              images: images.map(img => [img.getAttribute('src'), img.complete && img.naturalWidth > 0]),
              captions: [...document.querySelectorAll('.validation-view figcaption')].filter(seen)
                          .map(c => c.innerText)};
    })()"""
    shown = browser.evaluate(first_screen)
    improvement = f"{result.paired.improvement * 100:+.1f}%".replace("+0.0%", "0.0%").replace("-0.0%", "0.0%")
    assert improvement in shown["text"]
    assert f"validation seeds (seeds {seeds[0]}-{seeds[-1]}; held out" in shown["text"]
    user = result.user_seeds
    if user != result.paired:
        assert f"on your seeds (seeds {user.seeds[0]}-{user.seeds[-1]})" in shown["text"]
    expected = {f"validation/{r.individual_id}/0{k}-{seed}.png" for r in (result.baseline, result.best)
                for k, seed in enumerate(seeds)}
    srcs = {src for src, _ in shown["images"]}
    assert srcs == expected and all(loaded for _, loaded in shown["images"])  # both prompts, every seed, loaded
    assert [c.split(" held-out")[0] for c in shown["captions"]] == ["Unmodified prompt", "Best pinned prompt"]
    assert all(f"seeds {seeds[0]}–{seeds[-1]}" in c for c in shown["captions"])
    assert browser.problems() == []
    chart = browser.evaluate("""(() => {
      const style = el => { const c = getComputedStyle(el); return [c.stroke, c.strokeDasharray, c.strokeWidth]; };
      const legend = [...document.querySelectorAll('#convergence .legend svg.swatch line')];
      return {title: (document.querySelector('#convergence .y-title') || {}).textContent,
              swatches: legend.map(line => {
                const cls = line.getAttribute('class');
                const drawn = document.querySelector('#convergence > svg .' + cls.split(' ').join('.'));
                return [cls, style(line), drawn ? style(drawn) : null];
              })};
    })()""")
    assert chart["title"] == "improvement, same seeds (%)"
    assert chart["swatches"] and all(line == drawn for _, line, drawn in chart["swatches"]), chart["swatches"]
    # the Individuals table: each row against the unmodified prompt on that row's own seeds
    data = browser.evaluate("JSON.parse(document.getElementById('pp-data').textContent)")
    shown_rows = browser.evaluate("""[...document.querySelectorAll('#ind-table tbody tr')].map(tr =>
        [...tr.querySelectorAll('td')].slice(0, 4).map(td => td.textContent))""")
    losses = {(r["g"], r["i"]): r["loss"] for r in data["rows"]}
    assert shown_rows
    for g, i, _, delta in shown_rows:
        reference = data["row_baselines"].get(g)
        if reference is None:
            assert delta == "\u2014"
        else:
            expected = 100 * (losses[(int(g), int(i))] - reference) / reference
            assert float(delta.rstrip("%")) == pytest.approx(expected, abs=0.051)
    assert {g for g, *_ in shown_rows} - {"0"} <= set(data["row_baselines"])  # the guard scored every block
    browser.screenshot(ARTIFACTS / "report_first_screen.png", height=1800)


@needs_chromium
def test_first_screen_fits_a_narrow_phone(browser, builtin_run):
    browser.call("Emulation.setDeviceMetricsOverride",
                 {"width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": True}, session=True)
    try:
        browser.open(builtin_run.run_dir / INDEX_HTML)
        wide = browser.evaluate("""[...document.querySelectorAll('.stats, .stat, .headline, .pair, .card')]
            .filter(el => el.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
            .map(el => el.className)""")
        assert wide == []
    finally:
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session=True)


@needs_chromium
def test_maps_are_never_scaled_up(browser, small_run):
    browser.events.clear()
    browser.open(small_run / INDEX_HTML)
    browser.evaluate("document.querySelectorAll('.plot.native img').forEach(img => img.loading = 'eager')")
    browser.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    browser.settle(0.8)
    sizes = browser.evaluate("""[...document.querySelectorAll('.plot.native img')].map(img =>
        [img.getAttribute('src'), img.naturalWidth, img.clientWidth])""")
    assert {src for src, *_ in sizes} == {"influence_maps.png", "weight_map.png"}
    assert all(0 < shown <= natural for _, natural, shown in sizes), sizes
