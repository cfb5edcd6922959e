"""The project's one way to write files, and careful readers for files read back.

Writing: ``write_bytes_atomic`` writes a temporary file in the target's folder,
fsyncs it and renames it over the target, so a reader sees the old file or the
new one, never a part (a symlink at the target is replaced, not followed); the
folder is then fsynced, so the order of two writes survives a power cut. The
temporary file is created with mode 0666 less the umask: the process umask is
never changed (it is shared by every thread of the WebUI).
Report files, which are views that a run can draw again, skip the fsync
(``durable=False``): ``benchmarks/bench_files.py`` measured a 50 kB write at
9.0 ms with it and 0.75 ms without (2 shared cores, x86_64, ext4, 2026-11-30),
and a run writes about ten report files per individual.
Every JSON file and JSON line follows one rule (``jsonable``): NaN and the
infinities become ``null``, so any JSON parser (``JSON.parse`` too) reads them.

Reading: a run folder may have been edited, truncated or planted, so files read
back are treated as user input. ``read_json`` and ``read_npz`` cap the size,
never unpickle, and raise ``FileFormatError`` naming the file.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import secrets
import zipfile
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

MAX_JSON_BYTES = 256 * 2**20
MAX_NPZ_BYTES = 4 * 2**30


class FileFormatError(ValueError):
    """A file that cannot be read back as what it should be; the message names it."""

    def __init__(self, path: Path | str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = Path(path)


def _temporary_file(path: Path) -> tuple[int, Path]:
    """A new file beside ``path``, created with mode 0666 less the process umask (no umask call)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path}: no free temporary name beside it")


