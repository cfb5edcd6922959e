"""index.html: one self-contained, offline page for a run.

Every user string goes through ``esc`` (markup) or the embedded JSON block (data
for the page's script, which only ever puts it into the page as text). The page
loads nothing from the network; a Content-Security-Policy with hashes of the
inline script and style makes any other script or request fail.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import lru_cache
from importlib import resources
from typing import Any, Optional

from ..run.paired import seed_ranges
from .files import jsonable
from .html_maps import maps_section

DATA_ELEMENT_ID = "pp-data"
_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def embed_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no '<', '>', '&', U+2028 or U+2029 left."""
    text = json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return "".join(_JSON_ESCAPES.get(char, char) for char in text) if _needs_escape(text) else text


def _needs_escape(text: str) -> bool:
    return any(char in text for char in _JSON_ESCAPES)


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    text = resources.files("prompt_pinning").joinpath("assets", name).read_text(encoding="utf-8")
    if "</" in text.lower() and ("</script" in text.lower() or "</style" in text.lower()):
        raise ValueError(f"asset {name}: must not contain a closing </script> or </style> tag")
    return text


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def content_security_policy(script: str, style: str) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_csp_hash(script)}",
            f"style-src {_csp_hash(style)}",
            "img-src 'self' file: data:",
            "base-uri 'none'",
            "form-action 'none'",
        ]
    )


def _number(value: Optional[float], digits: int = 5) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _prompt_block(title: str, entry_id: str, positive: str, negative: str, entry: Optional[dict[str, Any]],
                  copy: bool) -> str:
    button = f'<button type="button" class="copy" data-copy="{entry_id}-pos">Copy prompt</button>' if copy else ""
    if copy and negative:
        button += f'<button type="button" class="copy secondary" data-copy="{entry_id}-neg">Copy negative</button>'

    negative_html = (
        f'<div class="label">Negative prompt</div><pre class="prompt neg" id="{entry_id}-neg">{esc(negative)}</pre>'
        if negative
        else ""
    )
    entry = entry or {}
    loss, validation = entry.get("loss"), entry.get("val")
    loss_badge = ("" if loss is None else f'<span class="loss-badge" title="loss on the images shown below">'
                  f'loss {_number(loss)}, {_seed_span(entry.get("seeds") or [])}</span>')
    validation_badge = ("" if validation is None else
                        f'<span class="loss-badge" title="mean loss on the held-out validation seeds">'
                        f'validation {_number(validation)}</span>')
    return f"""
<article class="card prompt-card" id="{entry_id}">
  <header><h2>{esc(title)}</h2>{loss_badge}{validation_badge}{button}</header>
  <div class="label">Prompt</div>
  <pre class="prompt" id="{entry_id}-pos">{esc(positive)}</pre>
  {negative_html}
</article>"""


def _batch_block(title: str, entry: Optional[dict[str, Any]]) -> str:
    if not entry or not entry.get("images"):
        return f'<figure class="card batch"><figcaption>{esc(title)}</figcaption><p class="muted">No images yet.</p></figure>'
    images = "".join(
        f'<a href="{esc(src)}"><img src="{esc(src)}" loading="lazy" decoding="async" alt="{esc(title)} image {n}"></a>'
        for n, src in enumerate(entry["images"], start=1)
    )
    return f"""
<figure class="card batch">
  <figcaption>{esc(title)} <span class="muted">loss {_number(entry.get("loss"))}, {_seed_span(entry.get("seeds") or [])}</span></figcaption>
  <div class="thumbs">{images}</div>
</figure>"""


def _seed_span(seeds: list[int]) -> str:
    """``seeds 5–6`` or ``seeds 1–8, 17–24``: never one range over seeds that were not all used."""
    return esc(seed_ranges(seeds).replace("-", "–")) if seeds else "no seeds"


