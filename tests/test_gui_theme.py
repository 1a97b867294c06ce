"""Plots follow a theme change, one epoch shows on the curves, attention colours.

The run page is built offscreen from a made-up run (no store, no training), the
theme is switched the way the main window does it, and every text pyqtgraph draws
is read back from the items themselves.
"""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pandas as pd
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget

from app.gui.attention_view import AttentionView, colour_top
from app.gui.plots import make_plot
from app.gui.run_page import RunPage
from app.gui.store_reader import RunView
from app.gui.theme import Theme, plot_foreground, style_plot
from storage.queries import RunDetail

COLOUR = re.compile(r"color:\s*(#[0-9a-fA-F]{6,8})")


@pytest.fixture
def theme(qapp):
    """A theme on the test application; palette and pyqtgraph colours restored."""
    palette = QPalette(qapp.palette())
    options = {k: pg.getConfigOption(k) for k in ("background", "foreground")}
    theme = Theme(qapp, "light")
    yield theme
    theme.setParent(None)
    qapp.setPalette(palette)
    pg.setConfigOptions(**options)


def made_up_run(epochs: int) -> RunView:
    """A running CaFe run with ``epochs`` epochs of curves and one attention map."""
    rows = [(e, "train", "loss", 1.0 / e) for e in range(1, epochs + 1)]
    rows += [(e, "valid", "NDCG@5", 0.1 * e) for e in range(1, epochs + 1)]
    curves = pd.DataFrame(rows, columns=["epoch", "split", "name", "value"])
    raw = np.tril(np.random.default_rng(0).random((8, 8)))
    maps = {"item layer 1 head 1": raw / raw.sum(1, keepdims=True)}
    detail = RunDetail(
        id=1, model="cafe", dataset="ciao", dataset_id=1, status="running", seed=0,
        protocol="sampled", device="cpu", created=datetime.now(),
        started=datetime.now(), finished=None, seconds=2.0, epochs=epochs,
        max_epochs=10, best_epoch=1, spec={"model": "cafe"}, log="",
    )  # fmt: skip
    return RunView(detail, curves, maps)


def run_page(qtbot, epochs: int) -> RunPage:
    page = RunPage()
    qtbot.addWidget(page)
    page.set_run(1)
    page.show_view(made_up_run(epochs))
    return page


def html_colours(html: str) -> set[str]:
    """The colours a piece of rich text asks for; "unset" when it names none."""
    found = {QColor(c).name() for c in COLOUR.findall(html)}
    return found or {"unset"}


def text_colours(plot: pg.PlotWidget) -> set[str]:
    """Every colour in which ``plot`` draws text: axis lines, ticks and labels of
    all axes (colour bars' included), titles, legend labels, neutral text items."""
    found = set()
    for item in plot.scene().items():
        if isinstance(item, pg.AxisItem):
            found |= {item.pen().color().name(), item.textPen().color().name()}
            if item.labelText:
                found |= html_colours(item.label.toHtml())
        elif isinstance(item, pg.LabelItem) and item.text:
            found |= html_colours(item.item.toHtml())
        elif isinstance(item, pg.TextItem) and item.toPlainText() == "no users":
            found.add(item.color.name())
    return found


@pytest.mark.parametrize("before, after", [("light", "dark"), ("dark", "light")])
def test_a_theme_change_recolours_every_text_of_every_plot(qtbot, theme, before, after):
    theme.apply(before)
    window = QWidget()
    qtbot.addWidget(window)
    page = run_page(qtbot, epochs=3)

    # a plot as the compare view draws one: an inner legend and a grey note, plus
    # a coloured note whose colour means something
    bars = make_plot("Test metrics", "metric", "value")
    bars.addLegend(offset=(-10, 10), labelTextSize="8pt")
    bars.plot([0, 1], [0.2, 0.3], name="CaFe")
    bars.addItem(pg.TextItem("no users", color="#808080"))
    held_out = pg.TextItem("held out", color="#b05000")
    bars.addItem(held_out)
    layout = QVBoxLayout(window)
    layout.addWidget(page)
    layout.addWidget(bars)

    # as the main window does: every plot restyled when the theme changes
    theme.changed.connect(
        lambda dark: [style_plot(p, dark) for p in window.findChildren(pg.PlotWidget)]
    )
    theme.apply(after)

    new = QColor(plot_foreground(after == "dark")).name()
    plots = window.findChildren(pg.PlotWidget)
    assert len(plots) == 4  # loss, validation, attention, bars
    for plot in plots:
        assert text_colours(plot) == {new}, plot.getPlotItem().titleLabel.text
    assert held_out.color.name() == "#b05000"

    # text set after the change (a new title, a new legend entry) takes it as well
    page.attention.set_maps({"intent layer 1 head 2": np.eye(4)})
    bars.plot([0, 1], [0.1, 0.2], name="SASRec")
    assert text_colours(page.attention.plot) == {new}
    assert text_colours(bars) == {new}


def test_curves_of_one_epoch_show_their_point(qtbot):
    page = run_page(qtbot, epochs=1)
    assert page.points() == {"loss": 1, "NDCG@5": 1}

    # a line needs two points: a lone epoch is drawn only by its symbol
    for curve in [*page.loss_curves.values(), *page.metric_curves.values()]:
        assert curve.opts["symbol"] is not None
        assert curve.scatter.isVisible()
        assert len(curve.scatter.data) == 1


def test_the_colour_range_tops_at_the_largest_weight_outside_the_first_row():
    # causal rows: position 0 sees itself only; worked by hand, the largest weight
    # outside row 0 is 0.6, in row 1
    weights = np.array(
        [
            [1.0, 0.0, 0.0],
            [0.4, 0.6, 0.0],
            [0.3, 0.2, 0.5],
        ]
    )
    assert colour_top(weights) == pytest.approx(0.6)
    assert colour_top(weights[:1, :1]) == pytest.approx(1.0)
    assert colour_top(np.zeros((0, 0))) == pytest.approx(1.0)


def test_the_attention_colour_bar_says_when_it_clips(qtbot):
    view = AttentionView()
    qtbot.addWidget(view)
    causal = np.tril(np.full((6, 6), 0.1))
    causal[0, 0], causal[3, 1] = 1.0, 0.35
    view.set_maps({"item layer 1 head 1": causal})
    low, high = view.colorbar.levels()
    assert (low, high) == pytest.approx((0.0, 0.35))
    assert view.colorbar.getAxis("left").labelText == "weight (clipped at 0.35)"
    assert "0.35" in view.plot.toolTip() and "row 0" in view.plot.toolTip()

    # a map whose largest weight lies outside row 0 is shown whole, unclipped
    causal[0, 0] = 0.2
    view.set_maps({"item layer 1 head 1": causal})
    assert view.colorbar.levels() == pytest.approx((0.0, 0.35))
    assert view.colorbar.getAxis("left").labelText == "weight"
    assert view.plot.toolTip() == ""


def test_a_batch_whose_loss_is_not_a_number_reads_so(qtbot):
    """The worker sends a NaN loss as null (JSON has no NaN); the bar says so."""
    page = run_page(qtbot, epochs=1)
    event = {"event": "batch", "epoch": 2, "batch": 3, "batches": 10, "loss": None}
    page.on_event(1, event)
    assert "loss not a number" in page.progress.format()
    page.on_event(1, event | {"loss": 0.25})
    assert "loss 0.2500" in page.progress.format()
