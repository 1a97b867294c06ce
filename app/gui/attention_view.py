"""Attention heatmaps of one run: pick a layer and a head, see its average map.

Each map is the attention weight from query position i (row) to key position j
(column), averaged over users, as in the CaFe paper's Figure 2; the first 20 positions
are shown by default, like the paper. Keys come from the store as
``"<encoder> layer <n> head <m>"``.

Run alone: ``python -m app.gui.attention_view`` shows random causal maps.
"""

from __future__ import annotations

import re

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.plots import make_plot

KEY = re.compile(r"^(?P<layer>.*?)\s*head\s*(?P<head>\d+)$")


def split_key(key: str) -> tuple[str, str]:
    match = KEY.match(key)
    if match is None:
        return key, "0"
    return match["layer"].strip() or key, match["head"]


class AttentionView(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.maps: dict[str, np.ndarray] = {}
        self.layers: dict[str, dict[str, str]] = {}  # layer -> head -> key
        self.layer_combo, self.head_combo = QComboBox(), QComboBox()
        self.layer_combo.setObjectName("layer")
        self.head_combo.setObjectName("head")
        # layer names ("intent layer 2") stay whole when the view is narrow
        self.layer_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToContents
        )
        self.positions = QSpinBox(minimum=2, maximum=512, value=20)
        self.positions.setToolTip("Show the first N positions (the paper shows 20).")
        self.layer_combo.currentTextChanged.connect(self._fill_heads)
        self.head_combo.currentTextChanged.connect(self.refresh)
        self.positions.valueChanged.connect(self.refresh)
        self.caption = QLabel(
            "No attention maps yet: they are stored at each new best."
        )

        self.plot = make_plot("Average attention", "key position j", "query position i")
        self.plot.getPlotItem().invertY(True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.plot.addItem(self.image)
        self.colorbar = pg.ColorBarItem(
            values=(0, 1), colorMap=pg.colormap.get("viridis"), label="weight"
        )
        self.colorbar.setImageItem(self.image, insert_in=self.plot.getPlotItem())

        bar = QHBoxLayout()
        for label, widget in (
            ("Layer", self.layer_combo),
            ("Head", self.head_combo),
            ("Positions", self.positions),
        ):
            bar.addWidget(QLabel(label))
            bar.addWidget(widget)
            bar.addSpacing(8)
        bar.addWidget(self.caption, 1)
        # the selectors keep their own width, next to their labels, when the caption
        # is hidden too
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bar)
        layout.addWidget(self.plot, 1)

    def set_maps(self, maps: dict[str, np.ndarray]) -> None:
        """Replace the maps, keeping the chosen layer and head where they exist."""
        layer, head = self.layer_combo.currentText(), self.head_combo.currentText()
        self.maps = dict(maps)
        self.layers = {}
        for key in self.maps:
            name, number = split_key(key)
            self.layers.setdefault(name, {})[number] = key
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(list(self.layers))
        if layer in self.layers:
            self.layer_combo.setCurrentText(layer)
        self.layer_combo.blockSignals(False)
        self._fill_heads(keep=head)

    def _fill_heads(self, _layer: str = "", keep: str = "") -> None:
        heads = self.layers.get(self.layer_combo.currentText(), {})
        self.head_combo.blockSignals(True)
        self.head_combo.clear()
        self.head_combo.addItems(list(heads))
        if keep in heads:
            self.head_combo.setCurrentText(keep)
        self.head_combo.blockSignals(False)
        self.refresh()

    def current_key(self) -> str | None:
        heads = self.layers.get(self.layer_combo.currentText(), {})
        return heads.get(self.head_combo.currentText())

    def refresh(self) -> None:
        key = self.current_key()
        if key is None:
            self.image.clear()
            self._levels(np.zeros((0, 0)))
            self.caption.setVisible(True)
            return
        self.caption.setVisible(False)
        n = self.positions.value()
        # (L, L) -> (n, n): the first n query and key positions
        shown = np.asarray(self.maps[key], dtype=np.float32)[:n, :n]
        self.image.setImage(shown, autoLevels=False)
        self._levels(shown)
        self.plot.getPlotItem().setTitle(f"Average attention: {key}", size="10pt")
        self.plot.getPlotItem().setRange(
            xRange=(0, shown.shape[1]), yRange=(0, shown.shape[0]), padding=0.02
        )

    def _levels(self, shown: np.ndarray) -> None:
        """Colour range 0 to :func:`colour_top`; the colour bar says when it clips."""
        top = colour_top(shown)
        peak = float(shown.max()) if shown.size else 0.0
        self.colorbar.setLevels((0.0, top))
        label, tip = "weight", ""
        if peak > top:
            label = f"weight (clipped at {top:.3g})"
            tip = (
                f"Colours run from 0 to {top:.3g}, the largest weight outside query "
                f"row 0. Row 0 reaches {peak:.3g} (the first position can attend "
                "only to itself) and is drawn in the top colour."
            )
        self.colorbar.getAxis("left").setLabel(label)
        self.plot.setToolTip(tip)


def colour_top(shown: np.ndarray) -> float:
    """Top of a map's colour range: its largest weight outside query row 0.

    Under the causal mask the first position attends only to itself, so cell (0, 0)
    is 1 in every map; a range up to it would leave the rest of the map dark.
    """
    rest = shown[1:] if len(shown) > 1 else shown
    top = float(rest.max()) if rest.size else 1.0
    return max(top, 1e-6)


def main() -> int:
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    rng = np.random.default_rng(0)
    maps = {}
    for layer in (1, 2):
        for head in (1, 2):
            raw = np.tril(rng.random((50, 50)))
            maps[f"item layer {layer} head {head}"] = raw / raw.sum(1, keepdims=True)
    view = AttentionView()
    view.set_maps(maps)
    view.resize(700, 600)
    view.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
