"""Losses carry their seeds: ranking and comparing go through prompt_pinning.run.paired."""
import ast
from pathlib import Path

import pytest

from prompt_pinning.run.paired import VALIDATION, SeedLoss, UnpairedError, improvement, lowest, ranked, standing

ROOT = Path(__file__).resolve().parents[1]
RANKING_CALLS = {"min", "max", "sorted", "sort", "argmin", "argmax", "argsort", "nanmin", "nanargmin",
                 "fmin", "minimum", "lexsort", "accumulate"}
API = ROOT / "prompt_pinning" / "run" / "paired.py"


def test_losses_on_different_seeds_refuse_to_compare():
    a, b, v = SeedLoss(0.2, 1), SeedLoss(0.3, 2), SeedLoss(0.25, VALIDATION)
    for left, right in ((a, b), (a, v)):
        with pytest.raises(UnpairedError, match="not comparable"):
            _ = left < right
        with pytest.raises(UnpairedError):
            improvement(left, right)
    with pytest.raises(UnpairedError, match="cannot rank"):
        ranked([a, b], lambda x: x)
    with pytest.raises(TypeError):
        _ = a < 0.3
    with pytest.raises(ValueError, match="seed block"):
        SeedLoss(0.1, "training")


def test_same_seeds_rank_and_improve():
    items = [("x", 0.5), ("y", 0.2), ("z", float("nan")), ("w", 0.2)]
    order = ranked(items, lambda it: SeedLoss(it[1], 3), tie=lambda it: it[0])
    assert [name for name, _ in order] == ["w", "y", "x", "z"]  # NaN last, ties by the tie key
    assert lowest([], lambda it: SeedLoss(0, 0)) is None
    assert improvement(SeedLoss(0.4, VALIDATION), SeedLoss(0.3, VALIDATION)) == pytest.approx(0.25)
    assert improvement(SeedLoss(0.0, 0), SeedLoss(0.3, 0)) is None
    assert improvement(None, SeedLoss(0.3, 0)) is None


def test_standing_compares_within_each_block_only():
    losses = [(9.0, 1), (1.0, 2), (8.0, 1), (2.0, 2), (5.0, 3)]
    assert standing(losses, lambda it: SeedLoss(*it)) == [1.0, 0.0, 0.0, 1.0, 0.5]


def _raw_loss_rankings(path: Path) -> list[str]:
    """Calls like min(...), sorted(...), x.sort(...), np.argmin(...) whose arguments name a loss, and
    ordering comparisons (<, <=, >, >=) between two loss expressions."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Compare) and all("loss" in ast.unparse(side).lower()
                                                 for side in [node.left, *node.comparators]) \
                and not all(isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn, ast.Eq, ast.NotEq))
                            for op in node.ops):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:100]}")
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else \
            node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name not in RANKING_CALLS:
            continue
        parts = list(node.args) + [k.value for k in node.keywords]
        if isinstance(node.func, ast.Attribute):
            parts.append(node.func.value)
        text = " ".join(ast.unparse(p) for p in parts)
        if "loss" in text.lower():
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_no_ranking_over_raw_losses_outside_the_paired_module():
    sources = [p for folder in ("prompt_pinning", "prompt_pinning_webui", "scripts")
               for p in sorted((ROOT / folder).rglob("*.py")) if p != API]
    assert sources
    found = [hit for path in sources for hit in _raw_loss_rankings(path)]
    assert found == [], "rank losses through prompt_pinning.run.paired:\n" + "\n".join(found)


def test_the_scan_finds_a_raw_ranking(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("best = min(records, key=lambda r: r.loss)\nxs.sort(key=lambda r: r.val_loss)\n"
                      "k = np.argmin(losses)\nok = min(widths)\nbetter = a.loss < baseline_loss\n"
                      "same = a.loss == b.loss\n")
    sample_root = ROOT  # relative_to needs a path inside ROOT
    copy = sample_root / "tests" / "data" / "_scan_sample.py"
    copy.write_text(sample.read_text())
    try:
        assert len(_raw_loss_rankings(copy)) == 4
    finally:
        copy.unlink()
