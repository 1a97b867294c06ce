"""Long work off the GUI thread: a plain function, a state object, and signals back.

The function receives a :class:`TaskState`; it reports progress with
``state.progress(fraction, text)`` and calls ``state.check()`` between steps, which
raises :class:`Cancelled` once the user asked to stop. It knows nothing of Qt. The
result, the error message or the cancellation comes back on the GUI thread through the
:class:`Task`'s signals (queued across threads by Qt).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.errors import CafeError

log = logging.getLogger(__name__)


class Cancelled(Exception):
    """Raised inside a task by ``state.check()`` after the user cancelled it."""


class TaskState:
    """What a task function may touch: a progress callback and a cancel flag."""

    def __init__(self, report: Callable[[float, str], None]):
        self._report = report
        self._cancel = threading.Event()

    def progress(self, fraction: float, text: str = "") -> None:
        self.check()
        self._report(max(0.0, min(1.0, fraction)), text)

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()


class Task(QObject):
    """One call of ``fn(state, *args)`` on a thread of its own.

    Keep a reference to the Task while it runs; its signals arrive on the thread that
    created it (the GUI thread).
    """

    progress = Signal(float, str)
    done = Signal(object)
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, fn: Callable[..., Any], *args: Any, parent=None):
        super().__init__(parent)
        self.fn, self.args = fn, args
        self.state = TaskState(self.progress.emit)
        self.finished = False

    def start(self) -> Task:
        # a plain Python thread, not QThreadPool + QRunnable.create: a pool thread
        # running a Python callable crashed the process now and then (a segfault inside
        # the task, seen twice in a dozen test-suite runs)
        threading.Thread(target=self._run, name="cafe-task", daemon=True).start()
        return self

    def cancel(self) -> None:
        self.state.cancel()

    def _run(self) -> None:
        try:
            result = self.fn(self.state, *self.args)
            self.state.check()
        except Cancelled:
            self.finished = True
            self.cancelled.emit()
            return
        except CafeError as exc:
            self.finished = True
            self.failed.emit(str(exc))
            return
        except Exception as exc:  # report any failure instead of losing the thread
            log.exception("background task %s failed", getattr(self.fn, "__name__", ""))
            self.finished = True
            self.failed.emit(f"{type(exc).__name__}: {exc}")
            return
        self.finished = True
        self.done.emit(result)
