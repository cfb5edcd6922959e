"""Atomic writes: the folder is fsynced after the rename, and the process umask is never touched."""
import os
import stat
import subprocess
import sys

from prompt_pinning.run import files


def test_a_durable_write_fsyncs_the_folder_after_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("rename")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    files.write_bytes_atomic(tmp_path / "checkpoint.json", b"{}")
    assert events == ["fsync file", "rename", "fsync folder"]
    events.clear()
    files.write_bytes_atomic(tmp_path / "report.html", b"<p>", durable=False)
    assert events == ["rename"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.json", "report.html"]


def test_importing_and_writing_never_change_the_umask(tmp_path):
    script = f"""
import os
calls = []
real = os.umask
os.umask = lambda mask: calls.append(mask) or real(mask)
real(0o027)
from prompt_pinning.run import files
files.write_bytes_atomic({str(tmp_path / "a.json")!r}, b"1")
files.write_json_atomic({str(tmp_path / "b.json")!r}, [1])
print(calls, oct(os.stat({str(tmp_path / "a.json")!r}).st_mode & 0o777))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(files.__file__))))
    assert out.stdout.split() == ["[]", "0o640"]  # no umask call; 0666 less the umask 027


def test_a_journal_line_survives_short_writes(tmp_path, monkeypatch):
    real_write = os.write

    def short_write(fd, data):  # a write may take fewer bytes than given (a signal, a full pipe)
        return real_write(fd, bytes(data[:5]))

    monkeypatch.setattr(os, "write", short_write)
    files.append_json_line(tmp_path / "log.jsonl", {"text": "a line longer than five bytes"})
    files.append_json_line(tmp_path / "log.jsonl", [1, 2, 3])
    monkeypatch.undo()
    assert (tmp_path / "log.jsonl").read_text() == '{"text": "a line longer than five bytes"}\n[1, 2, 3]\n'


def test_creating_a_journal_fsyncs_its_folder_once(tmp_path, monkeypatch):
    events = []
    real_fsync = os.fsync

    def fsync(fd):
        events.append("folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    files.append_json_line(tmp_path / "log.jsonl", {"a": 1})
    assert events == ["file", "folder"]  # the new name reaches the disk with the line
    events.clear()
    files.append_json_line(tmp_path / "log.jsonl", {"a": 2})
    assert events == ["file"]
