"""One process at a time in a run folder: an exclusive lock on ``run.lock``.

A new run takes the lock as soon as its folder exists, a resume before it reads
anything; both hold it until the run ends (``release``). A second run or resume
of the same folder, in this process or another, is refused with a
``ResumeError`` instead of writing the same files at once. The lock is the
operating system's (``flock``; ``msvcrt.locking`` on Windows), so a process
that dies releases it; the empty file stays in the folder.
"""
from __future__ import annotations

import os
from pathlib import Path

from .checks import ResumeError

LOCK_FILE = "run.lock"


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


class RunLock:
    """Held from construction until ``release``; a ResumeError if another holds it."""

    def __init__(self, run_dir: Path | str):
        path = Path(run_dir) / LOCK_FILE
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            self._fd = os.open(path, flags, 0o666)
        except OSError as error:
            raise ResumeError(f"{path}: cannot be opened to lock the run: {error.strerror or error}") from None
        if not _try_lock(self._fd):
            os.close(self._fd)
            self._fd = -1
            raise ResumeError(f"{Path(run_dir)}: another run or resume of this folder is in progress (it holds "
                              f"{LOCK_FILE}); wait until it ends or stop it, then resume again")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the file releases the lock
            self._fd = -1
