"""Item embeddings of a run in two dimensions, coloured by intent (the CaFe paper's
Figure 2c/d).

The projection's parameters are set first; "Project" computes it on a worker thread
with progress and cancel, and the result is kept per run and parameters, in memory and
in the run's folder, so switching back is instant and a projection once computed is
there again in the next session. The frequency filter keeps, per intent, the most or
least trained-on items: the paper shows that CaFe's embeddings of infrequent items
still cluster by intent where SASRec's do not. Hovering a point names the item.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui import dialogs, exports
from app.gui.plots import outside_legend
from app.gui.run_source import RunSource
from app.gui.tasks import Cancelled, Task, TaskState
from app.gui.theme import category_colour
from engine.errors import CafeError
from engine.experiment import PreparedRun
from engine.inspect import ProjectionParams, frequency_filter, project

log = logging.getLogger(__name__)

FILTERS = {
    "All items": "all",
    "Most frequent per intent": "frequent",
    "Least frequent per intent": "infrequent",
}


def intent_colour(index: int) -> QColor:
    """Colour of intent ``index`` (1-based) among ``count``: the colour-blind-safe
    series while they last, then clearly different colours (the same intent keeps
    its colour in every view)."""
    return category_colour(index - 1)


@dataclass
class EmbeddingData:
    """A run's item embeddings and what to say about each item."""

    embeddings: np.ndarray  # (V+1, D), row 0 is padding
    # V+1 rows: item, item_id, name, intent, intent_name, train_count
    labels: pd.DataFrame


def embedding_data(run: PreparedRun) -> EmbeddingData:
    weights = run.model.item_embeddings()
    if weights is None:
        raise CafeError(
            f"A {run.spec.model} model has no item embeddings to project; "
            "choose a SASRec or CaFe run."
        )
    ds = run.dataset
    labels = pd.DataFrame(
        {
            "item": np.arange(ds.num_items + 1),
            "item_id": ds.item_ids.astype(str),
            "name": ds.item_names.astype(str) if ds.item_names is not None else "",
            "intent": ds.item_intent,
            "intent_name": ds.intent_names[ds.item_intent].astype(str),
            "train_count": run.split.train_counts(),
        }
    )
    return EmbeddingData(weights.detach().float().cpu().numpy(), labels)


def compute_projection(
    state: TaskState,
    source: RunSource,
    run_id: int,
    params: ProjectionParams,
    known: EmbeddingData | None,
):
    """Worker-thread part: rebuild the run if needed, then project items 1..V."""
    state.progress(0.0, "loading the run")
    data = known or embedding_data(source.trained(run_id))
    cache = projection_cache(source, run_id, params)
    stamp = embedding_stamp(data.embeddings)
    kept = read_projection(cache, stamp, len(data.labels) - 1)
    if kept is not None:
        return run_id, params.key(), data, kept
    state.progress(0.05, f"{params.method.upper()} of {len(data.labels) - 1} items")

    def report(fraction: float) -> None:
        state.progress(0.05 + 0.95 * fraction, f"{params.method.upper()}")

    try:
        coords = project(data.embeddings[1:], params, lambda: state.cancelled, report)
    except InterruptedError:
        raise Cancelled() from None
    write_projection(cache, stamp, coords)
    return run_id, params.key(), data, coords


# ---- projections kept on disk, per run and parameters


def projection_cache(source: RunSource, run_id: int, params: ProjectionParams):
    """The file a run's projection with these parameters is kept in, or None."""
    folder = source.cache_dir(run_id)
    if folder is None:
        return None
    parts = [f"{p:g}" if isinstance(p, float) else str(p) for p in params.key()]
    return folder / ("_".join(parts) + ".npz")


def embedding_stamp(embeddings: np.ndarray) -> str:
    """A fingerprint of the embeddings a projection was computed from."""
    return hashlib.sha1(np.ascontiguousarray(embeddings).tobytes()).hexdigest()


