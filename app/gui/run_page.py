"""One run's page: progress with ETA, live curves, attention maps, config and log.

The page shows what it is given: :meth:`RunPage.show_view` takes a
:class:`~app.gui.store_reader.RunView` read from the store (the runs panel polls it),
and :meth:`RunPage.on_event` takes the worker's own events for a finer progress bar
between epochs. Curves are created once per series and refreshed with ``setData``.
Actions are signals carrying the run id; the runs panel carries them out.

Run alone: ``python -m app.gui.run_page`` shows a made-up run.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pandas as pd
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui.attention_view import AttentionView
from app.gui.plots import add_curve, make_plot, outside_legend
from app.progress import format_seconds

ACTIVE = ("queued", "running")
RESUMABLE = ("cancelled", "interrupted", "failed")


def epochs_done(d) -> float:
    """Completed epochs plus the share of the current one the worker last reported
    to the store (so a run started from the shell moves too, not only per epoch)."""
    position = float(d.epochs)
    if d.status == "running" and d.batches and d.batch:
        position += min(d.batch / d.batches, 1.0)
    return position


def seconds_per_epoch(d) -> float | None:
    """Seconds an epoch takes, validation included: from the recorded epochs, or
    within the first epoch from the batches done since the run started."""
    if d.epochs and d.seconds:
        return d.seconds / d.epochs
    if d.batches and d.batch and d.started is not None and d.heartbeat is not None:
        elapsed = (d.heartbeat - d.started).total_seconds()
        if elapsed > 0:
            return elapsed * d.batches / d.batch
    return None


def run_config(d) -> dict:
    """The Config tab: the run's spec, and once a worker has started it, where and
    with what it ran (host, device, library versions, torch threads)."""
    config = dict(d.spec)
    if d.host or d.versions:
        config["environment"] = {"host": d.host, "device": d.device, **d.versions}
    return config


class RunPage(QWidget):
    cancelRequested = Signal(int)
    resumeRequested = Signal(int)
    cloneRequested = Signal(int)
    deleteRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.run_id: int | None = None
        self.detail = None
        self.batch_progress: tuple[float, float] | None = None  # (fraction, when)
        self.curves: pd.DataFrame | None = None  # what the curves show, for export
        self.loss_curves: dict[str, object] = {}
        self.metric_curves: dict[str, object] = {}
        self._build()
        self.clear()

    def _build(self) -> None:
        self.title = QLabel()
        self.title.setObjectName("runTitle")
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel()
        self.subtitle.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setObjectName("runProgress")
        self.progress.setRange(0, 1000)
        self.eta = QLabel()
        self.buttons = {}
        actions = QHBoxLayout()
        for name, signal, tip in (
            ("Cancel", self.cancelRequested, "Stop the run; it saves a checkpoint."),
            ("Resume", self.resumeRequested, "Continue from the last checkpoint."),
            ("Clone", self.cloneRequested, "Open its settings in the Train page."),
            ("Delete", self.deleteRequested, "Delete the run and its files."),
        ):
            button = QPushButton(name)
            button.setObjectName(name.lower())
            button.setToolTip(tip)
            button.clicked.connect(lambda _=False, s=signal: self._emit(s))
            actions.addWidget(button)
            self.buttons[name.lower()] = button
        head = QHBoxLayout()
        text = QVBoxLayout()
        text.addWidget(self.title)
        text.addWidget(self.subtitle)
        head.addLayout(text, 1)
        head.addLayout(actions)
        bar = QHBoxLayout()
        bar.addWidget(self.progress, 1)
        bar.addWidget(self.eta)

        # curves: training losses and validation metrics per epoch
        self.loss_plot = make_plot(
            "Training loss", "epoch", "loss (BCE, mean per batch)", whole_x=True
        )
        self.metric_plot = make_plot(
            "Validation", "epoch", "metric value", whole_x=True
        )
        # names in a row above each plot, never over a curve
        self.loss_legend = outside_legend(self.loss_plot, "top", columns=4)
        self.metric_legend = outside_legend(self.metric_plot, "top", columns=5)
        curves = QSplitter(Qt.Orientation.Horizontal)
        curves.addWidget(self.loss_plot)
        curves.addWidget(self.metric_plot)

        self.attention = AttentionView()
        mono = QFont("monospace")
        mono.setStyleHint(QFont.StyleHint.Monospace)
        self.config_text = QPlainTextEdit(readOnly=True)
        self.config_text.setFont(mono)
        self.log_text = QPlainTextEdit(readOnly=True)
        self.log_text.setObjectName("log")
        self.log_text.setFont(mono)
        self.log_text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.tabs = QTabWidget()
        self.tabs.addTab(curves, "Curves")
        self.tabs.addTab(self.attention, "Attention")
        self.tabs.addTab(self.config_text, "Config")
        self.tabs.addTab(self.log_text, "Log")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addLayout(bar)
        layout.addWidget(self.tabs, 1)

    def _emit(self, signal) -> None:
        if self.run_id is not None:
            signal.emit(self.run_id)

    # ---- content

    def clear(self) -> None:
        self.run_id, self.detail, self.batch_progress = None, None, None
        self.curves = None
        self.title.setText("No run selected")
        self.subtitle.setText("Select a run in the table above.")
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.eta.clear()
        for curve in [*self.loss_curves.values(), *self.metric_curves.values()]:
            curve.setData([], [])
        self.attention.set_maps({})
        self.config_text.clear()
        self.log_text.clear()
        for button in self.buttons.values():
            button.setEnabled(False)

    def set_run(self, run_id: int | None) -> None:
        if run_id != self.run_id:
            self.clear()
            self.run_id = run_id
            if run_id is not None:
                self.title.setText(f"Run {run_id}")
                self.subtitle.setText("reading…")

    def show_view(self, view) -> None:
        detail = view.detail
        if detail.id != self.run_id:
            return
        self.detail = detail
        self._header(detail)
        self._progress(detail)
        self._curves(view.curves)
        if view.maps is not None:
            self.attention.set_maps(view.maps)
        config = json.dumps(run_config(detail), indent=2)
        if self.config_text.toPlainText() != config:
            self.config_text.setPlainText(config)
        if self.log_text.toPlainText() != detail.log:
            self.log_text.setPlainText(detail.log)
            scroll = self.log_text.verticalScrollBar()
            scroll.setValue(scroll.maximum())
        self.buttons["cancel"].setEnabled(detail.status in ACTIVE)
        self.buttons["resume"].setEnabled(detail.status in RESUMABLE)
        self.buttons["clone"].setEnabled(True)
        self.buttons["delete"].setEnabled(detail.status not in ACTIVE)

    def _header(self, d) -> None:
        self.title.setText(f"Run {d.id}: {d.model} on {d.dataset} — {d.status}")
        parts = [
            f"{d.protocol} protocol",
            f"seed {d.seed}",
            f"device {d.device or 'not yet chosen'}",
        ]
        if d.best_epoch:
            parts.append(f"best epoch {d.best_epoch}")
        if d.test:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in list(d.test.items())[:5])
            parts.append(f"test {shown}")
        if d.error and d.status != "finished":
            parts.append(d.error.strip().splitlines()[-1][:200])
        self.subtitle.setText(" · ".join(parts))

    def _progress(self, d) -> None:
        position = epochs_done(d)
        fraction = min(position / max(d.max_epochs, 1), 1.0)
        if d.status == "running" and self.batch_progress is not None:
            fraction = max(fraction, self.batch_progress[0])
        if d.status == "finished":
            fraction = 1.0
        self.progress.setValue(int(fraction * 1000))
        text = f"epoch {d.epochs}/{d.max_epochs}"
        if d.status == "running" and d.batches and d.batch:
            text = f"epoch {d.epochs + 1}/{d.max_epochs}, batch {d.batch}/{d.batches}"
        self.progress.setFormat(f"{text}  ({fraction:.0%})")
        pace = seconds_per_epoch(d)
        if d.status == "running" and pace is not None:
            remaining = pace * max(d.max_epochs - position, 0.0)
            # patience may stop the run earlier, hence "at most"
            eta = format_seconds(remaining)
            self.eta.setText(f"ETA ≤ {eta}  ({pace:.1f}s/epoch)")
        elif d.status == "running":
            self.eta.setText("first epoch…")
        elif d.seconds:
            self.eta.setText(f"took {format_seconds(d.seconds)} ({d.status})")
        else:
            self.eta.setText(d.status)

    def on_event(self, run_id: int, event: dict) -> None:
        """A worker event: batch progress moves the bar between store polls."""
        if run_id != self.run_id or event.get("event") != "batch":
            return
        epochs = max((self.detail.max_epochs if self.detail else 0) or 1, 1)
        done = event["epoch"] - 1 + event["batch"] / max(event["batches"], 1)
        self.batch_progress = (done / epochs, time.monotonic())
        self.progress.setValue(int(min(done / epochs, 1.0) * 1000))
        # a loss that is not a number comes as null (JSON has no NaN)
        loss = event.get("loss")
        self.progress.setFormat(
            f"epoch {event['epoch']}/{epochs}, batch {event['batch']}/"
            f"{event['batches']}  loss "
            + (f"{loss:.4f}" if isinstance(loss, int | float) else "not a number")
        )

    def _curves(self, curves: pd.DataFrame) -> None:
        if curves is None or curves.empty:
            return
        self.curves = curves
        train = curves[(curves["split"] == "train") & (curves["name"] != "seconds")]
        for index, (name, rows) in enumerate(train.groupby("name", sort=True)):
            curve = self.loss_curves.get(name)
            if curve is None:
                # with a dot per epoch, so that the first epoch's loss shows too
                curve = add_curve(self.loss_plot, index, name, symbols=True)
                self.loss_legend.addItem(curve, name)
                self.loss_curves[name] = curve
            curve.setData(rows["epoch"].to_numpy(float), rows["value"].to_numpy(float))
        valid = curves[(curves["split"] == "valid") & (curves["name"] != "seconds")]
        for index, (name, rows) in enumerate(valid.groupby("name", sort=True)):
            curve = self.metric_curves.get(name)
            if curve is None:
                curve = add_curve(self.metric_plot, index, name, symbols=True)
                self.metric_legend.addItem(curve, name)
                self.metric_curves[name] = curve
            curve.setData(rows["epoch"].to_numpy(float), rows["value"].to_numpy(float))

    def points(self) -> dict[str, int]:
        """Number of points per curve (tests check curves are drawn)."""
        found = {}
        for name, curve in {**self.loss_curves, **self.metric_curves}.items():
            x, _ = curve.getData()
            found[name] = 0 if x is None else len(x)
        return found


def main() -> int:
    import sys
    from datetime import datetime

    from PySide6.QtWidgets import QApplication

    from app.gui.store_reader import RunView
    from storage.queries import RunDetail

    app = QApplication(sys.argv)
    epochs = np.arange(1, 21)
    rows = [(e, "train", "loss", 1.3 * np.exp(-e / 8) + 0.2) for e in epochs]
    rows += [(e, "valid", "NDCG@5", 0.3 * (1 - np.exp(-e / 6))) for e in epochs]
    rows += [(e, "valid", "HR@10", 0.5 * (1 - np.exp(-e / 6))) for e in epochs]
    detail = RunDetail(
        id=1,
        model="cafe",
        dataset="ciao",
        dataset_id=1,
        status="running",
        seed=0,
        protocol="sampled",
        device="cpu",
        created=datetime.now(),
        started=datetime.now(),
        finished=None,
        seconds=40.0,
        epochs=20,
        max_epochs=50,
        best_epoch=20,
        spec={"model": "cafe"},
        log="epoch 20 NDCG@5 0.29",
    )
    page = RunPage()
    page.set_run(1)
    curves = pd.DataFrame(rows, columns=["epoch", "split", "name", "value"])
    page.show_view(RunView(detail, curves, {}))
    page.resize(1000, 600)
    page.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
