"""The command line's reports: cut short by Ctrl-C, finished later with ``report RUN_DIR``.

After Ctrl-C the command line does not wait for the plots and maps still queued:
``StoppableReports`` writes ``final_result.json`` at once, drops the queue and
marks the report unfinished. ``python -m prompt_pinning report RUN_DIR`` draws it
from the run folder (the journal is replayed; nothing is rendered or changed).
"""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

from .reports.files import dump_json
from .reports.process_worker import ProcessWorker
from .reports.writer import FINAL_JSON, ReportWriter, final_summary
from .run.files import read_json

PROG = "prompt-pinning report"


class StoppableReports(ReportWriter):
    """A ReportWriter whose ``on_finish`` returns at once once ``stop`` is set (the user stopped the run)."""

    def __init__(self):
        super().__init__()
        self.stop = threading.Event()
        self.unfinished = False

    def on_finish(self, result) -> None:
        if not self.stop.is_set() or self.run_dir is None:
            super().on_finish(result)
            return
        worker, self._worker = self._worker, None
        if isinstance(worker, ProcessWorker):
            worker.abandon()  # a thread worker is a daemon: it ends with the process
        if worker is not None:
            self.errors.extend(worker.errors)
        dump_json(self.run_dir / FINAL_JSON, final_summary(self.run_dir, result, self.errors))
        self.unfinished = True


def redraw(run_dir: Path) -> Path:
    """Draw the whole report of a run folder made by the command line's built-in model; its index.html."""
    from .builtin import BuiltinRenderer
    from .run.builders import Builders
    from .run.setup import resumed_run

    writer = ReportWriter()
    run = resumed_run(run_dir, BuiltinRenderer(), Builders(), writer, None, None)  # checks the folder; renders nothing
    try:
        state = read_json(Path(run_dir) / "run_state.json")
        state = state if isinstance(state, dict) else {}
        writer.on_run_start(run.run_dir, run.config_dict(), run.units())
        writer.on_finish(run.result(str(state.get("stop_reason") or "interrupted")))
        draw_missing_plots(run.run_dir)
    finally:
        run.journal.store.close()
    return Path(run.run_dir) / "index.html"


def draw_missing_plots(run_dir: Path) -> int:
    """Per-individual and per-generation plots that a stopped run left undrawn; how many were drawn."""
    import numpy as np

    from .reports.generation import GENERATION_PLOT, write_generation_plot
    from .reports.individual import BATCH_STATS, LOSS_PLOT, SUMMARY_GIF, write_loss_plot, write_summary_gif

    drawn = 0
    for generation_folder in sorted(p for p in Path(run_dir).iterdir() if p.is_dir() and p.name.isdigit()):
        image_losses, losses = [], []
        for stats_file in sorted(generation_folder.glob(f"*/{BATCH_STATS}")):
            stats, folder = read_json(stats_file), stats_file.parent
            if not isinstance(stats, dict):
                continue
            pairs = np.asarray(stats.get("pair_losses") or [], dtype=np.float64).ravel()
            loss = float(stats.get("loss", float("nan")))
            image_losses.append(np.asarray((stats.get("extra") or {}).get("image_losses", pairs), dtype=np.float64))
            losses.append(loss)
            if not (folder / LOSS_PLOT).exists():
                title = f"generation {stats.get('generation')}, individual {stats.get('index')} ({folder.name})"
                write_loss_plot(folder, pairs, loss, title)
                drawn += 1
            names = [n for n in stats.get("images") or [] if isinstance(n, str) and (folder / n).is_file()]
            if names and not (folder / SUMMARY_GIF).exists():
                write_summary_gif(folder, names)
                drawn += 1
        if losses and not (generation_folder / GENERATION_PLOT).exists():
            write_generation_plot(generation_folder, int(generation_folder.name), image_losses, losses)
            drawn += 1
    return drawn


def report_main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="Draw (or finish) the report of a run folder: "
                                     "plots, maps and index.html, from the files the run kept.")
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run folder (.../prompt_pins/<run>)")
    args = parser.parse_args(argv)
    try:
        index = redraw(args.run_dir)
    except (ValueError, OSError) as error:
        sys.stderr.write(f"{PROG}: error: {error}\n")
        return 2
    sys.stdout.write(f"report: {index}\n")
    return 0
