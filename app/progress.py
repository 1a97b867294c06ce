"""Training progress on stderr: a live bar with ETA on a terminal, one line per epoch
with the estimated time left else (a log file, a pipe, the workbench's worker)."""

from __future__ import annotations

import sys
import time

from engine.training import BatchDone, EpochDone, Finished, Started, Validated


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressPrinter:
    """Consumes trainer events and draws progress; quiet prints nothing."""

    def __init__(self, metric: str, stream=None, quiet: bool = False, width: int = 24):
        self.metric = metric
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.width = width
        self.started = time.perf_counter()
        self.epochs = 0
        self.start_epoch = 0
        self.batches = 1
        self.done_steps = 0
        self.first_step = 0
        self.last_draw = 0.0
        self.best = ""

    def __call__(self, event) -> None:
        if self.quiet:
            return
        if isinstance(event, Started):
            self.epochs, self.batches = event.epochs, max(event.batches_per_epoch, 1)
            self.first_step = event.start_epoch * self.batches
            self.start_epoch = event.start_epoch
            self.started = time.perf_counter()
            self._line(
                f"training on {event.device}: {event.parameters:,} parameters, "
                f"{event.batches_per_epoch} batches per epoch, up to {event.epochs} "
                "epochs"
            )
        elif isinstance(event, BatchDone):
            self.done_steps = (event.epoch - 1) * self.batches + event.batch
            if self.live and time.perf_counter() - self.last_draw > 0.2:
                self._draw(event)
        elif isinstance(event, EpochDone):
            losses = " ".join(f"{k} {v:.4f}" for k, v in event.losses.items())
            self._line(
                f"epoch {event.epoch}/{self.epochs}  {losses}  ({event.seconds:.1f}s)"
                f"{self._time_left(event.epoch)}"
            )
        elif isinstance(event, Validated):
            mark = " *" if event.improved else ""
            self.best = (
                f"best {self.metric} {event.best_value:.4f} @ {event.best_epoch}"
            )
            self._line(
                f"  valid {self.metric} {event.metrics[self.metric]:.4f}{mark}  "
                f"({self.best})"
            )
        elif isinstance(event, Finished):
            result = event.result
            self._line(
                f"finished ({result.stop_reason}) after {result.epochs_trained} "
                "epochs in "
                f"{format_seconds(result.seconds)}; best epoch {result.best_epoch}"
            )

    def _time_left(self, epoch: int) -> str:
        """The remaining epochs at this session's pace so far (validation included):
        an upper bound, since patience may stop the run before the last epoch."""
        done, left = epoch - self.start_epoch, self.epochs - epoch
        if done <= 0 or left <= 0:
            return ""
        pace = (time.perf_counter() - self.started) / done
        return (
            f"  ETA <= {format_seconds(pace * left)} "
            f"({left} epochs left; patience may stop sooner)"
        )

    def _draw(self, event: BatchDone) -> None:
        self.last_draw = time.perf_counter()
        total = self.epochs * self.batches
        done = self.done_steps - self.first_step
        rate = done / max(self.last_draw - self.started, 1e-9)
        remaining = (total - self.done_steps) / rate if rate > 0 else 0.0
        filled = int(self.width * event.batch / event.batches)
        bar = "#" * filled + "-" * (self.width - filled)
        text = (
            f"\repoch {event.epoch}/{self.epochs} [{bar}] "
            f"{event.batch}/{event.batches} "
            f"loss {event.loss:.4f}  ETA <= {format_seconds(remaining)}  {self.best}"
        )
        self.stream.write(text[:160].ljust(100))
        self.stream.flush()

    def _line(self, text: str) -> None:
        if self.live:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()
