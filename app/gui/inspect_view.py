"""What a finished run recommends to one user, and why.

Choose a run and a user (type an id, or browse users from best to worst served by the
rank of their held-out item). The view shows the user's history as a timeline of items
coloured by intent, the top-K recommendations with item probability, intent
probability and joint score, where the held-out item ranks, the attention of this one
sequence per layer and head and, for models that predict intents (CaFe, IntentPop), the
next-intent distribution.

Rebuilding a run from its checkpoint and scoring a user happen on a worker thread; one
scoring runs at a time (the attention recorder of a model is not re-entrant) and a
newer request replaces one still waiting.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.gui import dialogs, exports
from app.gui.attention_view import AttentionView
from app.gui.embedding_view import intent_colour
from app.gui.frame_model import FrameModel
from app.gui.run_source import RunSource
from app.gui.tasks import Task, TaskState
from app.gui.theme import muted_foreground
from engine.errors import CafeError
from engine.evaluation import evaluate
from engine.experiment import PreparedRun
from engine.inspect import UserInspection, inspect_user, user_index

log = logging.getLogger(__name__)

ORDERS = {
    "Best served first": ("rank", True),
    "Worst served first": ("rank", False),
    "Longest history first": ("history_len", False),
    "Rarest target first": ("target_train_freq", True),
}
# the top-K table's headers: item probability, intent probability, joint score
TOP_HEADERS = {
    "item_id": "item",
    "intent_name": "intent",
    "item_prob": "P(item)",
    "intent_prob": "P(intent)",
}
TOP_TIPS = {
    "P(item)": "\u03c3 of the item logit: the model's probability, trained with "
    "binary cross-entropy, that the user takes this item next",
    "P(intent)": "CaFe: \u03c3 of the logit of this item's own intent, the "
    "probability, trained with binary cross-entropy, that the next item has this "
    "intent. Each intent is judged on its own, so these do not sum to 1 over "
    "intents; the Next intent tab shows the softmax share of the same logits, which "
    "does. IntentPop: the intent's share of the user's history",
    "score": "what the model ranks by; for CaFe the joint score "
    "log P(item) + log P(intent)",
}
# widest the name column of the top-K table gets, in pixels
NAME_WIDTH = 160
# history items labelled by name or id on the timeline; older ones only by colour
LABELLED = 30


def load_run(state: TaskState, source: RunSource, run_id: int, which: str):
    """Worker-thread part: the run with its weights and its per-user results."""
    state.progress(0.1, "rebuilding the run from its checkpoint")
    run = source.trained(run_id)
    state.check()
    per_user = source.user_results(run_id, which)
    if per_user is None or per_user.empty:
        # runs stored before per-user results were kept: evaluate them again
        state.progress(0.6, "evaluating every user")
        per_user = evaluate(
            run.model, run.split, which, run.train_config.protocol
        ).per_user
    return run_id, which, run, per_user


def score_user(state: TaskState, run: PreparedRun, user: int, which: str, k: int):
    state.progress(0.2, "scoring")
    return inspect_user(run, user, which, k)


def browse_table(run: PreparedRun, per_user: pd.DataFrame, order: str) -> pd.DataFrame:
    """Evaluated users with their ids, sorted as chosen; ties by user id."""
    column, ascending = ORDERS[order]
    metric = next((c for c in per_user.columns if c.startswith("NDCG@")), "MRR")
    table = pd.DataFrame(
        {
            "user id": run.dataset.user_ids[per_user["user"].to_numpy()].astype(str),
            # 1-based, as the summary line and the paper count ranks
            "rank": per_user["rank"].to_numpy() + 1,
            metric: per_user[metric].to_numpy().round(4),
            "length": per_user["history_len"].to_numpy(),
            "target freq": per_user["target_train_freq"].to_numpy(),
            "user": per_user["user"].to_numpy(),
        }
    )
    names = {"history_len": "length", "target_train_freq": "target freq"}
    return table.sort_values(
        [names.get(column, column), "user"],
        ascending=[ascending, True],
        kind="stable",
        ignore_index=True,
    )


class TopItemsModel(FrameModel):
    """The top-K table; the held-out item's row, when it is there, is highlighted."""

    def __init__(self, parent=None):
        super().__init__(None, parent)
        self.target_row = -1

    def data(self, index, role: int = Qt.ItemDataRole.DisplayRole):
        if index.isValid() and index.row() == self.target_row:
            if role == Qt.ItemDataRole.BackgroundRole:
                return QColor(255, 210, 80, 110)
            if role == Qt.ItemDataRole.FontRole:
                font = QFont()
                font.setBold(True)
                return font
        return super().data(index, role)


