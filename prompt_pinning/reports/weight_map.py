"""A 2-D map of the explored weights, with clusters: several distinct ways to pin a prompt?

Every evaluated individual's offsets are embedded in 2-D (UMAP where ``umap-learn``
is installed, PCA otherwise) and clustered in the full offset space with HDBSCAN
(scikit-learn's, else the ``hdbscan`` package). Both are optional; without HDBSCAN
the map has no clusters and says how to get them (``ENABLE_HINT``).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Optional

import numpy as np

ENABLE_HINT = ("Clusters need HDBSCAN: pip install \"scikit-learn>=1.3\" (and umap-learn for a UMAP "
               "layout), or in the WebUI set PROMPT_PINNING_MAPS=1 before launch so that install.py adds them.")
MIN_POINTS = 8
UMAP_MIN_POINTS = 30
SEED = 0


def embed(offsets: np.ndarray, method: str = "auto") -> tuple[np.ndarray, str]:
    """(n, 2) coordinates and the method used ("umap" or "pca")."""
    x = np.asarray(offsets, dtype=np.float64)
    if method in ("auto", "umap") and len(x) >= UMAP_MIN_POINTS:
        try:
            import umap  # optional; a broken install (numba against another numpy) must not stop the map
        except Exception as error:  # noqa: BLE001
            if not isinstance(error, ImportError):
                warnings.warn(f"umap-learn could not be loaded ({type(error).__name__}: {error}); using PCA")
            umap = None
        if umap is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                reducer = umap.UMAP(n_components=2, n_neighbors=15, random_state=SEED)
                return np.asarray(reducer.fit_transform(x), dtype=np.float64), "umap"
    return pca(x), "pca"


def pca(x: np.ndarray) -> np.ndarray:
    """The first two principal components (zeros where the points span less)."""
    centred = x - x.mean(axis=0) if len(x) else x
    out = np.zeros((len(x), 2))
    if len(x) < 2:
        return out
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(2, vt.shape[0])
    out[:, :k] = centred @ vt[:k].T
    return out


def hdbscan_clusterer() -> Optional[Callable[[np.ndarray, int], np.ndarray]]:
    """A function (points, min_cluster_size) -> labels (-1: noise), or None if none is installed."""
    try:
        from sklearn.cluster import HDBSCAN  # scikit-learn >= 1.3

        return lambda x, size: HDBSCAN(min_cluster_size=size, copy=True).fit_predict(x)
    except ImportError:
        pass
    try:
        import hdbscan  # the separate package
    except ImportError:
        return None
    return lambda x, size: hdbscan.HDBSCAN(min_cluster_size=size).fit_predict(x)


def min_cluster_size(points: int) -> int:
    return max(5, points // 40)


CLUSTER_RANKING = ("clusters are numbered by their members' median standing in their own generation "
                   "(0: the lowest loss on that generation's seeds, 1: the highest), so losses are only "
                   "compared on the same seeds")


def cluster_summaries(offsets: np.ndarray, losses: np.ndarray, labels: np.ndarray,
                      standing: np.ndarray) -> list[dict[str, Any]]:
    """Clusters numbered from 1 by their members' median ``standing`` (a paired measure, 0 best:
    see ``run.paired.standing``); each with its centre, spread and best-placed member (the
    latest among equals, points being in evaluation order)."""
    found = []
    for label in sorted(set(int(v) for v in labels) - {-1}):
        members = np.flatnonzero(labels == label)
        places = standing[members]
        best = int(members[np.lexsort((-members, places))[0]])
        found.append((float(np.median(places)), label, members, best))
    found.sort(key=lambda item: (item[0], item[1]))
    summaries = []
    for number, (median_standing, label, members, best) in enumerate(found, start=1):
        spread = offsets[members].std(axis=0)
        summaries.append({
            "cluster": number, "label": label, "count": int(len(members)),
            "standing": median_standing, "best_loss": float(losses[best]) if np.isfinite(losses[best]) else None,
            "centre": offsets[members].mean(axis=0).tolist(), "spread": spread.tolist(), "best": best,
        })
    return summaries


def weight_map(offsets: np.ndarray, losses: np.ndarray, standing: np.ndarray, method: str = "auto",
               clusterer: Optional[Callable[[np.ndarray, int], np.ndarray]] = None) -> dict[str, Any]:
    """Coordinates, cluster numbers per point (0: none) and the clusters' summaries, ranked by
    ``standing`` (each point's paired place in its own generation)."""
    x = np.asarray(offsets, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    standing = np.asarray(standing, dtype=np.float64)
    xy, used = embed(x, method) if len(x) else (np.zeros((0, 2)), "pca")
    clusterer = clusterer or hdbscan_clusterer()
    labels = np.full(len(x), -1)
    if clusterer is not None and len(x) >= MIN_POINTS:
        labels = np.asarray(clusterer(x, min_cluster_size(len(x))), dtype=int)
    clusters = cluster_summaries(x, losses, labels, standing)
    number = {c["label"]: c["cluster"] for c in clusters}
    return {
        "xy": xy, "method": used, "clustered": clusterer is not None,
        "cluster_of": np.array([number.get(int(v), 0) for v in labels], dtype=int),
        "clusters": clusters,
    }