def _units_table(units: list[dict[str, Any]]) -> str:
    if not units:
        return '<p class="muted">No units recorded.</p>'
    header = "".join(
        f'<th scope="col" data-key="{key}" data-type="{kind}"><button type="button">{label}</button></th>'
        for key, label, kind in (
            ("n", "#", "num"),
            ("text", "Unit", "text"),
            ("prompt", "Prompt", "text"),
            ("base", "Base weight", "num"),
            ("pinned", "Pinned weight", "num"),
            ("change", "Change", "num"),
            ("offset", "Offset", "num"),
            ("tight", "Tightness (std)", "num"),
        )
    )
    tight_values = [u["tight"] for u in units if u.get("tight") is not None]
    widest = max(tight_values) if tight_values else None
    body = []
    for u in units:
        share = (u["tight"] / widest) if (widest and u.get("tight") is not None) else None
        meter = f'<meter min="0" max="1" value="{share:.4f}"></meter>' if share is not None else ""
        change, offset = u.get("change"), u.get("offset")
        change_class = "up" if change and change > 0 else "down" if change and change < 0 else ""
        kind = u.get("kind", "word")  # a network strength shows its kind: "lora te: name"
        label = u["text"] if kind == "word" else f"{kind}: {u['text']}"
        body.append(
            "<tr>"
            f'<td data-v="{u["n"]}">{u["n"]}</td>'
            f'<td data-v="{esc(label)}" class="unit-text">{esc(label)}</td>'
            f'<td data-v="{esc(u["prompt"])}">{esc(u["prompt"])}</td>'
            f'<td data-v="{_sort_value(u.get("base"))}">{_number(u.get("base"), 3)}</td>'
            f'<td data-v="{_sort_value(u.get("pinned"))}"><strong>{_number(u.get("pinned"), 3)}</strong></td>'
            f'<td data-v="{_sort_value(change)}" class="{change_class}">{"" if change is None else _signed(change, 3)}</td>'
            f'<td data-v="{_sort_value(offset)}">{"" if offset is None else _signed(offset, 3)}</td>'
            f'<td data-v="{_sort_value(u.get("tight"))}">{_number(u.get("tight"), 4)} {meter}</td>'
            "</tr>"
        )
    return f'<table class="sortable" id="units-table"><thead><tr>{header}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _sort_value(value: Optional[float]) -> str:
    return "" if value is None else repr(float(value))


def _summary(data: dict[str, Any]) -> str:
    run = data["run"]
    status, reason = str(run["status"]), str(run.get("stop_reason") or "")
    shown = status if not reason or reason in status or status in reason else f"{status}: {reason}"
    items = [
        ("Status", shown),
        ("Generations", run["generations"]),
        ("Individuals", run["individuals"]),
        ("Updated", run["updated"]),
    ]
    cells = "".join(f'<div class="stat"><span>{esc(k)}</span><strong>{esc(v)}</strong></div>' for k, v in items)
    return f'<section class="stats" aria-label="Run summary">{cells}</section>'


def _signed(value: float, digits: int) -> str:
    """``+0.012``; a value that rounds to zero is written without a sign (never ``-0.000``)."""
    text = f"{value:+.{digits}f}"
    return text[1:] if float(text) == 0 else text


def _percent(value: Optional[float]) -> str:
    return "—" if value is None else _signed(value * 100, 1) + "%"


def _score_line(score: dict[str, Any], label: str) -> str:
    seeds = f" ({esc(score['seed_text'])})" if score.get("seed_text") else ""
    return (f'<p class="score"><strong>{esc(_percent(score.get("improvement")))}</strong> {esc(label)}{seeds}: '
            f'unmodified {_number(score.get("baseline_loss"))}, pinned {_number(score.get("result_loss"))}</p>')