def read_projection(path, stamp: str, items: int) -> np.ndarray | None:
    """The kept projection of the same embeddings, or None (none, stale, unreadable)."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as kept:
            coords, kept_stamp = kept["coords"], str(kept["stamp"])
    except (OSError, ValueError, KeyError) as exc:
        log.warning("ignoring the unreadable projection %s (%s)", path, exc)
        return None
    if kept_stamp != stamp or coords.shape != (items, 2):
        return None
    return coords


def write_projection(path, stamp: str, coords: np.ndarray) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npz")
        np.savez(partial, coords=coords, stamp=np.array(stamp))
        partial.replace(path)
    except OSError as exc:  # a cache: the projection is shown all the same
        log.warning("could not keep the projection in %s (%s)", path, exc)


class EmbeddingView(QWidget):
    """Run and projection settings on top, the scatter plot below."""

    computed = Signal(int)  # run id, once a projection is shown
    failed = Signal(str)

    def __init__(self, source: RunSource, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self.task: Task | None = None
        self.data: dict[int, EmbeddingData] = {}
        self.projections: dict[tuple, np.ndarray] = {}
        self.shown: tuple[int, tuple] | None = None
        self._build()
        self.refresh_runs()

    # ---- layout

    def _build(self) -> None:
        self.run_box = QComboBox()
        self.run_box.setMinimumWidth(200)
        self.method_box = QComboBox()
        self.method_box.addItem("t-SNE", "tsne")
        self.method_box.addItem("PCA", "pca")
        self.perplexity = QDoubleSpinBox(minimum=2.0, maximum=100.0, value=30.0)
        self.perplexity.setToolTip("t-SNE perplexity: roughly the neighbours per point")
        self.iterations = QSpinBox(
            minimum=250, maximum=5000, value=1000, singleStep=250
        )
        self.iterations.setToolTip("t-SNE iterations, in steps of 250")
        self.seed = QSpinBox(minimum=0, maximum=99999, value=0)
        self.project_button = QPushButton("Project")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.progress.setFormat("")

        self.filter_box = QComboBox()
        for label, mode in FILTERS.items():
            self.filter_box.addItem(label, mode)
        self.share = QSpinBox(minimum=1, maximum=100, value=20, suffix=" %")
        self.share.setToolTip("Share of each intent's items kept by the filter")
        self.count_label = QLabel("")
        self.export_button = exports.export_button(
            self,
            {
                "Plot as PNG/SVG\u2026": self._export_plot,
                "Embeddings as .npy + CSV labels\u2026": self._export_embeddings,
            },
        )

        settings = QHBoxLayout()
        for label, widget in (
            ("Run", self.run_box),
            ("Method", self.method_box),
            ("Perplexity", self.perplexity),
            ("Iterations", self.iterations),
            ("Seed", self.seed),
        ):
            settings.addWidget(QLabel(label))
            settings.addWidget(widget)
        settings.addWidget(self.project_button)
        settings.addWidget(self.cancel_button)
        settings.addWidget(self.progress, 1)
        shown = QHBoxLayout()
        shown.addWidget(QLabel("Show"))
        shown.addWidget(self.filter_box)
        shown.addWidget(self.share)
        shown.addWidget(self.count_label, 1)
        shown.addWidget(self.export_button)

        self.plot = pg.PlotWidget()
        self.plot.setLabel("bottom", "dimension 1")
        self.plot.setLabel("left", "dimension 2")
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        for axis in ("left", "bottom"):
            self.plot.getAxis(axis).enableAutoSIPrefix(False)
        self.legend = outside_legend(self.plot, "right")
        self.hover_label = QLabel("Hover a point to see its item.")
        self.hover_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )

        layout = QVBoxLayout(self)
        layout.addLayout(settings)
        layout.addLayout(shown)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.hover_label)

        self.project_button.clicked.connect(self.compute)
        self.cancel_button.clicked.connect(self.cancel)
        self.method_box.currentIndexChanged.connect(self._method_changed)
        self.filter_box.currentIndexChanged.connect(self._redraw)
        self.share.valueChanged.connect(self._redraw)
        self.run_box.currentIndexChanged.connect(self._show_cached)

    # ---- choosing

    def refresh_runs(self) -> None:
        current = self.run_box.currentData()
        self.run_box.blockSignals(True)
        self.run_box.clear()
        for choice in self.source.finished_runs():
            self.run_box.addItem(choice.label, choice.id)
        index = self.run_box.findData(current)
        self.run_box.setCurrentIndex(max(index, 0))
        self.run_box.blockSignals(False)

    def show_run(self, run_id: int) -> None:
        """Select a run (e.g. from the runs table) and show its cached projection."""
        index = self.run_box.findData(run_id)
        if index < 0:
            self.refresh_runs()
            index = self.run_box.findData(run_id)
        if index >= 0:
            self.run_box.setCurrentIndex(index)

    def params(self) -> ProjectionParams:
        return ProjectionParams(
            method=self.method_box.currentData(),
            perplexity=self.perplexity.value(),
            iterations=self.iterations.value(),
            seed=self.seed.value(),
        )

    def _method_changed(self) -> None:
        tsne = self.method_box.currentData() == "tsne"
        self.perplexity.setEnabled(tsne)
        self.iterations.setEnabled(tsne)
        self._show_cached()

    # ---- computing

    def compute(self) -> None:
        run_id = self.run_box.currentData()
        if run_id is None or self.task is not None:
            return
        params = self.params()
        if (run_id, params.key()) in self.projections:
            self._show(run_id, params.key())
            return
        task = Task(
            compute_projection, self.source, run_id, params, self.data.get(run_id)
        )
        task.progress.connect(self._progress)
        task.done.connect(self._done)
        task.failed.connect(self._failed)
        task.cancelled.connect(self._cancelled)
        self.task = task.start()
        self._busy(True)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.progress.setFormat("cancelling\u2026")

    def _busy(self, busy: bool) -> None:
        self.project_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if busy:
            self.progress.setValue(0)

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"{text} %p%")

    def _done(self, result) -> None:
        run_id, key, data, coords = result
        self.task = None
        self._busy(False)
        self.progress.setFormat("done")
        self.data[run_id] = data
        self.projections[(run_id, key)] = coords
        # the run or the settings may have changed while it was computed
        self._show_cached()

    def _failed(self, message: str) -> None:
        self.task = None
        self._busy(False)
        self.progress.setFormat("failed")
        self.failed.emit(message)
        dialogs.show_error(self, "Projecting item embeddings", message)

    def _cancelled(self) -> None:
        self.task = None
        self._busy(False)
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")

    # ---- drawing

    def _show_cached(self) -> None:
        run_id = self.run_box.currentData()
        key = self.params().key()
        if (run_id, key) in self.projections:
            self._show(run_id, key)
        elif self.shown is not None:
            # never leave another run's (or another method's) points under this title
            self.shown = None
            self._redraw()

    def _show(self, run_id: int, key: tuple) -> None:
        self.shown = (run_id, key)
        self._redraw()
        self.computed.emit(run_id)

    def visible_items(self) -> np.ndarray:
        """Item indices (1..V) the filter keeps for the shown run."""
        if self.shown is None:
            return np.zeros(0, dtype=np.int64)
        labels = self.data[self.shown[0]].labels
        keep = frequency_filter(
            labels["intent"].to_numpy(),
            labels["train_count"].to_numpy(),
            self.filter_box.currentData(),
            self.share.value() / 100.0,
        )
        return np.flatnonzero(keep)

    def _redraw(self) -> None:
        self.plot.clear()
        self.legend.clear()
        if self.shown is None:
            self.plot.setTitle("Not projected yet: choose the settings, then Project")
            self.count_label.setText("")
            return
        run_id, key = self.shown
        labels = self.data[run_id].labels
        coords = self.projections[(run_id, key)]  # (V, 2) for items 1..V
        items = self.visible_items()
        intents = labels["intent"].to_numpy()
        names = labels["intent_name"].to_numpy()
        for intent in np.unique(intents[items]):
            chosen = items[intents[items] == intent]
            colour = intent_colour(int(intent))
            scatter = pg.ScatterPlotItem(
                pos=coords[chosen - 1],
                data=chosen,
                size=6,
                pen=None,
                brush=pg.mkBrush(colour),
                hoverable=True,
                hoverSize=11,
                hoverPen=pg.mkPen("k"),
                tip=self._tip,
                name=str(names[chosen[0]]),
            )
            scatter.sigHovered.connect(self._hovered)
            self.plot.addItem(scatter)
            self.legend.addItem(scatter, scatter.name())
        method = (
            f"t-SNE (perplexity {key[1]:g}, {key[2]} iterations, seed {key[3]})"
            if key[0] == "tsne"
            else "PCA"
        )
        run_label = self.run_box.itemText(self.run_box.findData(run_id))
        self.plot.setTitle(f"{run_label} \u2014 {method} of item embeddings")
        self.count_label.setText(f"{len(items)} of {len(coords)} items shown")

    def _describe(self, item: int) -> str:
        row = self.data[self.shown[0]].labels.iloc[int(item)]
        name = f" \u00b7 {row['name']}" if row["name"] else ""
        return (
            f"item {row['item_id']}{name} \u00b7 intent {row['intent_name']} \u00b7 "
            f"{row['train_count']} training interactions"
        )

    def _tip(self, x: float, y: float, data) -> str:
        return self._describe(int(data))

    def _hovered(self, _item, points, _event) -> None:
        if len(points):
            self.hover_label.setText(self._describe(int(points[0].data())))

    # ---- export

    def _export_embeddings(self) -> None:
        run_id = self.run_box.currentData()
        if run_id not in self.data:
            dialogs.show_error(
                self, "Export embeddings", "Project the run's embeddings first."
            )
            return
        data = self.data[run_id]
        labels = data.labels.iloc[1:].reset_index(drop=True)
        shown = self.shown
        if shown is not None and shown[0] == run_id:
            coords = self.projections[shown]
            labels = labels.assign(x=coords[:, 0], y=coords[:, 1])
        path = exports.ask_path(
            self,
            "Export embeddings",
            exports.EMBEDDING_FILTER,
            f"run-{run_id}-item-embeddings.npy",
        )
        if path is not None and exports.run_export(
            self,
            "Export embeddings",
            lambda: exports.export_embeddings(data.embeddings[1:], labels, path),
        ):
            self.source.record_export([run_id], "embeddings", path)
            self.source.record_export(
                [run_id], "embedding-labels", path.with_suffix(".csv")
            )

    def _export_plot(self) -> None:
        if self.shown is None:
            dialogs.show_error(self, "Export plot", "Project a run's embeddings first.")
            return
        run_id = self.shown[0]
        exports.save_plot(
            self,
            self.plot,
            f"run-{run_id}-item-embeddings",
            record=lambda path: self.source.record_export(
                [run_id], "embedding-plot", path
            ),
        )


def main() -> int:
    """Show the view alone on synthetic data with an untrained model."""
    from PySide6.QtWidgets import QApplication

    from app.gui.run_source import FakeSource
    from app.gui.theme import Theme

    app = QApplication.instance() or QApplication([])
    Theme(app, "light")
    view = EmbeddingView(FakeSource())
    view.resize(1280, 800)
    view.show()
    view.method_box.setCurrentIndex(1)
    view.compute()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
