"""Small helpers shared by the workbench's pyqtgraph plots."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy

from app.gui.theme import SERIES, palette_is_dark, style_plot


def make_plot(title: str, x_label: str, y_label: str, parent=None) -> pg.PlotWidget:
    """A plot with a title, labelled axes and a grid; curves are added once by the
    caller and refreshed with ``setData``."""
    plot = pg.PlotWidget(parent=parent)
    item = plot.getPlotItem()
    item.setTitle(title, size="10pt")
    item.setLabel("bottom", x_label)
    item.setLabel("left", y_label)
    item.showGrid(x=True, y=True, alpha=0.2)
    item.setMenuEnabled(True)
    for name in ("left", "bottom"):
        # "value (x0.001)" puzzles readers of metrics; show the numbers as they are
        item.getAxis(name).enableAutoSIPrefix(False)
    style_plot(plot, palette_is_dark())
    plot.setMinimumHeight(160)
    return plot


def series_pen(index: int, width: float = 2.0) -> pg.QtGui.QPen:
    return pg.mkPen(SERIES[index % len(SERIES)], width=width)


def add_curve(plot: pg.PlotWidget, index: int, name: str, symbols: bool = False):
    """One curve, created once; long series are downsampled and clipped to the view."""
    curve = plot.plot(
        [],
        [],
        pen=series_pen(index),
        name=name,
        symbol="o" if symbols else None,
        symbolSize=5,
        symbolBrush=SERIES[index % len(SERIES)],
        symbolPen=None,
    )
    curve.setDownsampling(auto=True, method="peak")
    curve.setClipToView(True)
    return curve


def outside_legend(
    plot: pg.PlotWidget, where: str = "top", columns: int = 1
) -> pg.LegendItem:
    """A legend in a cell of its own, above or right of the data, so it never hides
    a curve or a point. Items are added with ``legend.addItem(item, name)``."""
    legend = pg.LegendItem(colCount=columns, labelTextSize="9pt")
    legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
    # a PlotItem's grid: row 1 holds the (hidden) top axis, row 2 the view box,
    # column 3 the (hidden) right axis
    row, column, align = (1, 1, Qt.AlignmentFlag.AlignHCenter)
    if where == "right":
        row, column, align = (2, 3, Qt.AlignmentFlag.AlignTop)
    grid = plot.getPlotItem().layout
    grid.addItem(legend, row, column)
    grid.setAlignment(legend, align)
    return legend
