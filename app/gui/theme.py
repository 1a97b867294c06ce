"""Light and dark themes that follow the system unless the user picks one.

Qt's Fusion style draws from the application palette; the scheme comes from the
platform (``QStyleHints.colorScheme``) and changes with it at run time. pyqtgraph plots
do not read the palette, so :func:`style_plot` colours them to match and every plot
widget is restyled when the scheme changes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

log = logging.getLogger(__name__)

ICON = Path(__file__).resolve().parents[2] / "assets" / "cafe-workbench.svg"

# plot colours that read on both backgrounds (Okabe-Ito, colour-blind safe)
SERIES = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")

# past seven categories (MovieLens has 19 genres): 13 more of clearly different hue or
# lightness, so that neighbours in the list never look alike
MORE_CATEGORIES = (
    "#7B3294", "#8C564B", "#7F7F7F", "#E7298A", "#66A61E", "#1A1A80", "#B8860B",
    "#17BECF", "#A50F15", "#BCBD22", "#00441B", "#F4A582", "#9E9AC8",
)  # fmt: skip


def category_colour(index: int) -> QColor:
    """Colour of category ``index`` (0-based): the 20 listed colours, then hues a
    golden angle apart so that consecutive categories still differ."""
    listed = SERIES + MORE_CATEGORIES
    if index < len(listed):
        return QColor(listed[index])
    hue = (index * 0.381966) % 1.0
    lightness = (0.38, 0.55, 0.7)[index % 3]
    return QColor.fromHslF(hue, 0.75, lightness)


def dark_palette() -> QPalette:
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2e",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f22",
        QPalette.ColorRole.AlternateBase: "#2a2a2e",
        QPalette.ColorRole.ToolTipBase: "#3a3a3e",
        QPalette.ColorRole.ToolTipText: "#f0f0f0",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#35353a",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6060",
        QPalette.ColorRole.Highlight: "#2f6fb0",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#6cb4ff",
        QPalette.ColorRole.PlaceholderText: "#8a8a8a",
    }
    for role, colour in roles.items():
        palette.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#808080"))
    return palette


def palette_is_dark() -> bool:
    """Whether the application's current palette is a dark one."""
    app = QApplication.instance()
    if app is None:
        return False
    return app.palette().color(QPalette.ColorRole.Window).lightness() < 128


def system_is_dark() -> bool:
    scheme = QGuiApplication.styleHints().colorScheme()
    return scheme == Qt.ColorScheme.Dark


class Theme(QObject):
    """Applies "system", "light" or "dark" and tells plots when colours change."""

    changed = Signal(bool)  # dark?

    def __init__(self, app: QApplication, choice: str = "system"):
        super().__init__(app)
        self.app = app
        self.choice = choice
        self.light = QPalette(app.style().standardPalette())
        app.styleHints().colorSchemeChanged.connect(self._system_changed)
        self.apply(choice)

    @property
    def dark(self) -> bool:
        if self.choice == "system":
            return system_is_dark()
        return self.choice == "dark"

    def apply(self, choice: str) -> None:
        self.choice = choice
        dark = self.dark
        self.app.setPalette(dark_palette() if dark else self.light)
        pg.setConfigOptions(
            background=plot_background(dark), foreground=plot_foreground(dark)
        )
        log.debug("theme %s (dark=%s)", choice, dark)
        self.changed.emit(dark)

    def _system_changed(self, _scheme) -> None:
        if self.choice == "system":
            self.apply("system")


def plot_background(dark: bool) -> str:
    return "#1f1f22" if dark else "#ffffff"


def plot_foreground(dark: bool) -> str:
    return "#d0d0d0" if dark else "#303030"


def muted_foreground(dark: bool | None = None) -> str:
    """Grey for secondary text drawn in plots (labels, "no users"), readable on the
    theme's background; ``None``: the theme now in use."""
    dark = palette_is_dark() if dark is None else dark
    return "#a0a0a0" if dark else "#606060"


def style_plot(plot: pg.PlotWidget, dark: bool) -> None:
    """Recolour one plot's background and every text in it for the current scheme.

    pyqtgraph fixes a text's colour when the text is set, so a scheme change must
    reach each piece: every axis (its line, ticks, tick text and label) of the plot
    and of any colour bar, titles, legend labels and neutral grey text items.
    """
    plot.setBackground(plot_background(dark))
    colour = QColor(plot_foreground(dark))
    for item in plot.scene().items():
        restyle_item(item, colour)


def restyle_item(item, colour: QColor) -> None:
    """Give one pyqtgraph item's text (and an axis its line) the colour ``colour``."""
    if isinstance(item, pg.AxisItem):
        item.setPen(colour)
        item.setTextPen(colour)
    elif isinstance(item, pg.LegendItem):
        # labels added later take this colour; the present ones are LabelItems too
        item.setLabelTextColor(colour)
    elif isinstance(item, pg.LabelItem):
        # titles and legend labels: the colour is baked into the label's HTML when
        # the text is set, so set the text again
        item.setAttr("color", colour)
        if item.text:
            item.setText(item.text)
    elif isinstance(item, pg.TextItem) and is_neutral(item.color):
        # grey text is plain text and follows the scheme; coloured text keeps its
        # colour, which means something (the held-out item, say)
        item.setColor(colour)


def is_neutral(colour: QColor) -> bool:
    """Whether ``colour`` is a grey (black and white included), not a hue."""
    return colour.hslSaturationF() < 0.1


def apply_fusion(app: QApplication) -> None:
    """Fusion looks the same on every platform and honours the palette fully."""
    app.setStyle("Fusion")


def app_icon() -> QIcon:
    """The workbench's icon (``assets/cafe-workbench.svg``); empty if it is missing."""
    if not ICON.is_file():
        log.warning("icon %s is missing", ICON)
        return QIcon()
    return QIcon(str(ICON))
