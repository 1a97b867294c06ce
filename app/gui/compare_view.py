"""Selected runs side by side: the CaFe paper's Table 2, curves, bars, and where a model
gains.

Runs of one configuration (same model, settings, data and protocol; seeds aside) form
one column, shown as mean ± std over their seeds. The table is ``engine.reporting``'s
Table 2, so the command line's comparison and this view agree to the digit: best of
each row in bold, CaFe's improvement over the best non-CaFe column in %. Below it:
each run's validation curve, one colour per run; a bar per metric and configuration;
and NDCG@5 broken down by how often the held-out item was trained on and by history
length, from the stored per-user results. A warning names any difference in dataset
version or protocol among the selected runs, because their numbers do not compare.

The Table selector switches to the paper's Table 3: the selected CaFe runs in rows by
which of the four ablation switches they have on (``engine.reporting.ablation_step``,
the names the ``compare --ablation`` command writes), SASRec as the backbone, and every
row's change over the first.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence

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
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui import dialogs, exports
from app.gui.plots import make_plot
from app.gui.run_source import Comparison, RunSource
from app.gui.tasks import Task, TaskState
from app.gui.theme import (
    category_colour,
    muted_foreground,
    palette_is_dark,
    plot_foreground,
)
from engine import reporting
from engine.inspect import FREQUENCY_EDGES, LENGTH_EDGES, breakdown

log = logging.getLogger(__name__)

# the seeds of one configuration in the curves plot: shades of its colour, these
# symbols
SEED_SYMBOLS = ("o", "t", "s", "d", "+", "x")

CAFE = "cafe"
MODELS, ABLATION = "models", "ablation"
TABLES = {MODELS: "Models (Table 2)", ABLATION: "CaFe ablation (Table 3)"}
# settings that do not make a different configuration
NOT_CONFIG = ("train.seed", "train.device", "train.eval_batch_size")
METRIC_ORDER = ("NDCG@5", "HR@5", "NDCG@10", "HR@10", "MRR")
BREAKDOWNS = {
    "frequency": (
        "target_train_freq",
        FREQUENCY_EDGES,
        "held-out item's training count",
    ),
    "length": ("history_len", LENGTH_EDGES, "history length read by the model"),
}


# ---- from stored runs to the report's tables


def config_labels(runs: pd.DataFrame) -> pd.Series:
    """One label per configuration: the model's name, plus the settings that tell its
    configurations apart when one model has several."""
    config_columns = [
        c
        for c in runs.columns
        if (c.startswith(("model.", "train.")) and c not in NOT_CONFIG)
        or c in ("dataset_hash", "protocol")
    ]
    keys = runs[config_columns].map(str).agg("|".join, axis=1)
    labels = pd.Series(runs["model"].astype(str).to_numpy(), index=runs.index)
    for model, rows in runs.groupby("model", sort=False):
        configs = list(dict.fromkeys(keys[rows.index]))
        if len(configs) < 2:
            continue
        varying = [
            c
            for c in config_columns
            if rows[c].map(str).nunique() > 1 and c != "protocol"
        ]
        for index in rows.index:
            parts = [f"{c.split('.', 1)[-1]}={runs.at[index, c]}" for c in varying[:2]]
            number = configs.index(keys[index]) + 1
            labels[index] = (
                f"{model} ({', '.join(parts)})" if parts else f"{model} #{number}"
            )
    return labels


def ablation_labels(runs: pd.DataFrame) -> pd.Series:
    """Each CaFe run's Table 3 step (``backbone``, ``+(1)``, ...), SASRec runs as
    ``sasrec`` (the paper's backbone model); every other run None."""
    labels = pd.Series(None, index=runs.index, dtype=object)
    for index, run in runs.iterrows():
        if run["model"] == "sasrec":
            labels[index] = "sasrec"
        elif run["model"] == CAFE:
            switches = {
                key: run.get(f"model.{key}") for key, _ in reporting.ABLATION_SWITCHES
            }
            labels[index] = reporting.ablation_step(switches)
    return labels


def ablation_notes(runs: pd.DataFrame) -> list[str]:
    """Settings other than the four switches in which the CaFe runs differ: their
    steps pool runs that are not the same configuration."""
    cafe = runs[runs["model"] == CAFE]
    switches = {f"model.{key}" for key, _ in reporting.ABLATION_SWITCHES}
    differing = [
        c.split(".", 1)[-1]
        for c in cafe.columns
        if c.startswith(("model.", "train."))
        and c not in switches
        and c not in NOT_CONFIG
        and cafe[c].map(str).nunique() > 1
    ]
    if not differing:
        return []
    return [
        f"The CaFe runs also differ in {', '.join(differing)}; each step pools them."
    ]


def report_inputs(
    comparison: Comparison, labels: pd.Series | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``engine.reporting``'s two tables: runs (label, model, protocol, seed, test
    metrics) and per-user test results, one row per (run, user). ``labels`` name the
    column of each run (default: its configuration); a run labelled None is left
    out."""
    runs = comparison.runs.copy()
    runs["label"] = config_labels(runs) if labels is None else labels
    runs = runs[runs["label"].notna()]
    metrics = {
        c: c.removeprefix("test ") for c in runs.columns if c.startswith("test ")
    }
    table = runs[["id", "label", "model", "protocol", "seed", *metrics]].rename(
        columns=metrics
    )
    frames = []
    for _, run in table.iterrows():
        per_user = comparison.per_user.get(int(run["id"]))
        if per_user is not None and len(per_user):
            frames.append(
                per_user.assign(
                    label=run["label"], protocol=run["protocol"], seed=run["seed"]
                )
            )
    per_user = pd.concat(frames, ignore_index=True) if frames else None
    return table, per_user


def metric_columns(runs: pd.DataFrame) -> list[str]:
    present = [c for c in runs.columns if "@" in c or c == "MRR"]
    return [m for m in METRIC_ORDER if m in present] + [
        m for m in present if m not in METRIC_ORDER
    ]


def comparison_grid(runs: pd.DataFrame, per_user: pd.DataFrame | None):
    """Table 2 of the selected runs. With several CaFe configurations the best one is
    compared, and only against the non-CaFe columns."""
    metrics = metric_columns(runs)
    cafe = [x for x in dict.fromkeys(runs.loc[runs["model"] == CAFE, "label"])]
    if not cafe:
        return reporting.comparison_table(runs, per_user, metrics, target=CAFE)
    key = "NDCG@5" if "NDCG@5" in runs else metrics[0]
    target = runs[runs["label"].isin(cafe)].groupby("label")[key].mean().idxmax()
    grid = reporting.comparison_table(runs, per_user, metrics, target=target)
    if len(cafe) > 1:
        keep = (runs["model"] != CAFE) | (runs["label"] == target)
        users = None if per_user is None else per_user[per_user["label"].isin(
            set(runs.loc[keep, "label"]))]  # fmt: skip
        grid.extra = reporting.comparison_table(
            runs[keep], users, metrics, target=target
        ).extra
    return grid


def ablation_grid(runs: pd.DataFrame):
    """Table 3 of the selected runs: one row per ablation step."""
    grid = reporting.ablation_table(
        runs,
        reporting.ablation_order(runs["label"]),
        metric_columns(runs),
        title="CaFe ablation",
    )
    grid.notes.append(
        "(1) intent encoder fused into the item encoder, (2) intent loss, (3) local "
        "heads, (4) joint inference; the last column is each step's change over the "
        "first row."
    )
    return grid


def bar_series(grid, table: str):
    """Groups along the x axis, and per series its bar heights and spreads: Table 2
    has a group per (protocol, metric) and a series per configuration, Table 3 the
    other way round."""
    if table == ABLATION:
        keys = list(grid.mean.columns)  # (protocol, metric)
        names = [str(step) for step in grid.mean.index]
        series = {n: grid.mean.iloc[i].to_numpy() for i, n in enumerate(names)}
        errors = {n: grid.std.iloc[i].to_numpy() for i, n in enumerate(names)}
    else:
        keys = list(grid.mean.index)  # (protocol, metric)
        names = grid.column_names()
        series = {n: grid.mean.iloc[:, j].to_numpy() for j, n in enumerate(names)}
        errors = {n: grid.std.iloc[:, j].to_numpy() for j, n in enumerate(names)}
    several = len({protocol for protocol, _ in keys}) > 1
    groups = [
        f"{metric}\n{protocol}" if several else metric for protocol, metric in keys
    ]
    return groups, series, errors


def mismatch_warnings(runs: pd.DataFrame) -> list[str]:
    """Differences that make the selected runs' numbers incomparable."""
    found = []
    versions = runs.groupby("dataset_hash", sort=False)["id"].apply(list)
    if len(versions) > 1:
        parts = [
            f"{runs.loc[runs['dataset_hash'] == h, 'dataset'].iloc[0]} "
            f"{h[:8]} (runs {', '.join(f'#{i}' for i in ids)})"
            for h, ids in versions.items()
        ]
        found.append("different dataset versions: " + "; ".join(parts))
    protocols = runs.groupby("protocol", sort=False)["id"].apply(list)
    if len(protocols) > 1:
        parts = [
            f"{p} (runs {', '.join(f'#{i}' for i in ids)})"
            for p, ids in protocols.items()
        ]
        found.append("different protocols: " + "; ".join(parts))
    return found


def label_breakdowns(
    per_user: pd.DataFrame | None, by: str, edges: Sequence[int], metric: str
) -> dict[str, pd.DataFrame]:
    """Per configuration, ``metric`` by bucket of ``by``, users of all seeds pooled."""
    if per_user is None or metric not in per_user.columns:
        return {}
    return {
        label: breakdown(rows, by, metric, edges)
        for label, rows in per_user.groupby("label", sort=False)
    }


def load_comparison(state: TaskState, source: RunSource, ids: list[int]) -> Comparison:
    state.progress(0.1, "reading the runs")
    return source.comparison(ids)


# ---- the view


def grouped_bars(
    plot: pg.PlotWidget,
    groups: list[str],
    series: dict[str, np.ndarray],
    colours: dict[str, str],
    errors=None,
) -> None:
    """Bars of each series side by side within each group, with a legend; error bars
    only where there is a spread (several seeds)."""
    plot.clear()
    legend = plot.getPlotItem().legend
    if legend is not None:
        legend.clear()
    count = max(1, len(series))
    width = 0.8 / count
    for index, (name, values) in enumerate(series.items()):
        x = np.arange(len(groups)) + (index - (count - 1) / 2) * width
        colour = colours.get(name, category_colour(index))
        heights = np.nan_to_num(np.asarray(values, dtype=float))
        bars = pg.BarGraphItem(
            x=x, height=heights, width=width * 0.92, brush=colour, pen=None, name=name
        )
        plot.addItem(bars)
        spread = None if errors is None else errors.get(name)
        spread = (
            np.nan_to_num(np.asarray(spread, dtype=float))
            if spread is not None
            else None
        )
        if spread is not None and spread.any():
            plot.addItem(
                pg.ErrorBarItem(
                    x=x, y=heights, height=2 * spread, beam=width * 0.4,
                    pen=pg.mkPen(plot_foreground(palette_is_dark())),
                )
            )  # fmt: skip
    plot.getPlotItem().getAxis("bottom").setTicks([list(enumerate(groups))])
    plot.setXRange(-0.6, len(groups) - 0.4, padding=0)

    # headroom above the tallest bar, so the legend in the corner covers none
    tops = [np.nan_to_num(np.asarray(v, dtype=float)) for v in series.values()]
    if errors:
        tops += [
            np.nan_to_num(np.asarray(v, dtype=float))
            + np.nan_to_num(np.asarray(errors.get(n, 0.0), dtype=float))
            for n, v in series.items()
        ]
    top = max((float(t.max()) for t in tops if t.size), default=0.0)
    if top > 0:
        plot.setYRange(0, top * (1.15 + 0.1 * count), padding=0)


def seed_shade(colour, nth: int) -> str:
    """The ``nth`` seed's shade of a configuration's colour: the colour itself, then
    alternately darker and lighter, each step further from it."""
    base = QColor(colour)
    if nth == 0:
        return base.name()
    step = 100 + 40 * ((nth + 1) // 2)
    return (base.darker(step) if nth % 2 else base.lighter(step)).name()


class CompareView(QWidget):
    """Warning and table on top, bars beside it; curves and breakdowns below."""

    compared = Signal()
    failed = Signal(str)

    def __init__(self, source: RunSource, parent: QWidget | None = None):
        super().__init__(parent)
        self.source = source
        self.task: Task | None = None
        self.waiting: list[int] | None = None  # runs asked for while others load
        self.comparison: Comparison | None = None
        self.runs: pd.DataFrame | None = None
        self.per_user: pd.DataFrame | None = None
        self.grid = None
        self.table_kind = MODELS
        # per table kind: (runs, per-user results, grid), or None where not possible
        self.tables: dict[str, tuple | None] = {}
        self.breakdowns: dict[str, dict[str, pd.DataFrame]] = {}
        self._build()

    def _build(self) -> None:
        self.heading = QLabel("Select runs in the runs table and choose Compare.")
        self.heading.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #b03000; font-weight: bold;")
        self.warning.setVisible(False)
        self.metric_box = QComboBox()
        self.metric_box.setMinimumWidth(100)
        self.metric_box.setToolTip("Metric of the curves and the breakdowns")
        self.table_box = QComboBox()
        for kind, text in TABLES.items():
            self.table_box.addItem(text, kind)
        self.table_box.setToolTip(
            "Table 2 puts models side by side; Table 3 puts the selected CaFe runs in "
            "rows by which of the paper's four ablation switches they have on (needs "
            "at least two different steps among the selected runs)."
        )
        self.export_button = exports.export_button(self, self._exports())

        self.table = QTableWidget()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        self.notes = QLabel("")
        self.notes.setWordWrap(True)
        self.bars = make_plot("Test metrics", "metric", "value")
        self.bars.addLegend(offset=(-10, 10), labelTextSize="8pt")
        self.curves = make_plot("Validation curves", "epoch", "NDCG@5", whole_x=True)
        # top left: validation curves rise, so that corner stays clear of them
        self.curves.addLegend(offset=(10, 10), labelTextSize="8pt")
        self.by_frequency = make_plot(
            "NDCG@5 by target frequency", BREAKDOWNS["frequency"][2], "NDCG@5"
        )
        self.by_frequency.addLegend(offset=(10, 10), labelTextSize="8pt")
        self.by_length = make_plot(
            "NDCG@5 by history length", BREAKDOWNS["length"][2], "NDCG@5"
        )
        self.by_length.addLegend(offset=(10, 10), labelTextSize="8pt")
        for plot in (self.bars, self.curves, self.by_frequency, self.by_length):
            plot.getPlotItem().getAxis("left").enableAutoSIPrefix(False)
            plot.getPlotItem().legend.setBrush(pg.mkBrush(255, 255, 255, 190))
        for plot in (self.bars, self.by_frequency, self.by_length):
            # room for two-line group names above the axis label
            plot.getPlotItem().getAxis("bottom").setHeight(58)

        bar = QHBoxLayout()
        bar.addWidget(self.heading, 1)
        bar.addWidget(QLabel("Table"))
        bar.addWidget(self.table_box)
        bar.addWidget(QLabel("Metric"))
        bar.addWidget(self.metric_box)
        bar.addWidget(self.export_button)
        table_box = QWidget()
        table_layout = QVBoxLayout(table_box)
        table_layout.setContentsMargins(0, 0, 0, 0)
        table_layout.addWidget(self.table, 1)
        table_layout.addWidget(self.notes)
        self.upper = upper = QSplitter(Qt.Orientation.Horizontal)
        upper.addWidget(table_box)
        upper.addWidget(self.bars)
        upper.setStretchFactor(0, 3)
        upper.setStretchFactor(1, 2)
        lower = QSplitter(Qt.Orientation.Horizontal)
        for plot in (self.curves, self.by_frequency, self.by_length):
            lower.addWidget(plot)
        body = QSplitter(Qt.Orientation.Vertical)
        body.addWidget(upper)
        body.addWidget(lower)
        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addWidget(self.warning)
        layout.addWidget(body, 1)
        self.metric_box.currentIndexChanged.connect(self._metric_changed)
        self.table_box.currentIndexChanged.connect(
            lambda _: self.show_table(self.table_box.currentData())
        )

    # ---- loading

    def compare(self, ids: list[int]) -> None:
        """Read the runs off the GUI thread, then show them."""
        ids = [int(i) for i in ids]
        if not ids:
            return
        if self.task is not None:
            self.waiting = ids  # compared once the runs being read are shown
            return
        self.waiting = None
        self.heading.setText(f"Reading {len(ids)} runs\u2026")
        task = Task(load_comparison, self.source, ids)
        task.done.connect(self._loaded)
        task.failed.connect(self._failed)
        self.task = task.start()

    def _loaded(self, comparison: Comparison) -> None:
        self.task = None
        if self.waiting is not None:
            self.compare(self.waiting)  # a newer selection came while reading
            return
        self.show_comparison(comparison)

    def _failed(self, message: str) -> None:
        self.task = None
        self.waiting = None
        self.heading.setText("The comparison could not be read.")
        self.failed.emit(message)
        dialogs.show_error(self, "Compare runs", message)

    def show_comparison(self, comparison: Comparison) -> None:
        self.comparison = comparison
        runs, per_user = report_inputs(comparison)
        self.tables = {MODELS: (runs, per_user, comparison_grid(runs, per_user))}
        ablation_runs, ablation_users = report_inputs(
            comparison, ablation_labels(comparison.runs)
        )
        steps = set(ablation_runs["label"]) - {"sasrec"}
        if steps and ablation_runs["label"].nunique() > 1:
            grid = ablation_grid(ablation_runs)
            grid.notes += ablation_notes(comparison.runs)
            self.tables[ABLATION] = (ablation_runs, ablation_users, grid)
        else:
            self.tables[ABLATION] = None

        self.table_box.blockSignals(True)
        item = self.table_box.model().item(self.table_box.findData(ABLATION))
        item.setEnabled(self.tables[ABLATION] is not None)
        if self.tables.get(self.table_kind) is None:
            self.table_kind = MODELS
        self.table_box.setCurrentIndex(self.table_box.findData(self.table_kind))
        self.table_box.blockSignals(False)

        problems = mismatch_warnings(comparison.runs)
        self.warning.setVisible(bool(problems))
        self.warning.setText(
            "\u26a0 The selected runs are not comparable: " + "; ".join(problems) + "."
            if problems
            else ""
        )
        self.metric_box.blockSignals(True)
        self.metric_box.clear()
        self.metric_box.addItems(metric_columns(runs))
        self.metric_box.setCurrentText("NDCG@5")
        self.metric_box.blockSignals(False)
        self.show_table(self.table_kind)
        self.compared.emit()

    def show_table(self, kind: str) -> None:
        """Show Table 2 (models) or Table 3 (the CaFe ablation) of the compared runs,
        with bars, curves and breakdowns of the same columns."""
        if self.comparison is None or self.tables.get(kind) is None:
            return
        self.table_kind = kind
        self.runs, self.per_user, self.grid = self.tables[kind]
        heading = html.escape(
            f"{len(self.runs)} runs in {self.runs['label'].nunique()} "
            f"{'configurations' if kind == MODELS else 'ablation steps'} on "
            f"{', '.join(dict.fromkeys(self.comparison.runs['dataset'].astype(str)))}"
        )
        groups: dict[str, list[str]] = {}
        for group, label in self.grid.mean.columns:
            groups.setdefault(str(group), []).append(str(label))
        if kind == MODELS and len(groups) > 1:
            # the paper's column groups, which the LaTeX export spans over its header
            heading += " \u00b7 columns: " + "; ".join(
                f"<i>{html.escape(group)}</i>: {html.escape(', '.join(labels))}"
                for group, labels in groups.items()
            )
        self.heading.setText(heading)
        self._fill_table()
        self._draw_bars()
        self._metric_changed()

    # ---- drawing

    def _fill_table(self) -> None:
        grid = self.grid
        cells, extra = grid.cell_text(), grid.extra_text()
        row_names = [str(n) for n in grid.mean.index.names]
        header = [*row_names, *grid.column_names(), *extra.columns]
        self.table.clear()
        self.table.setColumnCount(len(header))
        self.table.setRowCount(len(cells))
        self.table.setHorizontalHeaderLabels(header)
        bold = QFont()
        bold.setBold(True)
        for i, key in enumerate(grid.mean.index):
            values = [*(key if isinstance(key, tuple) else (key,))]
            values += list(cells.iloc[i]) + list(extra.iloc[i])
            for j, value in enumerate(values):
                item = QTableWidgetItem(str(value))
                column = j - len(row_names)
                if 0 <= column < cells.shape[1] and grid.best.iat[i, column]:
                    item.setFont(bold)
                if j >= len(row_names):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.table.setItem(i, j, item)
        for j, (group, _) in enumerate(grid.mean.columns):
            self.table.horizontalHeaderItem(j + len(row_names)).setToolTip(group)
        self.table.resizeColumnsToContents()
        self.notes.setText(" ".join(grid.notes))

        # the table gets the width its columns need, the bar chart keeps at least 300
        needed = sum(self.table.columnWidth(j) for j in range(len(header))) + 24
        total = max(self.upper.width(), 1000)
        table_width = min(needed, total - 300)
        self.upper.setSizes([table_width, total - table_width])

    def _draw_bars(self) -> None:
        groups, series, errors = bar_series(self.grid, self.table_kind)
        grouped_bars(self.bars, groups, series, self.colours(), errors)

    def colours(self) -> dict[str, str]:
        """One colour per configuration or step, the same in every bar chart."""
        labels = []
        if self.grid is not None:
            labels = bar_series(self.grid, self.table_kind)[1]
        return {label: category_colour(i).name() for i, label in enumerate(labels)}

    def _metric_changed(self) -> None:
        metric = self.metric_box.currentText()
        if self.comparison is None or not metric:
            return
        self._draw_curves(metric)
        for name, plot in (
            ("frequency", self.by_frequency),
            ("length", self.by_length),
        ):
            by, edges, axis = BREAKDOWNS[name]
            found = label_breakdowns(self.per_user, by, edges, metric)
            # in the order (and so the colours) of the bar chart's legend
            order = [label for label in self.colours() if label in found]
            tables = {
                label: found[label] for label in order + sorted(set(found) - set(order))
            }
            self.breakdowns[name] = tables
            self._draw_breakdown(plot, tables, metric, name, edges)

    def _draw_curves(self, metric: str) -> None:
        self.curves.clear()
        self.curves.getPlotItem().legend.clear()
        labels = dict(zip(self.runs["id"], self.runs["label"]))
        shown = [(i, c) for i, c in self.comparison.curves.items() if i in labels]
        # a configuration has the colour of its bars; each seed is a shade of it,
        # with a symbol of its own
        colours, seen = self.colours(), {}
        for index, (run_id, curve) in enumerate(shown):
            rows = curve[(curve["split"] == "valid") & (curve["name"] == metric)]
            seed = self.runs.loc[self.runs["id"] == run_id, "seed"].iloc[0]
            label = labels[run_id]
            nth = seen[label] = seen.get(label, -1) + 1
            colour = seed_shade(colours.get(label) or category_colour(index), nth)
            line = self.curves.plot(
                rows["epoch"].to_numpy(),
                rows["value"].to_numpy(),
                pen=pg.mkPen(colour, width=2),
                symbol=SEED_SYMBOLS[nth % len(SEED_SYMBOLS)],
                symbolSize=6,
                symbolBrush=colour,
                symbolPen=None,
                name=f"#{run_id} {label} s{seed}",
            )
            line.setClipToView(True)
        self.curves.getPlotItem().setTitle(f"Validation {metric}", size="10pt")
        self.curves.setLabel("left", f"validation {metric}")

    def _draw_breakdown(self, plot, tables, metric: str, name: str, edges) -> None:
        if not tables:
            plot.clear()
            return
        first = next(iter(tables.values()))
        seeds = max(1, int((self.runs["label"] == next(iter(tables))).sum()))
        groups = [
            f"{bucket}\nn={users // seeds}"
            for bucket, users in zip(first["bucket"], first["users"])
        ]
        series = {label: table["mean"].to_numpy() for label, table in tables.items()}
        grouped_bars(plot, groups, series, self.colours())
        # a bucket without users is marked, so it does not read as a score of zero
        for position, users in enumerate(first["users"]):
            if users == 0:
                empty = pg.TextItem(
                    "no users", color=muted_foreground(), anchor=(0.5, 1.0)
                )
                empty.setPos(position, 0.0)
                plot.addItem(empty)
        what = "target frequency" if name == "frequency" else "history length"
        plot.getPlotItem().setTitle(f"Test {metric} by {what}", size="10pt")
        plot.setLabel("left", f"test {metric}")

    # ---- export

    def _exports(self) -> dict:
        entries = {
            "Table as CSV\u2026": lambda: self._export_table(".csv"),
            "Table as LaTeX\u2026": lambda: self._export_table(".tex"),
            "Table as Markdown\u2026": lambda: self._export_table(".md"),
        }
        for label, plot in (
            ("Bar chart", lambda: self.bars),
            ("Validation curves", lambda: self.curves),
            ("Frequency breakdown plot", lambda: self.by_frequency),
            ("Length breakdown plot", lambda: self.by_length),
        ):
            stem = label.lower().replace(" ", "-")
            entries[f"{label} as PNG/SVG\u2026"] = lambda plot=plot, stem=stem: (
                exports.save_plot(self, plot(), stem, record=self._record(stem))
            )
        for name in BREAKDOWNS:
            entries[f"{name.title()} breakdown as CSV\u2026"] = lambda name=name: (
                self._export_breakdown(name)
            )
        return entries

    def breakdown_frame(self, name: str) -> pd.DataFrame:
        """All configurations' breakdown rows in one table, for CSV."""
        tables = self.breakdowns.get(name, {})
        return pd.concat(
            [t.assign(configuration=label) for label, t in tables.items()],
            ignore_index=True,
        )

    def _export_breakdown(self, name: str) -> None:
        if not self.breakdowns.get(name):
            dialogs.show_error(
                self, "Export", "Compare runs with per-user results first."
            )
            return
        stem = f"breakdown-{name}"
        exports.save_table(
            self, self.breakdown_frame(name), stem, record=self._record(stem)
        )

    def write_table(self, path) -> None:
        """The comparison table to CSV (numbers), LaTeX or Markdown, by extension."""
        suffix = str(path).rsplit(".", 1)[-1].lower()
        if suffix == "csv":
            exports.export_table(self.grid.numbers(), path)
        elif suffix == "tex":
            exports.export_text(reporting.to_latex(self.grid), path, (".tex",))
        else:
            exports.export_text(reporting.to_markdown(self.grid), path, (".md",))

    def _export_table(self, suffix: str) -> None:
        if self.grid is None:
            dialogs.show_error(self, "Export", "Compare some runs first.")
            return
        path = exports.ask_path(
            self,
            "Export comparison table",
            exports.REPORT_FILTER,
            "comparison" + suffix,
        )
        if path is not None and exports.run_export(
            self, "Export table", lambda: self.write_table(path)
        ):
            self._record("comparison-table")(path)

    def _record(self, what: str):
        """What tells the run store of a file exported from the compared runs: each
        of them keeps it as an artifact."""
        ids = [] if self.runs is None else [int(i) for i in self.runs["id"]]
        return lambda path: self.source.record_export(ids, what, path)


def main() -> int:
    """Show the view alone on synthetic data with untrained models."""
    from PySide6.QtWidgets import QApplication

    from app.gui.run_source import FakeSource
    from app.gui.theme import Theme

    app = QApplication.instance() or QApplication([])
    Theme(app, "light")
    source = FakeSource(("cafe", "sasrec", "intentpop"))
    view = CompareView(source)
    view.resize(1280, 800)
    view.show()
    view.show_comparison(source.comparison([1, 2, 3]))
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
