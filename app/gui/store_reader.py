"""Reading the run store off the GUI thread.

One :class:`StoreReader` lives on its own QThread with its own sessions (one per
call, as SQLAlchemy wants one per thread). The views ask by calling its request
methods from the GUI thread; answers come back as signals. A request made while the
previous one of the same kind is still running is dropped, so a slow disk never piles
up work behind the 1 s poll.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from PySide6.QtCore import QObject, QThread, Signal, Slot

log = logging.getLogger(__name__)


@dataclass
class RunView:
    """Everything a run page shows, read in one go."""

    detail: Any  # storage.queries.RunDetail
    curves: pd.DataFrame
    maps: dict[str, np.ndarray] | None = None  # None: unchanged since the last read
    extras: dict[str, Any] = field(default_factory=dict)


class _Reader(QObject):
    runs_read = Signal(object)
    run_read = Signal(object)
    failed = Signal(str, str)  # what, message

    def __init__(self, store):
        super().__init__()
        self.store = store
        self.stamp: tuple | None = None  # of the runs table at the last full read

    @Slot(dict)
    def read_runs(self, filters: dict) -> None:
        """List the runs; when nothing changed since the last list, answer None (a
        store of 1,000 runs costs ~100 ms a list, its stamp a few ms)."""
        from storage import queries

        runs = None
        try:
            with self.store.session() as session:
                stamp = (queries.runs_stamp(session), sorted(filters.items()))
                if stamp != self.stamp:
                    runs = queries.list_runs(session, **filters)
                    self.stamp = stamp
        except Exception as exc:  # a locked or damaged store must not kill the thread
            log.warning("reading runs failed: %s", exc)
            self.failed.emit("runs", str(exc))
            self.stamp = None
        self.runs_read.emit(runs)

    @Slot(int, bool)
    def read_run(self, run_id: int, with_maps: bool) -> None:
        from storage import queries

        try:
            with self.store.session() as session:
                detail = queries.get_run(session, run_id)
                curves = queries.run_curves(session, run_id)
                maps = queries.attention_maps(session, run_id) if with_maps else None
            self.run_read.emit(RunView(detail, curves, maps))
        except Exception as exc:  # a deleted run or a busy store: report, go on
            log.warning("reading run %d failed: %s", run_id, exc)
            self.failed.emit(f"run {run_id}", str(exc))
            self.run_read.emit(None)


class StoreReader(QObject):
    """GUI-thread face of the reader thread."""

    runsRead = Signal(object)  # list[RunSummary], or None: unchanged or failed
    runRead = Signal(object)  # RunView | None
    failed = Signal(str, str)
    _runs = Signal(dict)
    _run = Signal(int, bool)

    def __init__(self, store, parent=None):
        super().__init__(parent)
        self.thread = QThread()
        self.thread.setObjectName("store-reader")
        self.reader = _Reader(store)
        self.reader.moveToThread(self.thread)
        self._runs.connect(self.reader.read_runs)
        self._run.connect(self.reader.read_run)
        self.reader.runs_read.connect(self._on_runs)
        self.reader.run_read.connect(self._on_run)
        self.reader.failed.connect(self.failed)
        self.runs_busy = self.run_busy = False
        self.thread.start()

    def request_runs(self, **filters) -> bool:
        if self.runs_busy:
            return False
        self.runs_busy = True
        self._runs.emit(filters)
        return True

    def request_run(self, run_id: int, with_maps: bool = False) -> bool:
        if self.run_busy:
            return False
        self.run_busy = True
        self._run.emit(int(run_id), bool(with_maps))
        return True

    def _on_runs(self, runs) -> None:
        self.runs_busy = False
        self.runsRead.emit(runs)

    def _on_run(self, view) -> None:
        self.run_busy = False
        self.runRead.emit(view)

    def stop(self) -> None:
        self.thread.quit()
        self.thread.wait(5000)