def _headline(data: dict[str, Any]) -> str:
    """The result's paired numbers, each with the seeds both were rendered on."""
    headline, user, shown = data.get("headline"), data.get("your_seeds"), data.get("shown")
    if headline is None:
        body = ('<p class="score muted">No paired improvement yet: the result has not been rendered on the '
                'same seeds as the unmodified prompt.</p>')
    else:
        notes = [headline.get("seed_text") or ""]
        if headline.get("basis") == "validation seeds":
            notes.append("held out: no training render used them")
        seeds = f" ({esc('; '.join(n for n in notes if n))})" if any(notes) else ""
        body = (f'<p class="headline-number"><strong>{esc(_percent(headline.get("improvement")))}</strong> '
                f'lower loss than the unmodified prompt on the {esc(headline.get("basis"))}{seeds}'
                f'<span class="muted">: unmodified {_number(headline.get("baseline_loss"))}, pinned '
                f'{_number(headline.get("result_loss"))}</span></p>')
    lines = []
    if user is not None and user != headline:
        lines.append(_score_line(user, "on your seeds"))
    elif headline is not None and user is None and headline.get("basis") != "your seeds":
        lines.append('<p class="score muted">On your seeds: not rendered yet.</p>')
    if shown is not None and shown != user and shown != headline:
        lines.append(_score_line(shown, "on the seeds of the images shown below, its training seeds"))
    return (f'<section class="card headline" aria-labelledby="headline-title"><h2 id="headline-title">Result</h2>'
            f'{body}{"".join(lines)}</section>')


def _validation_view(view: Optional[dict[str, Any]]) -> str:
    """The unmodified prompt and the result on the same validation seeds, side by side."""
    if not view:
        return ""
    seeds = _seed_span(view.get("seeds") or [])
    more = f" (the first of {view['blocks']} validation batches)" if (view.get("blocks") or 1) > 1 else ""

    def block(title: str, images: list[str], loss: Optional[float]) -> str:
        thumbs = "".join(f'<a href="{esc(src)}"><img src="{esc(src)}" decoding="async" alt="{esc(title)} '
                         f'validation image {n}"></a>' for n, src in enumerate(images, start=1))
        return (f'<figure class="card batch"><figcaption>{esc(title)} <span class="muted">held-out validation '
                f'{seeds}{esc(more)}, loss {_number(loss)}</span></figcaption><div class="thumbs">{thumbs}</div>'
                f'</figure>')

    return (f'<section class="pair validation-view" aria-label="Validation images{esc(more)}">'
            f'{block("Unmodified prompt", view.get("baseline") or [], view.get("baseline_loss"))}'
            f'{block("Best pinned prompt", view.get("best") or [], view.get("best_loss"))}</section>')


def _plots(plots: dict[str, Optional[str]]) -> str:
    figures = []
    for key, title in (("mask", "Target mask: the mask, then each target with the ignored pixels dimmed"),
                       ("history", "Improvement over the run, on the same seeds"), ("cma", "CMA-ES state"), ("mo", "Size limiter")):
        src = plots.get(key)
        if src:
            figures.append(
                f'<figure class="card plot"><figcaption>{title}</figcaption>'
                f'<a href="{esc(src)}"><img src="{esc(src)}" loading="lazy" decoding="async" alt="{title} plot"></a></figure>'
            )
    return "".join(figures)


def _tags(rows: list[dict[str, Any]]) -> str:
    """The tag target: each tag's mean probability, unmodified prompt against the result."""
    if not rows:
        return ""

    def cell(value: Optional[float]) -> str:
        return "—" if value is None else f"{value:.3f}"

    def change(row: dict[str, Any]) -> str:
        if row["base"] is None or row["best"] is None:
            return "—"
        return _signed(row['best'] - row['base'], 3)

    body = "".join(
        f"<tr><td>{esc(row['tag'])}</td><td>{esc(row['role'])}</td><td class=\"num\">{row['weight']:g}</td>"
        f"<td class=\"num\">{cell(row['base'])}</td><td class=\"num\">{cell(row['best'])}</td>"
        f"<td class=\"num\">{change(row)}</td></tr>" for row in rows)
    return f"""<section class="card" aria-labelledby="tags-title">
  <h2 id="tags-title">Tags</h2>
  <p class="muted">Mean probability over the batch, from the tagger. Wanted tags should rise, unwanted ones fall. Each individual's own values are in the table of individuals and its batch_stats.json.</p>
  <table class="settings"><thead><tr><th scope="col">Tag</th><th scope="col">Target</th><th scope="col">Weight</th><th scope="col">Unmodified prompt</th><th scope="col">Best pinned prompt</th><th scope="col">Change</th></tr></thead><tbody>{body}</tbody></table>
</section>"""


