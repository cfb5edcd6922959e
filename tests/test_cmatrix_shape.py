"""cmatrix: its shape is checked against the unit limit before any entry is read."""
import numpy as np
import pytest

from prompt_pinning.config import ConfigError, PinningConfig
from prompt_pinning.prompt.weights import MAX_UNITS


class Row(list):
    """A row that records when its entries are read."""

    reads = 0

    def __iter__(self):
        Row.reads += 1
        return super().__iter__()


@pytest.mark.parametrize("size", [MAX_UNITS + 1, 2000])
def test_an_oversized_cmatrix_is_refused_before_its_entries_are_read(size):
    Row.reads = 0
    rows = [Row([0.0] * size) for _ in range(size)]
    with pytest.raises(ConfigError, match=rf"cmatrix: must be N x N with N at most {MAX_UNITS}.*{size} rows"):
        PinningConfig(positive="cat", cmatrix=rows).validate()
    assert Row.reads == 0


def test_an_oversized_or_misshapen_array_is_refused_by_its_shape():
    with pytest.raises(ConfigError, match=r"cmatrix: .*got shape \(151, 151\)"):
        PinningConfig(positive="cat", cmatrix=np.eye(MAX_UNITS + 1)).validate()
    with pytest.raises(ConfigError, match=r"cmatrix: .*got shape \(2, 2, 2\)"):
        PinningConfig(positive="cat", cmatrix=np.ones((2, 2, 2))).validate()
    assert PinningConfig(positive="cat", cmatrix=np.eye(MAX_UNITS)).validate().cmatrix.shape == (MAX_UNITS, MAX_UNITS)
