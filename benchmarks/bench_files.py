"""Cost of the fsync in the project's atomic writer (``prompt_pinning.run.files``).

Prints the mean time of ``write_bytes_atomic`` with ``durable=True`` (run files)
and ``durable=False`` (report files) for files of a given size, written into a
temporary folder on the file system of ``--dir``.

usage: python benchmarks/bench_files.py [--size 50000] [--count 200] [--dir /tmp]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from prompt_pinning.run.files import write_bytes_atomic


def mean_ms(folder: Path, data: bytes, count: int, durable: bool) -> float:
    started = time.perf_counter()
    for i in range(count):
        write_bytes_atomic(folder / f"file{i % 20}.bin", data, durable=durable)
    return (time.perf_counter() - started) / count * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=50_000, help="bytes per file")
    parser.add_argument("--count", type=int, default=200, help="writes per variant")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where to write")
    args = parser.parse_args()
    data = os.urandom(args.size)
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        durable = mean_ms(Path(folder), data, args.count, durable=True)
        plain = mean_ms(Path(folder), data, args.count, durable=False)
    print(f"atomic write of {args.size} bytes, mean of {args.count}: "
          f"{durable:.2f} ms with fsync, {plain:.2f} ms without")


if __name__ == "__main__":
    main()
