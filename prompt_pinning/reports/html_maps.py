"""The page's maps section: where each unit acts, and the map of the explored weights."""
from __future__ import annotations

import html
from typing import Any, Optional

from .weight_map import CLUSTER_RANKING

INFLUENCE_TEXT = (
    "How strongly, and where, each unit's weight moves the image: within a generation the individuals "
    "share their seeds, so each pixel's change across them is regressed on their weight offsets (ridge, "
    "pooled over the run). Bright means a change of weight changes that part of the picture. No image "
    "is rendered for this.")


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def number(value: Optional[float], digits: int = 5) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def maps_section(maps: Optional[dict[str, Any]]) -> str:
    if not maps:
        return ('<section class="card" aria-labelledby="maps-title"><h2 id="maps-title">Maps</h2>'
                '<p class="muted">The influence maps and the map of the explored weights are drawn with the '
                'plots, once a generation has been scored.</p></section>')
    return _influence(maps.get("influence")) + _weights(maps.get("weights"))


def _influence(entry: Optional[dict[str, Any]]) -> str:
    head = '<section class="card" aria-labelledby="influence-title"><h2 id="influence-title">Where each unit acts</h2>'
    if not entry:
        return head + '<p class="muted">Not yet: it needs a generation of two or more individuals.</p></section>'
    where = ("Each column is one seed, drawn over the unmodified prompt's image." if entry.get("aligned") else
             "With rotating seeds each column pools different seeds: the map shows where in the frame the unit "
             "acts on average, over the pooled images. The fixed seed schedule gives one map per seed.")
    slots, shown = entry.get("slots"), entry.get("shown")
    if slots and shown and shown < slots:
        where += f" Only the first {shown} of the {slots} image slots are drawn as columns; the data hold all."
    units = sorted(entry.get("units") or [], key=lambda u: -(u.get("strength") or 0.0))
    rows = "".join(
        f'<tr><td>{esc(u.get("n"))}</td><td class="unit-text">{esc(u.get("label"))}</td>'
        f'<td>{number(u.get("strength"), 4)}</td><td>{number(u.get("luminance"), 4)}</td>'
        f'<td>{number(u.get("colour"), 4)}</td></tr>' for u in units)
    return (head + f'<p class="muted">{esc(INFLUENCE_TEXT)} {esc(where)} From {esc(entry.get("individuals"))} '
            f'individuals; the data: <a href="{esc(entry["json"])}">{esc(entry["json"])}</a>, '
            f'<a href="{esc(entry["npz"])}">{esc(entry["npz"])}</a>.</p>'
            f'<figure class="plot native"><a href="{esc(entry["png"])}"><img src="{esc(entry["png"])}" '
            f'loading="lazy"{_size(entry)} alt="Influence maps, one row per unit"></a></figure>'
            '<table class="maps-table"><thead><tr><th>#</th><th>Unit</th><th>Strength</th><th>Luminance</th>'
            f'<th>Colour</th></tr></thead><tbody>{rows}</tbody></table>'
            '<p class="muted">Strength: mean change per unit of weight over pixels and images, sRGB values in '
            '[0, 1]; luminance and colour (opponent channels) apart.</p></section>')


def _weights(entry: Optional[dict[str, Any]]) -> str:
    head = '<section class="card" aria-labelledby="wmap-title"><h2 id="wmap-title">Map of the explored weights</h2>'
    if not entry:
        return head + '<p class="muted">Not yet.</p></section>'
    method = "UMAP" if entry.get("method") == "umap" else "PCA; install umap-learn for a UMAP layout"
    text = (f"Every evaluated individual's offsets in 2-D ({method}), coloured by its place among the individuals rendered on the same seeds (its generation): "
            "viridis, dark purple for the lowest loss there, yellow for the highest. ")
    if not entry.get("clustered"):
        text += ("Clusters of individuals would show whether there are several distinct ways to pin the "
                 "prompt, with each cluster's best individual and its images. " + (entry.get("hint") or ""))
    clusters = entry.get("clusters") or []
    if entry.get("clustered"):
        text += (f"{len(clusters)} HDBSCAN clusters; {entry.get('ranking') or CLUSTER_RANKING}. To refine one, "
                 "start a new run of this prompt from it: "
                 "--start-from THIS_RUN_FOLDER:NUMBER (in the WebUI, the Start from a cluster field)."
                 if clusters else
                 "HDBSCAN found no clusters: the search explored one region.")
    cards = "".join(_cluster(c) for c in clusters)
    return (head + f'<p class="muted">{esc(text)}</p><figure class="plot native"><a href="{esc(entry["png"])}">'
            f'<img src="{esc(entry["png"])}" loading="lazy"{_size(entry)} alt="Explored weights in 2-D"></a></figure>'
            f'<div class="clusters">{cards}</div></section>')


def _size(entry: dict[str, Any]) -> str:
    """The picture's own size, so the page never scales it up (it may scale down on a narrow screen)."""
    width, height = entry.get("width"), entry.get("height")
    return f' width="{int(width)}" height="{int(height)}"' if width and height else ""


def _cluster(c: dict[str, Any]) -> str:
    best = c.get("best") or {}
    images = "".join(f'<a href="{esc(src)}"><img src="{esc(src)}" loading="lazy" alt="cluster {esc(c.get("cluster"))}'
                     f' best image {n}"></a>' for n, src in enumerate(best.get("images") or [], start=1))
    return (f'<figure class="card batch"><figcaption>cluster {esc(c.get("cluster"))} '
            f'<span class="muted">{esc(c.get("count"))} individuals, median standing {number(c.get("standing"))}; '
            f'best placed: generation {esc(best.get("g"))}, individual {esc(best.get("i"))}, loss '
            f'{number(c.get("best_loss"))} on its own seeds</span></figcaption>'
            f'<div class="thumbs">{images}</div></figure>')
