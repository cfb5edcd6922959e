"""The background report worker: order, flush, failures and closing."""
import threading
import time

import pytest

from prompt_pinning.reports.worker import ReportWorker


def test_jobs_run_in_order_off_the_calling_thread_and_flush_waits():
    worker = ReportWorker()
    done, threads = [], set()

    def job(n):
        time.sleep(0.01)
        threads.add(threading.current_thread().name)
        done.append(n)

    for n in range(5):
        worker.submit(job, n)
    assert worker.flush(timeout=10)
    assert done == [0, 1, 2, 3, 4]
    assert threading.current_thread().name not in threads
    worker.close()


def test_a_failing_job_is_recorded_and_later_jobs_still_run():
    worker = ReportWorker()
    done = []

    def broken():
        raise OSError("disk full")

    worker.submit(broken)
    worker.submit(done.append, "after")
    worker.close()
    assert done == ["after"]
    assert worker.errors == ["broken: OSError: disk full"]
    assert not worker.alive


def test_closed_worker_refuses_jobs_and_close_twice_is_fine():
    worker = ReportWorker()
    worker.close()
    worker.close()
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(print)


def test_flush_timeout_reports_unfinished_work():
    worker = ReportWorker()
    release = threading.Event()
    worker.submit(release.wait)
    assert worker.flush(timeout=0.05) is False
    release.set()
    assert worker.flush(timeout=10) is True
    worker.close()


def test_bad_queue_size_is_named():
    with pytest.raises(ValueError, match="max_pending"):
        ReportWorker(max_pending=0)


def test_thread_worker_skips_a_coalesced_job_that_a_newer_one_replaced():
    worker = ReportWorker()
    release, done = threading.Event(), []
    worker.submit(release.wait)
    for n in range(3):
        worker.submit(done.append, n, coalesce="page")
    release.set()
    worker.close()
    assert done == [2]


def test_process_worker_runs_jobs_coalesces_and_reports_failures(tmp_path):
    from prompt_pinning.reports.files import atomic_write_text
    from prompt_pinning.reports.process_worker import ProcessWorker

    worker = ProcessWorker()
    worker.submit(time.sleep, 0.5)  # keeps the child busy while the next jobs queue up
    for n in range(3):
        worker.submit(atomic_write_text, tmp_path / f"page{n}.txt", str(n), coalesce="page")
    (tmp_path / "file").write_text("x")
    worker.submit(atomic_write_text, tmp_path / "file" / "below.txt", "y")  # a file is not a folder
    worker.submit(atomic_write_text, tmp_path / "after.txt", "z")
    worker.flush()
    assert sorted(p.name for p in tmp_path.glob("page*.txt")) == ["page2.txt"]
    assert (tmp_path / "after.txt").read_text() == "z"
    assert len(worker.errors) == 1 and "atomic_write_text" in worker.errors[0]
    worker.close()
    assert not worker.alive
    with pytest.raises(RuntimeError, match="closed"):
        worker.submit(time.sleep, 0)


@pytest.mark.skipif(not hasattr(__import__("os"), "getpgid"), reason="process groups are POSIX")
def test_a_terminals_ctrl_c_never_reaches_the_report_process_even_while_it_starts():
    import os
    import signal

    from prompt_pinning.reports.process_worker import ProcessWorker

    worker = ProcessWorker()
    try:
        # its own process group: a Ctrl-C sent to the terminal's group (ours) does not reach it,
        # not even before its main() has set SIGINT aside (it is still importing torch then)
        assert os.getpgid(worker._child.pid) != os.getpgid(0)
        worker.submit(time.sleep, 0)
        worker.flush()
        os.kill(worker._child.pid, signal.SIGINT)  # and once running, it ignores one sent to it alone
        worker.submit(time.sleep, 0)
        worker.flush()
        assert worker.alive and not worker.errors
    finally:
        worker.close()
