"""A read-only Qt table model over a pandas DataFrame, for previews of any size.

The view asks only for the cells it paints, so a million-row table costs nothing until
scrolled; each cell is formatted on demand from the column's NumPy array (an ``iloc``
per cell would be 50x slower).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

Index = QModelIndex | QPersistentModelIndex


class FrameModel(QAbstractTableModel):
    def __init__(self, frame: pd.DataFrame | None = None, parent=None):
        super().__init__(parent)
        self._columns: list[np.ndarray] = []
        self._names: list[str] = []
        self._rows = 0
        # column name -> header tooltip
        self.header_tips: dict[str, str] = {}
        if frame is not None:
            self.set_frame(frame)

    def set_frame(self, frame: pd.DataFrame | None) -> None:
        self.beginResetModel()
        if frame is None:
            self._columns, self._names, self._rows = [], [], 0
        else:
            self._columns = [frame[c].to_numpy() for c in frame.columns]
            self._names = [str(c) for c in frame.columns]
            self._rows = len(frame)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self._rows

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._columns)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if role != Qt.ItemDataRole.DisplayRole or not index.isValid():
            return None
        return format_cell(self._columns[index.column()][index.row()])

    def headerData(
        self,
        section: int,
        orientation: Qt.Orientation,
        role: int = Qt.ItemDataRole.DisplayRole,
    ):
        horizontal = orientation == Qt.Orientation.Horizontal
        if role == Qt.ItemDataRole.ToolTipRole and horizontal:
            name = self._names[section] if section < len(self._names) else None
            return self.header_tips.get(name)
        if role != Qt.ItemDataRole.DisplayRole:
            return None
        if horizontal:
            return self._names[section] if section < len(self._names) else None
        # rows are numbered as in the file (row 1 is the first after the header)
        return str(section + 1)


def format_cell(value) -> str:
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    return str(value)
