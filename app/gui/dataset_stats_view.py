"""The statistics of SPEC §2 for one dataset, before and after the filters.

A table of counts (users, items, intents, interactions, density, sequence lengths,
interactions per item, share of items seen once, unknown intents), the item-frequency
histogram on log-log axes, and the sizes of the largest intents. It shows plain stats
dicts (:func:`engine.data.stats.compute_stats`), so it serves registered datasets too.

Run alone: ``python -m app.gui.dataset_stats_view [DATA]`` (default: Ciao).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractScrollArea,
    QHBoxLayout,
    QHeaderView,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui import exports
from app.gui.plots import add_curve, make_plot
from app.gui.theme import SERIES

ROWS = (
    ("users", "Users", "{:,}"),
    ("items", "Items", "{:,}"),
    ("intents", "Intents", "{:,}"),
    ("interactions", "Interactions", "{:,}"),
    ("density", "Density", "{:.5%}"),
    ("avg_seq_len", "Avg. sequence length", "{:.2f}"),
    ("median_seq_len", "Median sequence length", "{:.1f}"),
    ("users_under_3", "Users with < 3 (train only)", "{:,}"),
    ("interactions_per_item", "Interactions per item", "{:.2f}"),
    ("share_items_seen_once", "Items seen once", "{:.1%}"),
    ("unknown_intent_items", "Items with unknown intent", "{:,}"),
)
TOP_INTENTS = 12
# pixels a bar of the intent chart needs for its name to stay readable
BAR_PIXELS = 18


class DatasetStatsView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._bar_stats: dict | None = None  # what the intent chart shows
        self.table = QTableWidget(len(ROWS), 2)
        self.table.setObjectName("statsTable")
        self.table.setHorizontalHeaderLabels(["before filters", "after filters"])
        self.table.setVerticalHeaderLabels([label for _, label, _ in ROWS])
        self.table.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.Stretch
        )
        self.table.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        # every statistic in view: the table is as tall as its rows
        self.table.setSizeAdjustPolicy(
            QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents
        )
        # ...and scrolls when the window is too short for them
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)

        # item-frequency histogram: how many items were seen exactly f times
        self.histogram = make_plot(
            "Item frequency (log-log)", "interactions per item", "items"
        )
        self.histogram.setLogMode(x=True, y=True)
        self.histogram.addLegend(offset=(-10, 10))
        self.hist_before = add_curve(self.histogram, 1, "before filters", symbols=True)
        self.hist_after = add_curve(self.histogram, 0, "after filters", symbols=True)

        # intent sizes as horizontal bars, largest on top, names on the left axis
        self.intents = make_plot(
            "Largest intents (after filters)", "interactions", "intent"
        )
        self.intents.getPlotItem().setMouseEnabled(x=False, y=False)
        self.bars = pg.BarGraphItem(
            x0=[], y=[], width=[], height=0.7, brush=SERIES[2], pen=None
        )
        self.intents.addItem(self.bars)

        self.clear()

        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.histogram)
        plots.addWidget(self.intents)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.export_button = exports.export_button(
            self,
            {
                "Statistics table (CSV)…": lambda: exports.save_table(
                    self, self.frame(), "dataset-statistics"
                ),
                "Item-frequency plot (PNG/SVG)…": lambda: exports.save_plot(
                    self, self.histogram, "item-frequency"
                ),
                "Intent sizes plot (PNG/SVG)…": lambda: exports.save_plot(
                    self, self.intents, "intent-sizes"
                ),
            },
        )
        row = QHBoxLayout()
        row.addWidget(self.table, 1)
        row.addWidget(self.export_button, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(row)
        layout.addWidget(plots, 1)

    def clear(self) -> None:
        self._bar_stats = None
        self.table.clearContents()
        for curve in (self.hist_before, self.hist_after):
            curve.setData([], [])
        # empty log axes: decades 1..1000 and 1..10^4 rather than stray minor ticks
        self.histogram.setRange(xRange=(0, 3), yRange=(0, 4), padding=0.05)
        self.bars.setOpts(x0=[], y=[], width=[])
        self.intents.getPlotItem().getAxis("left").setTicks(None)

    def show_stats(self, before: dict, after: dict | None) -> None:
        """Fill the table and plots; ``after`` None means the filters left nothing."""
        for column, stats in enumerate((before, after)):
            for row, (key, _, fmt) in enumerate(ROWS):
                value = (stats or {}).get(key)
                text = "" if value is None else fmt.format(value)
                item = QTableWidgetItem(text)
                item.setTextAlignment(
                    Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                )
                self.table.setItem(row, column, item)
        self._histogram(self.hist_before, before)
        self._histogram(self.hist_after, after)
        # the range set for the empty plot gives way to the data
        self.histogram.getPlotItem().enableAutoRange()
        self._intent_bars(after or before)

    def frame(self) -> pd.DataFrame:
        """The statistics as shown, one row per statistic, for export."""
        rows = []
        for row, (_, label, _) in enumerate(ROWS):
            cells = [self.table.item(row, column) for column in (0, 1)]
            before, after = ("" if cell is None else cell.text() for cell in cells)
            rows.append(
                {"statistic": label, "before filters": before, "after filters": after}
            )
        return pd.DataFrame(rows)

    def _histogram(self, curve, stats: dict | None) -> None:
        hist = (stats or {}).get("item_freq_hist") or {"freq": [], "items": []}
        curve.setData(
            np.asarray(hist["freq"], dtype=float),
            np.asarray(hist["items"], dtype=float),
        )

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._bar_stats is not None:
            self._intent_bars(self._bar_stats)  # as many bars as now fit

    def _intent_bars(self, stats: dict) -> None:
        self._bar_stats = stats
        # the largest intents, as many as fit with readable names (at most 12)
        height = self.intents.getPlotItem().getViewBox().height()
        fit = max(3, int(height // BAR_PIXELS)) if height > 0 else TOP_INTENTS
        sizes = (stats.get("intent_sizes") or [])[: min(TOP_INTENTS, fit)]
        count = len(sizes)
        # largest on top: row i is drawn at y = count - 1 - i
        ys = np.arange(count - 1, -1, -1, dtype=float)
        widths = np.asarray([s["interactions"] for s in sizes], dtype=float)
        self.bars.setOpts(x0=np.zeros(count), y=ys, width=widths, height=0.7)
        ticks = [(float(y), _short(s["intent"])) for y, s in zip(ys, sizes)]
        self.intents.getPlotItem().getAxis("left").setTicks([ticks])
        self.intents.getPlotItem().setYRange(-0.6, max(count, 1) - 0.4, padding=0)
        self.intents.getPlotItem().setXRange(0, max(widths.max(initial=1.0), 1.0))
        total = stats.get("intents", count)
        self.intents.getPlotItem().setTitle(
            f"Largest intents ({count} of {total}, after filters)", size="10pt"
        )


def _short(text: str, width: int = 18) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def main() -> int:
    import sys
    from pathlib import Path

    from PySide6.QtWidgets import QApplication

    from engine.data import load_raw, prepare

    app = QApplication(sys.argv)
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "ciao"
    dataset = prepare(load_raw(sys.argv[1] if len(sys.argv) > 1 else default))
    view = DatasetStatsView()
    view.show_stats(dataset.stats_before, dataset.stats)
    view.resize(900, 600)
    view.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
