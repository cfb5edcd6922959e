"""A background thread that runs report jobs (plots, GIFs, pages) in submission order.

The run hands jobs over and goes on; ``flush`` waits until every job handed over
so far has finished. A failing job is logged and remembered, and later jobs still run.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

_STOP = object()


class ReportWorker:
    def __init__(self, max_pending: int = 512, name: str = "prompt-pinning-reports"):
        if max_pending < 1:
            raise ValueError(f"max_pending: must be >= 1, got {max_pending!r}")
        self._jobs: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._closed = False
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        self.errors: list[str] = []
        self.busy_seconds = 0.0  # time spent running jobs, for benchmarks
        self._thread.start()

    def submit(self, job: Callable[..., Any], *args: Any, coalesce: Optional[str] = None, **kwargs: Any) -> None:
        """Queue ``job(*args, **kwargs)``; blocks only when ``max_pending`` jobs are waiting.

        Jobs with the same ``coalesce`` key replace each other: one that has not started
        when a newer one arrives is skipped.
        """
        if self._closed:
            raise RuntimeError("ReportWorker.submit: the worker is closed")
        token = None
        if coalesce is not None:
            with self._lock:
                token = self._latest[coalesce] = self._latest.get(coalesce, 0) + 1
        self._jobs.put((job, args, kwargs, coalesce, token))

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait for every job submitted so far; False if ``timeout`` seconds passed first."""
        if timeout is None:
            self._jobs.join()
            return True
        done = threading.Event()
        waiter = threading.Thread(target=lambda: (self._jobs.join(), done.set()), daemon=True)
        waiter.start()
        return done.wait(timeout)

    def close(self) -> None:
        """Finish every queued job, then stop the thread. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._jobs.put(_STOP)
        self._thread.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            try:
                if item is _STOP:
                    return
                job, args, kwargs, key, token = item
                if key is not None and token != self._latest.get(key):
                    continue  # a newer job with the same key is queued
                started = time.perf_counter()
                try:
                    job(*args, **kwargs)
                except Exception as error:  # a report must not stop the others
                    name = getattr(job, "__name__", repr(job))
                    logger.exception("report job %s failed", name)
                    self.errors.append(f"{name}: {type(error).__name__}: {error}")
                finally:
                    self.busy_seconds += time.perf_counter() - started
            finally:
                self._jobs.task_done()
