"""Small helpers shared by the workbench's pyqtgraph plots."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSizePolicy

from app.gui.theme import SERIES, palette_is_dark, style_plot


class WholeNumberAxis(pg.AxisItem):
    """An axis of counts (epochs): ticks only at whole numbers."""

    def tickSpacing(self, minVal, maxVal, size):
        levels = super().tickSpacing(minVal, maxVal, size)
        whole = [(spacing, offset) for spacing, offset in levels if spacing >= 1]
        return whole or [(1.0, 0.0)]


def make_plot(
    title: str, x_label: str, y_label: str, parent=None, whole_x: bool = False
) -> pg.PlotWidget:
    """A plot with a title, labelled axes and a grid; curves are added once by the
    caller and refreshed with ``setData``. ``whole_x``: x counts (epochs), so its
    ticks fall on whole numbers."""
    axes = {"bottom": WholeNumberAxis("bottom")} if whole_x else None
    plot = pg.PlotWidget(parent=parent, axisItems=axes)
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


def add_curve(plot: pg.PlotWidget, index: int, name: str, symbols: bool = True):
    """One curve, created once; long series are downsampled and clipped to the view.

    ``symbols``: a small dot on every point. On by default: a line needs two points,
    so a curve after its first epoch would show nothing without one."""
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
    item = plot.getPlotItem()
    grid = item.layout
    # a PlotItem's grid: title in row 0, top axis in row 1, view box in row 2 (axes
    # in columns 0 and 2); above the data the legend takes the hidden top axis' cell
    if where == "top":
        grid.removeItem(item.getAxis("top"))
        item.getAxis("top").hide()
        row, column, align = (1, 1, Qt.AlignmentFlag.AlignHCenter)
    else:
        row, column, align = (2, 3, Qt.AlignmentFlag.AlignTop)
    grid.addItem(legend, row, column)
    grid.setAlignment(legend, align)
    return legend
