"""Runs waiting for a worker: at most ``limit`` train at once, the rest wait their turn.

Launching three seeds on a two-core machine should not start three workers that
fight for the cores (oversubscribed torch threads ran three times slower here): the
queue starts runs while fewer than ``limit`` workers of this window are training and
starts the next one whenever a worker ends. A waiting run is "queued" in the store, so
the runs table shows it; withdrawing it (cancel) leaves it cancelled and resumable.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from PySide6.QtCore import QObject, QTimer, Signal

log = logging.getLogger(__name__)


def default_limit(threads: int) -> int:
    """As many workers as the cores hold at ``threads`` torch threads each."""
    return max(1, (os.cpu_count() or 1) // max(1, threads))


@dataclass(frozen=True)
class Waiting:
    run_id: int
    resume: bool = False


class RunQueue(QObject):
    """Starts waiting runs through ``jobs`` (a :class:`~app.gui.jobs.WorkerJobs`)."""

    changed = Signal()  # the waiting list or the running set changed
    failed = Signal(int, str)  # run id, why its worker could not start

    def __init__(self, jobs, limit: int | None = None, parent=None):
        super().__init__(parent)
        self.jobs = jobs
        self.limit = limit if limit is not None else default_limit(jobs.threads)
        self.waiting: list[Waiting] = []
        jobs.exited.connect(lambda *_: self.fill())
        jobs.event.connect(self._on_event)
        # a worker that recorded its end frees its slot before its process exits
        self.timer = QTimer(self, interval=1000)
        self.timer.timeout.connect(self.fill)
        self.timer.start()

    def submit(self, run_id: int, resume: bool = False) -> bool:
        """Queue a run; returns whether its worker started at once."""
        if self.jobs.is_running(run_id) or self.is_waiting(run_id):
            return self.jobs.is_running(run_id)
        self.waiting.append(Waiting(run_id, resume))
        self.fill()
        return self.jobs.is_running(run_id)

    def withdraw(self, run_id: int) -> bool:
        """Take a run that has not started off the queue; returns whether it was
        waiting."""
        kept = [w for w in self.waiting if w.run_id != run_id]
        withdrawn = len(kept) != len(self.waiting)
        self.waiting = kept
        if withdrawn:
            self.changed.emit()
        return withdrawn

    def is_waiting(self, run_id: int) -> bool:
        return any(w.run_id == run_id for w in self.waiting)

    def waiting_ids(self) -> list[int]:
        return [w.run_id for w in self.waiting]

    def set_limit(self, limit: int) -> None:
        self.limit = max(1, int(limit))
        self.fill()

    def fill(self) -> None:
        """Start waiting runs while slots are free."""
        started = False
        while self.waiting and len(self.jobs.running()) < self.limit:
            waiting = self.waiting.pop(0)
            try:
                self.jobs.launch(waiting.run_id, resume=waiting.resume)
                started = True
            except OSError as exc:
                log.warning("run %d: worker did not start: %s", waiting.run_id, exc)
                self.failed.emit(waiting.run_id, str(exc))
        if started:
            self.changed.emit()

    def _on_event(self, _run_id: int, event: dict) -> None:
        if event.get("event") == "finished":
            # the slot is free once the run has recorded its end
            QTimer.singleShot(0, self.fill)