def _settings(settings: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th scope=\"row\">{esc(key)}</th><td>{esc(json.dumps(jsonable(value), ensure_ascii=False))}</td></tr>"
        for key, value in sorted(settings.items())
    )
    return f'<details class="card"><summary>Run settings</summary><table class="settings">{rows}</table></details>'


def render_index(data: dict[str, Any]) -> str:
    """The whole page for ``data`` (from ``page_data``)."""
    script, style = asset("report.js"), asset("report.css")
    run = data["run"]
    best, baseline = data.get("best"), data.get("baseline")
    running = run["status"] == "running"
    banner = (
        '<p class="banner">This run is still going. Reload the page to see new generations.</p>' if running else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(content_security_policy(script, style))}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Prompt pinning · run {esc(run["name"])}</title>
<style>{style}</style>
</head>
<body>
<header class="page-head">
  <h1>Prompt pinning <span class="muted">run {esc(run["name"])}</span></h1>
  {banner}
</header>
<main>
{_summary(data)}
{_headline(data)}
{_validation_view(data.get("validation_view"))}
<section class="pair" aria-label="Prompts">
{_prompt_block("Original prompt", "original", run["original_positive"], run["original_negative"], baseline, False)}
{_prompt_block("Best pinned prompt", "best", best["pos"] if best else "", best["neg"] if best else "", best, bool(best))}
</section>
<section class="pair" aria-label="Images">
{_batch_block("Unmodified prompt", baseline)}
{_batch_block("Best pinned prompt", best)}
</section>
{_tags(data.get("tags") or [])}
<section class="card" aria-labelledby="units-title">
  <h2 id="units-title">Units</h2>
  <p class="muted">Change is the pinned weight minus the base weight. Offset is the value the search found: the pinned weight is |base + offset|, so a base of 1.0 with an offset of -1.496 pins to 0.496, a change of -0.504. Tightness is the final search spread along a unit: small means the images are sensitive to it (locked in), large means it is loose. Click a heading to sort.</p>
  {_units_table(data["units"])}
</section>
<section class="card" aria-labelledby="conv-title">
  <h2 id="conv-title">Convergence</h2>
  <div id="convergence" class="chart" role="img" aria-label="Loss per generation"></div>
</section>
<section class="plots">{_plots(data.get("plots", {}))}</section>
{maps_section(data.get("maps"))}
<section class="card" aria-labelledby="ind-title">
  <h2 id="ind-title">Individuals</h2>
  <div class="controls">
    <input type="search" id="ind-filter" placeholder="Filter by prompt, id or generation (g:3)" aria-label="Filter individuals">
    <label>Rows per page <select id="ind-page-size"><option>25</option><option selected>50</option><option>100</option><option>200</option></select></label>
    <span id="ind-count" class="muted"></span>
  </div>
  <div class="table-wrap"><table id="ind-table" class="sortable-js"><thead><tr></tr></thead><tbody></tbody></table></div>
  <nav class="pager" aria-label="Pages"><button type="button" id="ind-prev">Previous</button><span id="ind-page"></span><button type="button" id="ind-next">Next</button></nav>
  <noscript><p>The table of individuals needs JavaScript; every individual has a folder with its images, batch_stats.json and plots.</p></noscript>
</section>
{_settings(data.get("settings") or {})}
</main>
<footer class="muted">Written by prompt pinning. This page works offline and loads nothing from the network.</footer>
<script type="application/json" id="{DATA_ELEMENT_ID}">{embed_json(data)}</script>
<script>{script}</script>
</body>
</html>
"""