def sync_folder(folder: Path) -> None:
    """Force a folder's entries (a rename into it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows: folders are not opened; NTFS journals the rename itself
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path | str, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync (when ``durable``) and rename.

    When durable, the folder is fsynced after the rename too, so files written one after the
    other (a checkpoint's arrays, then the checkpoint naming them) reach the disk in that order.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary_file(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise
    if durable:
        sync_folder(path.parent)


def write_text_atomic(path: Path | str, text: str, *, durable: bool = True) -> None:
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


def jsonable(value: Any) -> Any:
    """Plain JSON types for records, arrays and paths; NaN and infinities become None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iub" or (value.dtype.kind == "f" and np.isfinite(value).all()):
            return value.tolist()  # already plain and finite: no need to look at each item
        return jsonable(value.tolist())
    if hasattr(value, "detach") and hasattr(value, "tolist"):  # torch tensors
        return jsonable(value.detach().cpu().tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


def json_text(value: Any, indent: Optional[int] = 1) -> str:
    """``value`` as JSON under the project's rule (NaN and infinities as null)."""
    return json.dumps(jsonable(value), indent=indent, ensure_ascii=False, allow_nan=False)


def write_json_atomic(path: Path | str, value: Any, *, durable: bool = True) -> None:
    """Write ``value`` as indented JSON, atomically."""
    write_text_atomic(path, json_text(value) + "\n", durable=durable)


def append_json_line(path: Path | str, value: Any) -> None:
    """Append ``value`` as one JSON line and force it to disk (never through a symlink)."""
    line = memoryview((json_text(value, indent=None) + "\n").encode("utf-8"))
    flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
    try:  # O_EXCL first: a new log's name must reach the disk too (its folder is fsynced)
        fd, created = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o666), True
    except FileExistsError:
        fd, created = os.open(path, flags), False
    try:
        while line:  # os.write may take fewer bytes than given
            line = line[os.write(fd, line):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        sync_folder(Path(path).parent)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` of plain (non-object) arrays."""
    for name, array in arrays.items():
        if np.asarray(array).dtype.hasobject:
            raise TypeError(f"{name}: object arrays cannot be stored without pickle")
    buffer = io.BytesIO()
    np.savez(buffer, **{name: np.asarray(array) for name, array in arrays.items()})
    return buffer.getvalue()


def write_npz_atomic(path: Path | str, arrays: dict[str, np.ndarray]) -> None:
    write_bytes_atomic(path, npz_bytes(arrays))


def _regular_file(path: Path, limit: int) -> int:
    try:
        return _checked_size(path, limit)
    except OSError as error:
        raise FileFormatError(path, f"cannot be read: {error.strerror or error}") from None


def _checked_size(path: Path, limit: int) -> int:
    if path.is_symlink():
        raise FileFormatError(path, "is a symbolic link; a run folder holds only its own files")
    if not path.is_file():
        raise FileFormatError(path, "is missing")
    size = path.stat().st_size
    if size > limit:
        raise FileFormatError(path, f"is {size} bytes, more than the {limit} this file may have")
    return size


def read_text(path: Path | str, limit: int = MAX_JSON_BYTES) -> str:
    """A UTF-8 text file of at most ``limit`` bytes (not through a symlink), as user input."""
    path = Path(path)
    _regular_file(path, limit)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise FileFormatError(path, f"is not UTF-8 text: {error}") from None
    except OSError as error:
        raise FileFormatError(path, f"cannot be read: {error.strerror or error}") from None


def read_json(path: Path | str, limit: int = MAX_JSON_BYTES) -> Any:
    """A JSON file (NaN and infinities refused), as user input."""
    text = read_text(path, limit)
    try:
        return strict_loads(text)
    except ValueError as error:
        raise FileFormatError(path, f"is not valid JSON (truncated or edited?): {error}") from None


def strict_loads(text: str) -> Any:
    """JSON text to a value; NaN and infinities are refused (ValueError)."""
    return json.loads(text, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


ArrayCheck = Callable[[tuple[int, ...]], bool]


def read_npz(path: Path | str, expected: dict[str, tuple[str, ArrayCheck]],
             limit: int = MAX_NPZ_BYTES, optional: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``, as user input: no pickle, dtype and shape checked first.

    ``expected`` maps each member to (dtype kind letters, shape check); the
    header is checked before any data is read, so a forged shape allocates nothing,
    and members must be stored uncompressed (as ``np.savez`` writes them), so a
    read never holds more than the file itself. Members named in ``optional`` may be absent.
    """
    path = Path(path)
    _regular_file(path, limit)
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            names = {info.filename: info for info in archive.infolist()}
            wanted = {f"{name}.npy" for name in expected}
            if not set(names) <= wanted or wanted - set(names) - {f"{name}.npy" for name in optional}:
                raise FileFormatError(path, f"holds {sorted(names)}, expected {sorted(wanted)}")
            if any(info.compress_type != zipfile.ZIP_STORED for info in names.values()):
                raise FileFormatError(path, "has compressed members; the project writes them stored")
            for name, (kinds, check) in expected.items():
                if f"{name}.npy" not in names:
                    continue
                with archive.open(names[f"{name}.npy"]) as member:
                    out[name] = _read_member(path, name, member, kinds, check, names[f"{name}.npy"].file_size)
    except (zipfile.BadZipFile, EOFError, OSError) as error:
        raise FileFormatError(path, f"is not a readable .npz (truncated?): {error}") from None
    return out


def _read_member(path: Path, name: str, member, kinds: str, check: ArrayCheck, size: int) -> np.ndarray:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(member)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as error:
        raise FileFormatError(path, f"{name}: not an array ({error})") from None
    if dtype.hasobject or dtype.kind not in kinds:
        raise FileFormatError(path, f"{name}: dtype {dtype} is not one of the kinds {kinds!r}")
    if not check(tuple(shape)):
        raise FileFormatError(path, f"{name}: unexpected shape {tuple(shape)}")
    count = int(np.prod(shape, dtype=np.int64))
    if count * dtype.itemsize > size:
        raise FileFormatError(path, f"{name}: truncated ({size} bytes for shape {tuple(shape)})")
    data = member.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise FileFormatError(path, f"{name}: truncated")
    array = np.frombuffer(data, dtype=dtype).copy()
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
