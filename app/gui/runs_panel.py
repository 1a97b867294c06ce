"""The Runs page: every stored run in a live table, and the selected run's page.

A 1 s timer asks the store reader (its own thread) for the run list and, for the
selected run, its details and curves; attention maps are read again only when the
run's best epoch or status changed, since only then are new ones stored. Runs started
from the command line appear here like any other.

Signals for other pages: ``compareRequested(list)`` with the selected run ids,
``inspectRequested(int)``, and ``cloneRequested(dict)`` with a run's spec.

Run alone: ``python -m app.gui.runs_panel [DB]``.
"""

from __future__ import annotations

import logging

import pandas as pd
from PySide6.QtCore import QItemSelection, QItemSelectionModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.gui import dialogs, exports
from app.gui.run_page import RunPage
from app.gui.runs_model import COLUMN, RUN_ID_ROLE, RunsFilter, RunsModel
from app.gui.store_reader import StoreReader

log = logging.getLogger(__name__)

STATUSES = ("", "queued", "running", "finished", "failed", "cancelled", "interrupted")


class RunsPanel(QWidget):
    compareRequested = Signal(list)
    inspectRequested = Signal(int)
    cloneRequested = Signal(dict)
    runsChanged = Signal(list)  # the latest list of run summaries

    def __init__(
        self,
        store,
        jobs=None,
        queue=None,
        parent: QWidget | None = None,
        interval=1000,
    ):
        super().__init__(parent)
        self.store = store
        self.jobs = jobs
        self.queue = queue
        self.reader = StoreReader(store, self)
        self.reader.runsRead.connect(self._on_runs)
        self.reader.runRead.connect(self._on_run)
        self.maps_key: tuple | None = None
        self.runs: list = []
        self._build()
        if jobs is not None:
            jobs.event.connect(self.page.on_event)
            jobs.exited.connect(lambda *_: self.refresh())
        self.timer = QTimer(self, interval=interval)
        self.timer.timeout.connect(self.refresh)
        self.timer.start()
        self.refresh()

    def _build(self) -> None:
        self.search = QLineEdit()
        self.search.setPlaceholderText("Filter: model, dataset, status, device, id")
        self.search.setClearButtonEnabled(True)
        self.status_filter = QComboBox()
        self.status_filter.addItems([s or "any status" for s in STATUSES])
        self.model_filter = QComboBox()
        self.model_filter.addItem("any model")
        for widget in (self.status_filter, self.model_filter):
            widget.currentIndexChanged.connect(self._apply_filters)
        self.search.textChanged.connect(self._apply_filters)
        self.compare_button = QPushButton("Compare selected")
        self.compare_button.clicked.connect(self.request_compare)
        self.inspect_button = QPushButton("Inspect")
        self.inspect_button.clicked.connect(self.request_inspect)
        self.count_label = QLabel()
        self.page = RunPage()
        self.export_button = exports.export_button(
            self,
            {
                "Runs table as shown (CSV)…": lambda: exports.save_table(
                    self, self.table_frame(), "runs"
                ),
                "Selected run's curves (CSV)…": self._export_curves,
                "Training-loss plot (PNG/SVG)…": lambda: self._export_plot(
                    self.page.loss_plot, "loss"
                ),
                "Validation plot (PNG/SVG)…": lambda: self._export_plot(
                    self.page.metric_plot, "validation"
                ),
                "Attention map (PNG/SVG)…": lambda: self._export_plot(
                    self.page.attention.plot, "attention"
                ),
            },
        )
        bar = QHBoxLayout()
        bar.addWidget(self.search, 2)
        bar.addWidget(self.status_filter)
        bar.addWidget(self.model_filter)
        bar.addWidget(self.count_label, 1)
        bar.addWidget(self.compare_button)
        bar.addWidget(self.inspect_button)
        bar.addWidget(self.export_button)

        self.model = RunsModel(self)
        self.proxy = RunsFilter(self)
        self.proxy.setSourceModel(self.model)
        self.table = QTableView()
        self.table.setObjectName("runsTable")
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COLUMN["ID"], Qt.SortOrder.DescendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(22)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        for column, width in (("ID", 44), ("Status", 80), ("Seed", 44), ("Best", 44)):
            self.table.setColumnWidth(COLUMN[column], width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.doubleClicked.connect(lambda _: self.request_inspect())

        self.page.cancelRequested.connect(self.cancel_run)
        self.page.resumeRequested.connect(self.resume_run)
        self.page.cloneRequested.connect(self.clone_run)
        self.page.deleteRequested.connect(self.delete_run)

        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addLayout(bar)
        top_layout.addWidget(self.table)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.page)
        split.setSizes([260, 500])
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    # ---- polling

    def refresh(self) -> None:
        self.reader.request_runs()
        if self.page.run_id is not None:
            self._request_run(self.page.run_id)

    def _request_run(self, run_id: int) -> None:
        detail = self.page.detail
        if (
            detail is not None
            and detail.status in ("finished", "failed")
            and (self._maps_key(detail) == self.maps_key)
        ):
            # a run that ended changes no more; the last read stays valid
            return
        want_maps = detail is None or self._maps_key(detail) != self.maps_key
        self.reader.request_run(run_id, want_maps)

    @staticmethod
    def _maps_key(detail) -> tuple:
        return (detail.id, detail.best_epoch, detail.status, detail.epochs)

    def _on_runs(self, runs) -> None:
        if runs is None:
            return
        first = not self.runs and bool(runs)
        self.runs = runs
        selected = self.selected_ids()
        self.model.set_runs(runs)
        if set(self.selected_ids()) != set(selected):
            # a new or deleted run resets the model, which drops the selection
            self._reselect(selected)
        if first:
            self.table.resizeColumnsToContents()
            # queued runs have no start time yet: room for one all the same
            started = COLUMN["Started"]
            needed = self.table.fontMetrics().horizontalAdvance("2026-12-31 23:59") + 16
            if self.table.columnWidth(started) < needed:
                self.table.setColumnWidth(started, needed)
        models = sorted({r.model for r in runs})
        known = [
            self.model_filter.itemText(i) for i in range(1, self.model_filter.count())
        ]
        if models != known:
            chosen = self.model_filter.currentText()
            self.model_filter.blockSignals(True)
            self.model_filter.clear()
            self.model_filter.addItems(["any model", *models])
            self.model_filter.setCurrentText(chosen)
            self.model_filter.blockSignals(False)
        self.count_label.setText(f"{self.proxy.rowCount()} of {len(runs)} runs")
        self.runsChanged.emit(runs)

    def _on_run(self, view) -> None:
        if view is None:
            if self.page.run_id is not None and self.page.run_id not in self.run_ids():
                self.page.clear()
            return
        if view.detail.id != self.page.run_id:
            return
        if view.maps is not None:
            # maps are read with the detail; remember which state they belong to
            self.maps_key = self._maps_key(view.detail)
        self.page.show_view(view)

    # ---- export

    def table_frame(self) -> pd.DataFrame:
        """The runs table as shown: the rows the filters keep, in their order."""
        headers = [
            self.proxy.headerData(c, Qt.Orientation.Horizontal)
            for c in range(self.proxy.columnCount())
        ]
        rows = [
            [self.proxy.index(r, c).data() for c in range(len(headers))]
            for r in range(self.proxy.rowCount())
        ]
        return pd.DataFrame(rows, columns=headers)

    def _export_curves(self) -> None:
        curves = self.page.curves
        if curves is None or curves.empty:
            dialogs.show_error(self, "Export curves", "Select a run with epochs first.")
            return
        run_id = self.page.run_id
        exports.save_table(
            self, curves, f"run-{run_id}-curves", record=self._record(run_id, "curves")
        )

    def _export_plot(self, plot, what: str) -> None:
        run_id = self.page.run_id
        if run_id is None:
            dialogs.show_error(self, "Export plot", "Select a run first.")
            return
        exports.save_plot(
            self, plot, f"run-{run_id}-{what}", record=self._record(run_id, what)
        )

    def _record(self, run_id: int, what: str):
        return lambda path: exports.record_in_store(self.store, [run_id], what, path)

    def run_ids(self) -> list[int]:
        return [r.id for r in self.runs]

    # ---- selection

    def selected_ids(self) -> list[int]:
        rows = self.table.selectionModel().selectedRows()
        return [int(self.proxy.data(index, RUN_ID_ROLE)) for index in rows]

    def select_run(self, run_id: int) -> bool:
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self.proxy.data(index, RUN_ID_ROLE) == run_id:
                self.table.selectionModel().select(
                    index,
                    QItemSelectionModel.SelectionFlag.ClearAndSelect
                    | QItemSelectionModel.SelectionFlag.Rows,
                )
                self.table.scrollTo(index)
                return True
        return False

    def _reselect(self, run_ids: list[int]) -> None:
        """Select ``run_ids`` again (those still listed) without changing the page."""
        wanted, selection = set(run_ids), QItemSelection()
        for row in range(self.proxy.rowCount()):
            index = self.proxy.index(row, 0)
            if self.proxy.data(index, RUN_ID_ROLE) in wanted:
                selection.select(index, index)
        model = self.table.selectionModel()
        model.blockSignals(True)
        model.select(
            selection,
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        model.blockSignals(False)
        self.table.viewport().update()
        self._update_actions(self.selected_ids())

    def _update_actions(self, ids: list[int]) -> None:
        self.compare_button.setEnabled(len(ids) >= 2)
        self.inspect_button.setEnabled(len(ids) == 1)

    def _selection_changed(self, *_args) -> None:
        ids = self.selected_ids()
        self._update_actions(ids)
        current = ids[-1] if ids else None
        if current != self.page.run_id:
            self.maps_key = None
            self.page.set_run(current)
            if current is not None:
                self._request_run(current)

    def _apply_filters(self) -> None:
        status = self.status_filter.currentText()
        model = self.model_filter.currentText()
        self.proxy.set_filters(
            self.search.text(),
            "" if status == "any status" else status,
            "" if model == "any model" else model,
        )
        self.count_label.setText(f"{self.proxy.rowCount()} of {len(self.runs)} runs")

    def _context_menu(self, position) -> None:
        ids = self.selected_ids()
        if not ids:
            return
        menu = QMenu(self)
        menu.addAction("Compare selected", self.request_compare).setEnabled(
            len(ids) > 1
        )
        menu.addAction("Inspect", self.request_inspect).setEnabled(len(ids) == 1)
        menu.addSeparator()
        menu.addAction("Cancel", lambda: self.cancel_run(ids[-1]))
        menu.addAction("Resume", lambda: self.resume_run(ids[-1]))
        menu.addAction("Clone", lambda: self.clone_run(ids[-1]))
        menu.addAction("Delete", lambda: self.delete_run(ids[-1]))
        menu.exec(self.table.viewport().mapToGlobal(position))

    def request_compare(self) -> None:
        ids = self.selected_ids()
        if len(ids) >= 2:
            self.compareRequested.emit(sorted(ids))

    def request_inspect(self) -> None:
        ids = self.selected_ids()
        if len(ids) == 1:
            self.inspectRequested.emit(ids[0])

    # ---- actions

    def _summary(self, run_id: int):
        return next((r for r in self.runs if r.id == run_id), None)

    def cancel_run(self, run_id: int) -> None:
        from storage import queries

        with self.store.session() as session:
            detail = queries.get_run(session, run_id)
        if detail.status == "queued" and not (
            self.jobs and self.jobs.is_running(run_id)
        ):
            # not started yet: off the queue, and cancelled (resume starts it)
            if self.queue is not None:
                self.queue.withdraw(run_id)
            self.store.transact(queries.set_status, run_id, "cancelled")
        elif self.jobs is None or not self.jobs.cancel(run_id, detail.pid, detail.host):
            dialogs.show_error(
                self,
                "Cannot cancel",
                f"Run {run_id} is {detail.status} and no worker process of it was "
                "found to stop.",
            )
        self.refresh()

    def resume_run(self, run_id: int) -> None:
        """Resume through the queue: at once when a worker slot is free."""
        if self.queue is None or self.jobs.is_running(run_id):
            return
        self.queue.submit(run_id, resume=True)
        self.refresh()

    def clone_run(self, run_id: int) -> None:
        from storage import queries

        with self.store.session() as session:
            detail = queries.get_run(session, run_id)
        self.cloneRequested.emit({"spec": detail.spec, "dataset_id": detail.dataset_id})

    def delete_run(self, run_id: int) -> None:
        from storage import queries

        run = self._summary(run_id)
        if run is not None and run.status in ("queued", "running"):
            dialogs.show_error(
                self, "Cannot delete", f"Run {run_id} is {run.status}; cancel it first."
            )
            return
        if not dialogs.confirm(
            self,
            "Delete run",
            f"Delete run {run_id} with its metrics, checkpoints and files? "
            "This cannot be undone.",
        ):
            return
        try:
            self.store.transact(queries.delete_run, run_id)
        except Exception as exc:  # show what the store said; keep the window alive
            dialogs.show_error(self, "Cannot delete", str(exc))
            return
        if self.page.run_id == run_id:
            self.page.clear()
        self.refresh()

    def shutdown(self) -> None:
        self.timer.stop()
        self.reader.stop()


def main() -> int:
    import sys

    from PySide6.QtWidgets import QApplication

    from app.gui.jobs import WorkerJobs
    from app.gui.run_queue import RunQueue
    from storage import open_store

    app = QApplication(sys.argv)
    store = open_store(sys.argv[1] if len(sys.argv) > 1 else None)
    jobs = WorkerJobs(store)
    panel = RunsPanel(store, jobs, RunQueue(jobs))
    panel.resize(1280, 800)
    panel.show()
    code = app.exec()
    panel.shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
