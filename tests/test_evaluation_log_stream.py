"""evaluations.jsonl is read line by line: a large legitimate log resumes, in bounded memory."""
import json
import tracemalloc

import numpy as np
import pytest

from prompt_pinning.run import evaluation_log
from prompt_pinning.run.evaluation_log import EVALUATIONS_FILE, read_evaluations
from prompt_pinning.run.checks import ResumeError
from prompt_pinning.run.rundir import individual_id

PAIRS = (64 + 64) * 127 // 2  # batch 64 against 64 targets: 8,128 pair losses per evaluation


def entry(index, rng):
    offsets = rng.normal(size=12).tolist()
    return {"generation": 1 + index // 20, "index": index % 20, "id": individual_id(np.array(offsets)),
            "folder": None, "offsets": offsets, "positive": "cat", "negative": "", "seeds": list(range(64)),
            "loss": 0.5, "pair_losses": rng.random(PAIRS).tolist(), "size": 0.0, "render_seconds": 1.0,
            "loss_seconds": 1.0, "extra": {}}


@pytest.fixture(scope="module")
def large_log(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    with open(run_dir / EVALUATIONS_FILE, "w") as handle:
        for index in range(120):
            handle.write(json.dumps(entry(index, rng)) + "\n")
        handle.write('{"generation": 7, "ind')  # a torn last line: skipped
    return run_dir


def test_a_large_log_is_read_in_less_memory_than_its_size(large_log):
    size = (large_log / EVALUATIONS_FILE).stat().st_size
    tracemalloc.start()
    try:
        entries = read_evaluations(large_log, compact=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(entries) == 120 and size > 16 * 2**20
    assert peak < 0.75 * size, f"peak {peak / 2**20:.0f} MiB reading a {size / 2**20:.0f} MiB log"
    assert isinstance(entries[0]["pair_losses"], np.ndarray) and entries[0]["pair_losses"].shape == (PAIRS,)
    assert read_evaluations(large_log)[5]["pair_losses"] == entries[5]["pair_losses"].tolist()


def test_there_is_no_cap_on_the_whole_log_only_on_one_line(large_log, monkeypatch):
    monkeypatch.setattr(evaluation_log, "MAX_LINE_BYTES", 2**20)  # far below the log, above each line
    assert len(read_evaluations(large_log)) == 120
    monkeypatch.setattr(evaluation_log, "MAX_LINE_BYTES", 2**16)
    with pytest.raises(ResumeError, match=rf"{EVALUATIONS_FILE}, line 1: longer than 65536 bytes"):
        read_evaluations(large_log)


def test_a_bad_line_is_still_named(tmp_path):
    (tmp_path / EVALUATIONS_FILE).write_bytes(b'{"generation": 0}\n\xff\xfe\n')
    with pytest.raises(ResumeError, match="line 1: missing"):
        read_evaluations(tmp_path)
    (tmp_path / EVALUATIONS_FILE).write_bytes(b'\xff\xfe\n')
    with pytest.raises(ResumeError, match="line 1: not UTF-8"):
        read_evaluations(tmp_path)
