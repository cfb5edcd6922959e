"""Report jobs in a separate, low-priority Python process.

Drawing plots and encoding images holds the interpreter lock much of the time; in
a thread that would slow the run's own Python work. A child process has its own lock and, being niced, only
takes CPU time the run leaves idle. Jobs are module-level functions with plain
arguments (no torch objects), sent as pickles over the child's stdin. A job may
carry a ``coalesce`` key: a queued job is skipped when a newer one with the same
key is already waiting.

Run the child with ``python -m prompt_pinning.reports.process_worker``.
"""
from __future__ import annotations

import collections
import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import Any, BinaryIO, Callable, Optional

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")
NICENESS = 10


def write_frame(stream: BinaryIO, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_frame(stream: BinaryIO) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("report worker pipe closed")
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("report worker pipe closed")
    return pickle.loads(data)


class WorkerDied(RuntimeError):
    """The child process is gone; ``pending`` holds the jobs it may not have run."""

    def __init__(self, message: str, pending: list[tuple]):
        super().__init__(message)
        self.pending = pending


class ProcessWorker:
    """Same interface as ``worker.ReportWorker``; the jobs run in a child process.

    The child confirms each job as it finishes it. Jobs not yet confirmed are kept, so
    if the child dies they can be run elsewhere (see ``WorkerDied``).
    """

    def __init__(self) -> None:
        # The folder holding prompt_pinning/ goes first: a host (the WebUI) may have
        # put it on sys.path only while loading scripts.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        paths = [package_root, *(p for p in sys.path if p and p != package_root)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths))
        # A session of its own: a terminal's Ctrl-C is the parent's to handle, and must not reach
        # the child even while it is still importing (before main() can ignore it); the child
        # ends when the parent closes its stdin.
        self._child = subprocess.Popen(
            [sys.executable, "-m", "prompt_pinning.reports.process_worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True,
            start_new_session=os.name == "posix")
        self._send_lock = threading.Lock()
        self._state = threading.Condition()
        self._unconfirmed: collections.deque = collections.deque()  # (sequence number, job)
        self._sequence = 0
        self._last_ack = 0
        self._dead: Optional[BaseException] = None
        self._closed = False
        self.errors: list[str] = []
        self.busy_seconds = 0.0
        self._reader = threading.Thread(target=self._read_replies, name="report-process-replies", daemon=True)
        self._reader.start()

    def submit(self, job: Callable[..., Any], *args: Any, coalesce: Optional[str] = None, **kwargs: Any) -> None:
        if self._closed:
            raise RuntimeError("ProcessWorker.submit: the worker is closed")
        with self._send_lock:
            self._sequence += 1
            with self._state:
                self._unconfirmed.append((self._sequence, (job, args, kwargs, coalesce)))
            self._send(("job", self._sequence, job, args, kwargs, coalesce))

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until the child has run every job sent so far (``timeout`` is not supported)."""
        with self._send_lock:
            self._sequence += 1
            token = self._sequence
            self._send(("flush", token))
        self._await_ack(token)
        return True

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._send_lock:
            self._sequence += 1
            token = self._sequence
            self._send(("close", token))
        self._await_ack(token)
        self._child.stdin.close()
        self._child.wait()
        self._reader.join()
        self._child.stdout.close()

    def abandon(self) -> None:
        """Stop the child now, its queued jobs dropped (the command line after Ctrl-C)."""
        self._closed = True
        self._child.kill()
        self._child.wait()
        self._reader.join()

    @property
    def alive(self) -> bool:
        return self._child.poll() is None

    @property
    def pid(self) -> int:
        return self._child.pid

    def _send(self, message: tuple) -> None:
        try:
            write_frame(self._child.stdin, message)
        except (OSError, ValueError) as error:  # broken pipe, or the pipe is closed
            self._died(error)

    def _await_ack(self, token: int) -> None:
        with self._state:
            while self._last_ack < token and self._dead is None:
                self._state.wait()
            if self._last_ack < token:
                self._died(self._dead)

    def _died(self, error: BaseException) -> None:
        self._closed = True
        self._child.kill()
        self._child.wait()
        with self._state:
            pending = [job for _, job in self._unconfirmed]
            self._unconfirmed.clear()
        raise WorkerDied(f"report process stopped: {error}", pending) from error

    def _read_replies(self) -> None:
        while True:
            try:
                kind, sequence, errors, busy = read_frame(self._child.stdout)
            except (EOFError, OSError, ValueError) as error:
                with self._state:
                    self._dead = error
                    self._state.notify_all()
                return
            with self._state:
                while self._unconfirmed and self._unconfirmed[0][0] <= sequence:
                    self._unconfirmed.popleft()
                self.errors.extend(errors)
                self.busy_seconds = busy
                if kind == "ack":
                    self._last_ack = sequence
                    self._state.notify_all()


class _Inbox:
    """Frames from the parent, read on a thread so the parent never waits on a full pipe."""

    def __init__(self, stream: BinaryIO):
        self.items: collections.deque = collections.deque()
        self.ready = threading.Condition()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: BinaryIO) -> None:
        while True:
            try:
                item = read_frame(stream)
            except EOFError:
                item = ("close", None)
            except Exception as error:  # a job that cannot be unpickled; the stream stays in step
                item = ("bad", None, f"{type(error).__name__}: {error}")
            with self.ready:
                self.items.append(item)
                self.ready.notify()
            if item[0] == "close":
                return

    def next(self) -> tuple:
        with self.ready:
            while not self.items:
                self.ready.wait()
            item = self.items.popleft()
            key = item[5] if item[0] == "job" else None
            if key is not None and any(i[0] == "job" and i[5] == key for i in self.items):
                return ("skip", item[1])  # a newer job with the same key is waiting
            return item


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the parent's to handle
    try:
        os.nice(NICENESS)  # only idle CPU time: the run comes first
    except (AttributeError, OSError):  # no nice() on Windows
        pass
    logging.basicConfig(level=logging.WARNING, format="prompt-pinning reports: %(levelname)s %(message)s")
    inbox, out = _Inbox(sys.stdin.buffer), sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames may reach the parent's pipe
    busy = 0.0
    while True:
        item = inbox.next()
        kind, sequence = item[0], item[1]
        errors: list[str] = []
        if kind == "job":
            _, _, job, args, kwargs, _ = item
            started = time.perf_counter()
            try:
                job(*args, **kwargs)
            except Exception as error:
                name = getattr(job, "__name__", repr(job))
                logger.exception("report job %s failed", name)
                errors.append(f"{name}: {type(error).__name__}: {error}")
            busy += time.perf_counter() - started
        elif kind == "bad":
            logger.error("report job could not be read: %s", item[2])
            errors.append(f"unreadable job: {item[2]}")
        if sequence is not None:
            write_frame(out, ("ack" if kind in ("flush", "close") else "done", sequence, errors, busy))
        if kind == "close":
            return


if __name__ == "__main__":
    main()
