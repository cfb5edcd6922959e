"""select_rows: cutting full-batch conditioning down to the active rows."""
import pytest
import torch

from hyperbatch import register_row_selector, select_rows, unregister_row_selector


def test_tensors_lists_and_tuples_of_the_batch_are_indexed():
    cond = torch.arange(5 * 2).view(5, 2)
    args = {"cond": cond, "uncond": ["u0", "u1", "u2", "u3", "u4"], "pair": tuple("abcde"),
            "scale": 7.0, "shared": torch.ones(3, 2), "none": None}
    picked = select_rows(args, [0, 3], batch_size=5)
    assert picked["cond"].tolist() == [[0, 1], [6, 7]]
    assert picked["uncond"] == ["u0", "u3"]
    assert picked["pair"] == ("a", "d")
    assert picked["scale"] == 7.0 and picked["none"] is None
    assert picked["shared"] is args["shared"]  # not batch-sized: shared as is
    assert args["uncond"] == ["u0", "u1", "u2", "u3", "u4"] and cond.shape == (5, 2)
    picked["cond"][0, 0] = 99
    assert cond[0, 0] == 0  # a copy, never a view into the caller's tensor


def test_without_batch_size_every_tensor_and_list_is_per_row():
    assert select_rows([1, 2, 3], [2]) == [3]
    assert select_rows(torch.tensor([4, 5]), [1]).tolist() == [5]


class Conditioning:
    """A host type holding per-row items, like A1111's multi-conditioning."""

    def __init__(self, batch):
        self.batch = batch


def test_registered_selector_handles_host_types_and_subclasses():
    class SubConditioning(Conditioning):
        pass

    register_row_selector(Conditioning, lambda value, rows, size: Conditioning([value.batch[r] for r in rows]))
    try:
        original = SubConditioning(["a", "b", "c"])
        picked = select_rows({"cond": original}, [2, 0], batch_size=3)["cond"]
        assert picked.batch == ["c", "a"] and original.batch == ["a", "b", "c"]
    finally:
        unregister_row_selector(Conditioning)
    unchanged = Conditioning(["a"])
    assert select_rows(unchanged, [0]) is unchanged


def test_register_rejects_non_types_and_non_callables():
    with pytest.raises(TypeError, match="kind"):
        register_row_selector("Conditioning", lambda *a: None)
    with pytest.raises(TypeError, match="selector"):
        register_row_selector(Conditioning, None)
