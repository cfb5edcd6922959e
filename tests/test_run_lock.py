"""A run folder is used by one run or resume at a time."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prompt_pinning.run import checkpoint as ckpt
from prompt_pinning.run.lock import LOCK_FILE
from prompt_pinning.run.store import FolderStore
from test_run import FakeRenderer, make_config, resume_pinning, run_pinning

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def stopped(outdir):
    return run_pinning(make_config(outdir), FakeRenderer(), should_stop=lambda: True).run_dir


def test_a_second_resume_in_this_process_is_refused_while_the_first_runs(stopped):
    seen = []

    def while_running():
        if not seen:
            with pytest.raises(ckpt.ResumeError, match=rf"another run or resume .* holds {LOCK_FILE}"):
                resume_pinning(stopped, FakeRenderer())
            seen.append(True)
        return False

    result = resume_pinning(stopped, FakeRenderer(), should_stop=while_running)
    assert seen == [True] and result.stop_reason == "completed"
    assert resume_pinning(stopped, FakeRenderer()).stop_reason == "completed"  # released at the end


def test_a_resume_is_refused_while_another_process_holds_the_folder(stopped):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom prompt_pinning.run.store import FolderStore\n"
         f"store = FolderStore.open({str(stopped)!r})\nprint('locked', flush=True)\ntime.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ckpt.ResumeError, match="another run or resume of this folder is in progress"):
            resume_pinning(stopped, FakeRenderer())
    finally:
        holder.kill()
        holder.wait()
    time.sleep(0.1)
    assert resume_pinning(stopped, FakeRenderer()).stop_reason == "completed"  # the lock died with it


def test_a_refused_resume_releases_the_lock(stopped):
    log = stopped / ckpt.EVALUATIONS_FILE
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("{\n" + "".join(lines[1:]))  # a damaged first line: the journal cannot be replayed
    for _ in range(2):  # the second attempt gets the same refusal, not "in progress"
        with pytest.raises(ckpt.ResumeError, match=ckpt.EVALUATIONS_FILE):
            resume_pinning(stopped, FakeRenderer())
    FolderStore.open(stopped).close()