class UserAttentionView(AttentionView):
    """The runs page's heatmap, titled for one user's sequence."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.caption.setText("Choose a user to see their sequence's attention.")
        self.caption.setWordWrap(True)

    def refresh(self) -> None:
        super().refresh()
        key = self.current_key()
        if key is not None:
            self.plot.getPlotItem().setTitle(
                f"This user's attention: {key}", size="10pt"
            )


class HistoryTimeline(pg.PlotWidget):
    """The user's items in order, coloured by intent, the held-out item at the end."""

    def __init__(self, parent=None):
        super().__init__(parent)
        item = self.getPlotItem()
        item.setTitle("History", size="10pt")
        item.setLabel("bottom", "position in the history (oldest \u2192 newest)")
        item.hideAxis("left")
        item.setMouseEnabled(y=False)
        # bottom left, below the dots, clear of the item names above them
        self.legend = item.addLegend(offset=(10, -5), labelTextSize="8pt", colCount=7)
        self.setMinimumHeight(170)
        self.describe: list[str] = []

    def show_user(self, view: UserInspection, run: PreparedRun) -> None:
        self.clear()
        self.legend.clear()
        ds = run.dataset
        items = np.append(view.history, view.target) if view.target else view.history
        intents = ds.item_intent[items]
        positions = np.arange(len(items))
        self.describe = [_item_text(ds, int(i)) for i in items]

        # the part the model reads (its last n items) is shaded
        if view.read_from > 0:
            region = pg.LinearRegionItem(
                (view.read_from - 0.5, len(view.history) - 0.5), movable=False
            )
            region.setBrush(pg.mkBrush(120, 120, 120, 40))
            self.addItem(region)
        for intent in np.unique(intents):
            chosen = np.flatnonzero(intents == intent)
            chosen = chosen[chosen < len(view.history)]
            if len(chosen) == 0:
                continue
            scatter = pg.ScatterPlotItem(
                x=positions[chosen],
                y=np.zeros(len(chosen)),
                data=chosen,
                size=13,
                pen=pg.mkPen("w", width=0.5),
                brush=intent_colour(int(intent)),
                hoverable=True,
                tip=lambda x, y, data: self.describe[int(data)],
                name=str(ds.intent_names[intent]),
            )
            self.addItem(scatter)
        if view.target:
            self._target(len(view.history), intent_colour(int(intents[-1])), view)
        self._labels(ds, items)
        shown = min(len(items), 60)
        step = max(1, -(-shown // 12))
        self.getPlotItem().getAxis("bottom").setTickSpacing(major=step, minor=step)
        # room on the right for the slanted names of the newest items
        self.setRange(
            xRange=(len(items) - shown - 0.5, len(items) + 2.5), yRange=(-1.1, 1.4)
        )

    def _target(self, x: int, colour: QColor, view: UserInspection) -> None:
        star = pg.ScatterPlotItem(
            x=[x],
            y=[0],
            data=[x],
            symbol="star",
            size=22,
            pen=pg.mkPen("k", width=1.2),
            brush=colour,
            hoverable=True,
            tip=lambda x, y, data: "held out: " + self.describe[int(data)],
        )
        self.addItem(star)
        ranked = f"held out ({view.which}), rank {view.rank + 1} of {view.candidates}"
        text = pg.TextItem(ranked, anchor=(1, -0.4), color="#b05000")
        text.setPos(x, 0)
        self.addItem(text)

    def _labels(self, ds, items: np.ndarray) -> None:
        for x in range(max(0, len(items) - LABELLED), len(items)):
            label = pg.TextItem(
                _short(ds, int(items[x])),
                anchor=(0, 0.5),
                angle=70,
                color=muted_foreground(),
            )
            label.setPos(x, 0.18)
            font = QFont()
            font.setPointSize(7)
            label.setFont(font)
            self.addItem(label)


def _item_text(ds, item: int) -> str:
    name = f" \u00b7 {ds.item_names[item]}" if ds.item_names is not None else ""
    intent = ds.intent_names[ds.item_intent[item]]
    return f"item {ds.item_ids[item]}{name} \u00b7 intent {intent}"


def _short(ds, item: int) -> str:
    if ds.item_names is not None:
        name = str(ds.item_names[item])
        return name if len(name) <= 18 else name[:17] + "\u2026"
    return str(ds.item_ids[item])


class IntentBars(pg.PlotWidget):
    """The predicted next-intent distribution, most likely first; the held-out item's
    intent in its own colour."""

    SHOWN = 12

    def __init__(self, parent=None):
        super().__init__(parent)
        item = self.getPlotItem()
        item.setTitle("Predicted next intent", size="10pt")
        item.setLabel("bottom", "share (softmax of the intent logits)")
        item.invertY(True)
        item.setMouseEnabled(x=False, y=False)
        item.getAxis("bottom").enableAutoSIPrefix(False)
        self.setMinimumHeight(160)

    def show_distribution(self, table: pd.DataFrame | None, target_intent: int) -> None:
        self.clear()
        axis = self.getPlotItem().getAxis("left")
        if table is None:
            axis.setTicks([[]])
            self.getPlotItem().setTitle(
                "This model does not predict intents", size="10pt"
            )
            return
        self.getPlotItem().setTitle("Predicted next intent", size="10pt")
        shown = table.head(self.SHOWN)
        rows = np.arange(len(shown))
        brushes = [
            pg.mkBrush("#D55E00" if intent == target_intent else "#0072B2")
            for intent in shown["intent"]
        ]
        bars = pg.BarGraphItem(
            x0=0, y=rows, height=0.7, width=shown["probability"].to_numpy(),
            brushes=brushes, pen=None,
        )  # fmt: skip
        self.addItem(bars)
        axis.setTicks([list(zip(rows, shown["intent_name"].astype(str)))])
        self.setRange(
            xRange=(0, max(0.05, float(shown["probability"].max()) * 1.05)),
            yRange=(-0.6, len(shown) - 0.4),
            padding=0,
        )


class InspectView(QWidget):
    """Run and user pickers on top; users on the left; history, recommendations,
    attention and next intent on the right."""

    runLoaded = Signal(int)
    inspected = Signal(object)  # UserInspection
    failed = Signal(str)

    def __init__(self, source: RunSource, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self.run: PreparedRun | None = None
        self.run_id: int | None = None
        self.per_user: pd.DataFrame | None = None
        self.users: pd.DataFrame | None = None
        self.current: UserInspection | None = None
        self.load_task: Task | None = None
        self.score_task: Task | None = None
        self.pending: int | None = None
        self._build()
        self.refresh_runs()

    # ---- layout

    def _build(self) -> None:
        self.run_box = QComboBox()
        self.run_box.setMinimumWidth(200)
        self.which_box = QComboBox()
        self.which_box.addItem("test item", "test")
        self.which_box.addItem("validation item", "valid")
        self.user_edit = QLineEdit()
        self.user_edit.setPlaceholderText("user id")
        self.user_edit.setMaximumWidth(140)
        self.show_button = QPushButton("Show user")
        self.k_spin = QSpinBox(minimum=1, maximum=200, value=10)
        self.k_spin.setPrefix("top ")
        self.status = QLabel("")
        self.status.setWordWrap(True)

        self.order_box = QComboBox()
        self.order_box.addItems(list(ORDERS))
        self.users_model = FrameModel()
        self.users_table = self._table(self.users_model)

        self.summary = QLabel("Choose a run, then a user.")
        self.summary.setWordWrap(True)
        self.summary.setTextFormat(Qt.TextFormat.RichText)
        self.timeline = HistoryTimeline()
        self.top_model = TopItemsModel()
        self.top_model.header_tips = TOP_TIPS
        self.top_table = self._table(self.top_model)
        self.top_table.setMinimumWidth(320)
        self.attention = UserAttentionView()
        self.intents = IntentBars()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.attention, "Attention")
        self.tabs.addTab(self.intents, "Next intent")
        self.export_button = exports.export_button(self, self._exports())

        bar = QHBoxLayout()
        for label, widget in (
            ("Run", self.run_box),
            ("Held out", self.which_box),
            ("User", self.user_edit),
        ):
            bar.addWidget(QLabel(label))
            bar.addWidget(widget)
        bar.addWidget(self.show_button)
        bar.addWidget(self.k_spin)
        bar.addWidget(self.status, 1)
        bar.addWidget(self.export_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.order_box)
        left_layout.addWidget(self.users_table, 1)
        left.setMinimumWidth(230)

        # one line per recommendation: long names are elided, never wrapped
        self.top_table.setWordWrap(False)
        lower = QSplitter(Qt.Orientation.Horizontal)
        lower.addWidget(self.top_table)
        lower.addWidget(self.tabs)
        lower.setStretchFactor(0, 4)
        lower.setStretchFactor(1, 3)
        # the table's every column in view at 1280 pixels; the heatmap takes the rest
        lower.setSizes([560, 400])
        right = QSplitter(Qt.Orientation.Vertical)
        header = QWidget()
        header_layout = QVBoxLayout(header)
        header_layout.setContentsMargins(0, 0, 0, 0)
        header_layout.addWidget(self.summary)
        header_layout.addWidget(self.timeline, 1)
        right.addWidget(header)
        right.addWidget(lower)
        right.setStretchFactor(0, 2)
        right.setStretchFactor(1, 3)
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(left)
        body.addWidget(right)
        body.setStretchFactor(0, 1)
        body.setStretchFactor(1, 3)
        # the users' columns in view at 1280 pixels; narrower windows squeeze them
        body.setSizes([320, 960])

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(body, 1)

        self.run_box.currentIndexChanged.connect(self._run_chosen)
        self.which_box.currentIndexChanged.connect(self._run_chosen)
        self.show_button.clicked.connect(self._user_typed)
        self.user_edit.returnPressed.connect(self._user_typed)
        self.k_spin.valueChanged.connect(self._rescore)
        self.order_box.currentIndexChanged.connect(self._fill_users)
        self.users_table.selectionModel().currentRowChanged.connect(self._user_picked)

    def _table(self, model) -> QTableView:
        table = QTableView()
        table.setModel(model)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setStretchLastSection(True)
        table.setAlternatingRowColors(True)
        return table

    # ---- the run

    def refresh_runs(self) -> None:
        current = self.run_box.currentData()
        self.run_box.blockSignals(True)
        self.run_box.clear()
        for choice in self.source.finished_runs():
            self.run_box.addItem(choice.label, choice.id)
        index = self.run_box.findData(current)
        self.run_box.setCurrentIndex(index)
        self.run_box.blockSignals(False)

    def select_run(self, run_id: int) -> None:
        """Show a run (e.g. from the runs table's "Inspect")."""
        if self.run_box.findData(run_id) < 0:
            self.refresh_runs()
        index = self.run_box.findData(run_id)
        if index < 0:
            self._say(f"Run #{run_id} is not a finished run.")
            return
        if index == self.run_box.currentIndex() and self.run_id != run_id:
            self._run_chosen()
        self.run_box.setCurrentIndex(index)

    def _run_chosen(self) -> None:
        run_id = self.run_box.currentData()
        if run_id is None or self.load_task is not None:
            return
        which = self.which_box.currentData()
        self.run, self.run_id, self.current = None, None, None
        self.pending = None  # a user of the previous run
        self._say("Loading the run\u2026")
        task = Task(load_run, self.source, run_id, which)
        task.progress.connect(lambda _f, text: self._say(text + "\u2026"))
        task.done.connect(self._run_loaded)
        task.failed.connect(self._failed)
        self.load_task = task.start()

    def _run_loaded(self, result) -> None:
        run_id, which, run, per_user = result
        self.load_task = None
        if (run_id, which) != (
            self.run_box.currentData(),
            self.which_box.currentData(),
        ):
            self._run_chosen()  # the choice changed while loading
            return
        self.run, self.run_id, self.per_user = run, run_id, per_user
        self._say(
            f"{len(per_user)} evaluated users of {run.dataset.num_users} "
            f"({run.train_config.protocol} protocol)."
        )
        self._fill_users()
        self.runLoaded.emit(run_id)

    def _fill_users(self) -> None:
        if self.run is None or self.per_user is None:
            return
        self.users = browse_table(self.run, self.per_user, self.order_box.currentText())
        self.users_model.set_frame(self.users.drop(columns=["user"]))
        self.users_table.resizeColumnsToContents()

    # ---- the user

    def _user_typed(self) -> None:
        if self.run is None:
            return
        try:
            user = user_index(self.run.dataset, self.user_edit.text())
        except CafeError as exc:
            self._say(str(exc), problem=True)
            return
        self.inspect(user)

    def _user_picked(self, current, _previous) -> None:
        if self.users is not None and current.isValid():
            self.inspect(int(self.users["user"].iloc[current.row()]))

    def _rescore(self) -> None:
        if self.current is not None:
            self.inspect(self.current.user)

    def inspect(self, user: int) -> None:
        """Score ``user`` (dataset index) off the GUI thread, one at a time."""
        if self.run is None:
            return
        if self.score_task is not None:
            self.pending = user
            return
        which = self.which_box.currentData()
        run = self.run
        task = Task(score_user, run, user, which, self.k_spin.value())
        task.done.connect(lambda view: self._scored(view, run))
        task.failed.connect(self._failed)
        self.score_task = task.start()

    def _scored(self, view: UserInspection, run: PreparedRun) -> None:
        self.score_task = None
        if self.pending is not None:
            user, self.pending = self.pending, None
            self.inspect(user)
            return
        if run is not self.run:
            return  # another run was chosen while this user was scored
        self.current = view
        self.user_edit.setText(view.user_id)
        self._show(view)
        self.inspected.emit(view)

    def _show(self, view: UserInspection) -> None:
        run = self.run
        self.summary.setText(self._summary_text(view, run))
        self.timeline.show_user(view, run)
        top = view.top.drop(columns=["item", "intent"]).rename(columns=TOP_HEADERS)
        if run.dataset.item_names is None:
            top = top.drop(columns=["name"])
        self.top_model.target_row = (
            int(np.flatnonzero(view.top["item"] == view.target)[0])
            if view.target in set(view.top["item"])
            else -1
        )
        self.top_model.set_frame(top.round(4))
        self.top_table.resizeColumnsToContents()
        if "name" in top.columns:
            # long titles are elided so the probabilities stay in view
            column = list(top.columns).index("name")
            width = min(self.top_table.columnWidth(column), NAME_WIDTH)
            self.top_table.setColumnWidth(column, width)
        maps = {
            f"{name} head {head + 1}": weights[head]
            for name, weights in view.attention.items()
            for head in range(weights.shape[0])
        }
        self.attention.positions.setValue(max(2, min(len(view.history), 50)))
        self.attention.set_maps(maps)
        target_intent = int(run.dataset.item_intent[view.target]) if view.target else 0
        self.intents.show_distribution(view.intent_distribution, target_intent)

    def _summary_text(self, view: UserInspection, run: PreparedRun) -> str:
        ds = run.dataset
        text = (
            f"<b>User {view.user_id}</b> \u00b7 {len(view.history)} items before "
            f"the {view.which} target"
        )
        if view.read_from:
            text += f" (the model reads the last {len(view.history) - view.read_from})"
        if view.target:
            rank = view.rank + 1
            where = (
                f"<b>ranks {rank} of {view.candidates}</b> "
                f"({run.train_config.protocol} protocol), {view.full_rank + 1} among "
                f"all {ds.num_items} items"
            )
            shown = (
                " \u2014 in the top-K below"
                if view.target in set(view.top["item"])
                else ""
            )
            text += f"<br>Held-out {_item_text(ds, view.target)} {where}{shown}."
        else:
            text += "<br>Too short to have a held-out item: recommendations only."
        return text

    def _failed(self, message: str) -> None:
        self.load_task = None
        self.score_task = None
        self.pending = None
        self._say(message, problem=True)
        self.failed.emit(message)

    def _say(self, text: str, problem: bool = False) -> None:
        self.status.setStyleSheet("color: #c03000;" if problem else "")
        self.status.setText(text)

    # ---- export

    def _exports(self) -> dict:
        entries = {
            "Top-K table as CSV\u2026": lambda: self._export_frame(
                None if self.current is None else self.current.top, "top-k"
            ),
            "Per-user results as CSV/Parquet\u2026": self._export_results,
        }
        for label, stem, plot in (
            ("History plot", "history", lambda: self.timeline),
            ("Attention plot", "user-attention", lambda: self.attention.plot),
            ("Next-intent plot", "next-intent", lambda: self.intents),
        ):
            entries[f"{label} as PNG/SVG\u2026"] = lambda stem=stem, plot=plot: (
                self._export_plot(plot(), stem)
            )
        return entries

    def _record(self, what: str):
        """What tells the run store of a file exported from this run."""
        run_id = self.run_id
        return lambda path: self.source.record_export([run_id], what, path)

    def _export_plot(self, plot, stem: str) -> None:
        if self.run_id is None:
            dialogs.show_error(self, "Export", "Choose a run first.")
            return
        name = f"run-{self.run_id}-{stem}"
        exports.save_plot(self, plot, name, record=self._record(stem))

    def _export_frame(self, frame: pd.DataFrame | None, stem: str) -> None:
        if frame is None:
            dialogs.show_error(self, "Export", "Inspect a user first.")
            return
        name = f"run-{self.run_id}-{stem}"
        exports.save_table(self, frame, name, record=self._record(stem))

    def _export_results(self) -> None:
        if self.per_user is None:
            dialogs.show_error(self, "Export", "Choose a run first.")
            return
        path = exports.ask_path(
            self,
            "Export per-user results",
            exports.RESULTS_FILTER,
            f"run-{self.run_id}-per-user.csv",
        )
        frame = self.per_user
        if path is not None and exports.run_export(
            self,
            "Export per-user results",
            lambda: exports.export_user_results(frame, path),
        ):
            self._record("per-user-results")(path)


def main() -> int:
    """Show the view alone on synthetic data with an untrained model."""
    from PySide6.QtWidgets import QApplication

    from app.gui.run_source import FakeSource
    from app.gui.theme import Theme

    app = QApplication.instance() or QApplication([])
    Theme(app, "light")
    view = InspectView(FakeSource())
    view.resize(1280, 800)
    view.show()
    view.select_run(1)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
