"""The table model of all runs: one row per stored run, refreshed in place.

Each poll hands over the full list of run summaries; rows whose values changed emit
``dataChanged`` only, so the view keeps its selection, scroll position and sort while
a run trains. New or deleted runs reset the model once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
)
from PySide6.QtGui import QColor

from app.progress import format_seconds

Index = QModelIndex | QPersistentModelIndex
SORT_ROLE = Qt.ItemDataRole.UserRole
RUN_ID_ROLE = Qt.ItemDataRole.UserRole + 1

STATUS_COLOURS = {
    "running": "#2f7fd0",
    "queued": "#8a8a8a",
    "finished": "#2e9b4f",
    "failed": "#d0302f",
    "cancelled": "#c08000",
    "interrupted": "#c08000",
}


def _epochs(run) -> str:
    return f"{run.epochs}/{run.max_epochs}" if run.max_epochs else str(run.epochs)


def _metric(which: str, name: str):
    def get(run):
        return (getattr(run, which) or {}).get(name)

    return get


def _started(run):
    """When a worker took the run; a queued run has not started (its tooltip says
    when it was queued)."""
    return run.started


# (header, value getter, display format); None formats as empty
COLUMNS: list[tuple[str, Any, str]] = [
    ("ID", lambda r: r.id, "{}"),
    ("Status", lambda r: r.status, "{}"),
    ("Model", lambda r: r.model, "{}"),
    ("Dataset", lambda r: r.dataset, "{}"),
    ("Protocol", lambda r: r.protocol, "{}"),
    ("Seed", lambda r: r.seed, "{}"),
    ("Epochs", _epochs, "{}"),
    ("Best", lambda r: r.best_epoch, "{}"),
    ("val NDCG@5", _metric("best", "NDCG@5"), "{:.4f}"),
    ("val HR@10", _metric("best", "HR@10"), "{:.4f}"),
    ("test NDCG@5", _metric("test", "NDCG@5"), "{:.4f}"),
    ("test HR@10", _metric("test", "HR@10"), "{:.4f}"),
    ("Device", lambda r: r.device, "{}"),
    ("Started", _started, "{}"),
    ("Duration", lambda r: r.seconds, "{}"),
]
COLUMN = {header: i for i, (header, _, _) in enumerate(COLUMNS)}


def display(column: int, run) -> str:
    header, getter, fmt = COLUMNS[column]
    value = getter(run)
    if value is None:
        return ""
    if header == "Duration":
        return format_seconds(value)
    if isinstance(value, datetime):
        return local_time(value).strftime("%Y-%m-%d %H:%M")
    return fmt.format(value)


def local_time(value: datetime) -> datetime:
    """The store keeps naive UTC times; people read their own clock."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone()


def sort_key(column: int, run):
    _, getter, _ = COLUMNS[column]
    value = getter(run)
    if COLUMNS[column][0] == "Epochs":
        return run.epochs
    if value is None:
        # missing numbers sort below every real one
        return float("-inf") if column >= COLUMN["Best"] else ""
    if isinstance(value, datetime):
        return local_time(value).timestamp()
    return value


class RunsModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.runs: list = []

    def set_runs(self, runs: list) -> None:
        if [r.id for r in runs] != [r.id for r in self.runs]:
            self.beginResetModel()
            self.runs = list(runs)
            self.endResetModel()
            return
        for row, (old, new) in enumerate(zip(self.runs, runs)):
            if old != new:
                self.runs[row] = new
                self.dataChanged.emit(
                    self.index(row, 0), self.index(row, len(COLUMNS) - 1)
                )

    def run_at(self, row: int):
        return self.runs[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.runs)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        run = self.runs[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return display(column, run)
        if role == SORT_ROLE:
            return sort_key(column, run)
        if role == RUN_ID_ROLE:
            return run.id
        if role == Qt.ItemDataRole.ForegroundRole and column == COLUMN["Status"]:
            return QColor(STATUS_COLOURS.get(run.status, "#808080"))
        if role == Qt.ItemDataRole.ToolTipRole and run.error:
            return run.error[-600:]
        if role == Qt.ItemDataRole.ToolTipRole and column == COLUMN["Started"]:
            created = run.created
            return (
                f"queued {local_time(created):%Y-%m-%d %H:%M:%S}" if created else None
            )
        if role == Qt.ItemDataRole.TextAlignmentRole and column >= COLUMN["Seed"]:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):
        if role == Qt.ItemDataRole.DisplayRole and (
            orientation == Qt.Orientation.Horizontal
        ):
            return COLUMNS[section][0]
        return None


class RunsFilter(QSortFilterProxyModel):
    """Sorts by raw values and keeps the rows matching text, status and model."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setSortRole(SORT_ROLE)
        self.text = ""
        self.status = ""
        self.model_name = ""

    def set_filters(self, text: str = "", status: str = "", model: str = "") -> None:
        self.text, self.status, self.model_name = text.strip().lower(), status, model
        self.invalidate()

    def filterAcceptsRow(self, row: int, parent) -> bool:
        run = self.sourceModel().run_at(row)
        if self.status and run.status != self.status:
            return False
        if self.model_name and run.model != self.model_name:
            return False
        if self.text:
            haystack = " ".join(
                str(v) for v in (run.id, run.model, run.dataset, run.status, run.device)
            ).lower()
            return self.text in haystack
        return True

    def lessThan(self, left, right) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)
