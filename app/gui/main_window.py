"""The workbench's main window: pages in tabs, menus, toolbar, status bar, settings.

Pages are added with :meth:`MainWindow.add_page`; the Data, Train and Runs pages are
built here, further views (compare, inspect) add themselves the same way. Closing the
window with runs in flight asks whether to keep them running or cancel them.
"""

from __future__ import annotations

import logging
import platform
from importlib import metadata

from PySide6.QtCore import QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QMainWindow, QMessageBox, QTabWidget, QWidget

from app.gui import dialogs, exports
from app.gui.analysis_pages import add_analysis_pages
from app.gui.data_panel import DataPanel
from app.gui.jobs import WorkerJobs
from app.gui.run_queue import RunQueue, default_limit
from app.gui.runs_panel import RunsPanel
from app.gui.settings import Settings
from app.gui.theme import app_icon, style_plot
from app.gui.train_panel import TrainPanel

log = logging.getLogger(__name__)

LIBRARIES = (
    "torch",
    "numpy",
    "pandas",
    "PySide6-Essentials",
    "pyqtgraph",
    "SQLAlchemy",
)


class MainWindow(QMainWindow):
    def __init__(
        self, store, settings: Settings | None = None, theme=None, threads=None
    ):
        super().__init__()
        self.store = store
        self.settings = settings or Settings()
        exports.settings = self.settings  # save dialogs open where the last one saved
        self.theme = theme
        self.setWindowTitle("CaFe Workbench")
        self.setWindowIcon(app_icon())
        threads = threads or self.settings.worker_threads()
        self.jobs = WorkerJobs(store, threads=threads, parent=self)
        parallel = self.settings.parallel_runs() or default_limit(threads)
        self.queue = RunQueue(self.jobs, parallel, parent=self)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.setAcceptDrops(True)
        self.data_panel = DataPanel(store, self.settings)
        self.train_panel = TrainPanel(store, self.jobs, self.queue)
        self.runs_panel = RunsPanel(store, self.jobs, self.queue)
        self.add_page(self.data_panel, "Data")
        self.add_page(self.train_panel, "Train")
        self.add_page(self.runs_panel, "Runs")
        self.analysis = add_analysis_pages(self)

        self.data_panel.registered.connect(self._on_registered)
        self.train_panel.launched.connect(self._on_launched)
        self.train_panel.workersChanged.connect(self.settings.set_workers)
        self.queue.failed.connect(self._worker_failed)
        self.runs_panel.cloneRequested.connect(self._on_clone)
        self.runs_panel.runsChanged.connect(self._update_status)
        self._build_actions()
        self._build_status()
        if theme is not None:
            theme.changed.connect(self._restyle)
            self._restyle(theme.dark)
        self._restore()

    # ---- pages

    def add_page(self, widget: QWidget, title: str) -> int:
        """Add a page as a tab; returns its index. Ctrl+<n> shows the n-th page."""
        index = self.tabs.addTab(widget, title)
        if index < 9 and hasattr(self, "view_menu"):
            self._page_action(index, title)
        return index

    def show_page(self, widget: QWidget) -> None:
        self.tabs.setCurrentWidget(widget)

    def _page_action(self, index: int, title: str) -> None:
        action = QAction(f"&{title}", self)
        action.setShortcut(QKeySequence(f"Ctrl+{index + 1}"))
        action.triggered.connect(lambda: self.tabs.setCurrentIndex(index))
        self.view_menu.insertAction(self.view_separator, action)

    # ---- menus, toolbar, status

    def _action(self, text, slot, shortcut=None, tip="") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        action.setToolTip(f"{tip} ({action.shortcut().toString()})" if tip else text)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        std = QKeySequence.StandardKey
        self.open_file_action = self._action(
            "&Open file…",
            self._open_file,
            std.Open,
            "Open an interaction table (CSV, TSV, Parquet, RecBole .inter)",
        )
        self.open_folder_action = self._action(
            "Open &folder…",
            self._open_folder,
            "Ctrl+Shift+O",
            "Open a dataset folder",
        )
        self.register_action = self._action(
            "&Register dataset", self.data_panel.register, "Ctrl+R", "Register the data"
        )
        self.launch_action = self._action(
            "&Launch run", self._launch, "Ctrl+Return", "Launch the run set up in Train"
        )
        self.cancel_action = self._action(
            "&Cancel run", self._cancel_selected, "Ctrl+.", "Cancel the selected run"
        )
        self.refresh_action = self._action(
            "Re&fresh", self.runs_panel.refresh, std.Refresh, "Read the run store now"
        )
        self.quit_action = self._action("&Quit", self.close, std.Quit)
        self.about_action = self._action("&About CaFe Workbench", self.show_about)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        for action in (self.open_file_action, self.open_folder_action):
            file_menu.addAction(action)
        file_menu.addAction(self.register_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        run_menu = menu.addMenu("&Run")
        for action in (self.launch_action, self.cancel_action, self.refresh_action):
            run_menu.addAction(action)
        self.view_menu = menu.addMenu("&View")
        self.view_separator = self.view_menu.addSeparator()
        theme_menu = self.view_menu.addMenu("&Theme")
        group = QActionGroup(self)
        for choice in ("system", "light", "dark"):
            action = QAction(choice.capitalize(), self, checkable=True)
            action.setChecked(self.settings.theme() == choice)
            action.triggered.connect(lambda _=False, c=choice: self.set_theme(c))
            group.addAction(action)
            theme_menu.addAction(action)
        for index in range(self.tabs.count()):
            self._page_action(index, self.tabs.tabText(index))
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.about_action)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        for action in (
            self.open_file_action,
            self.open_folder_action,
            self.register_action,
            self.launch_action,
            self.cancel_action,
            self.refresh_action,
        ):
            toolbar.addAction(action)

    def _build_status(self) -> None:
        self.runs_label = QLabel()
        # a long database path must not set the window's minimum width
        self.db_label = QLabel(elide_middle(f"store: {self.store.url}", 70))
        self.db_label.setToolTip(str(self.store.url))
        self.statusBar().addWidget(self.runs_label)
        self.statusBar().addPermanentWidget(self.db_label)

    def _update_status(self, runs: list) -> None:
        counts: dict[str, int] = {}
        for run in runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        text = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self.runs_label.setText(f"{len(runs)} runs ({text})" if runs else "no runs yet")

    def set_theme(self, choice: str) -> None:
        self.settings.set_theme(choice)
        if self.theme is not None:
            self.theme.apply(choice)

    def _restyle(self, dark: bool) -> None:
        import pyqtgraph as pg

        for plot in self.findChildren(pg.PlotWidget):
            style_plot(plot, dark)

    # ---- actions

    def _open_file(self) -> None:
        self.show_page(self.data_panel)
        self.data_panel.open_file_dialog()

    def _open_folder(self) -> None:
        self.show_page(self.data_panel)
        self.data_panel.open_folder_dialog()

    def _launch(self) -> None:
        self.show_page(self.train_panel)
        self.train_panel.launch()

    def _cancel_selected(self) -> None:
        ids = self.runs_panel.selected_ids()
        if ids:
            self.runs_panel.cancel_run(ids[-1])

    def _on_registered(self, dataset_id: int) -> None:
        self.train_panel.refresh_datasets(select=dataset_id)
        self.statusBar().showMessage(f"Registered dataset {dataset_id}", 5000)

    def _on_launched(self, ids: list) -> None:
        self.show_page(self.runs_panel)
        self.runs_panel.refresh()
        # select the new run once the table has read it
        QTimer.singleShot(1200, lambda: self.runs_panel.select_run(ids[0]))

    def _worker_failed(self, run_id: int, why: str) -> None:
        from storage import queries

        text = f"the worker process did not start: {why}"
        self.store.transact(queries.set_status, run_id, "failed", error=text)
        dialogs.show_error(self, "Cannot start the worker", f"Run {run_id}: {why}")

    def _on_clone(self, payload: dict) -> None:
        self.train_panel.prefill(payload["spec"], payload.get("dataset_id"))
        self.show_page(self.train_panel)

    def show_about(self) -> None:
        QMessageBox.about(self, "About CaFe Workbench", about_text(self.store))

    # ---- geometry and closing

    def _restore(self) -> None:
        geometry = self.settings.geometry()
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1280, 800)
        state = self.settings.window_state()
        if state is not None:
            self.restoreState(state)
        page = self.settings.page()
        if 0 <= page < self.tabs.count():
            self.tabs.setCurrentIndex(page)

    # a file or folder dropped anywhere on the window opens on the Data page
    def dragEnterEvent(self, event) -> None:
        self.data_panel.dragEnterEvent(event)

    def dropEvent(self, event) -> None:
        self.show_page(self.data_panel)
        self.data_panel.dropEvent(event)

    def closeEvent(self, event) -> None:
        running, waiting = self.jobs.running(), self.queue.waiting_ids()
        if running or waiting:
            choice = dialogs.ask_close_with_runs(self, len(running), len(waiting))
            if choice == "stay":
                event.ignore()
                return
            self._cancel_waiting(waiting)
            if choice == "cancel":
                self.jobs.cancel_all()
            else:
                self.jobs.release()
        self.settings.set_geometry(self.saveGeometry())
        self.settings.set_window_state(self.saveState())
        self.settings.set_page(self.tabs.currentIndex())
        self.settings.sync()
        self.runs_panel.shutdown()
        event.accept()

    def _cancel_waiting(self, waiting: list[int]) -> None:
        """Runs that never got a worker stay in the store as cancelled (resumable)."""
        from storage import queries

        for run_id in waiting:
            self.queue.withdraw(run_id)
            self.store.transact(
                queries.set_status,
                run_id,
                "cancelled",
                error="the window was closed before the run started; resume it",
            )


def elide_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    half = (width - 1) // 2
    return text[:half] + "…" + text[-half:]


def about_text(store) -> str:
    versions = [f"Python {platform.python_version()}"]
    for package in LIBRARIES:
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (not installed)")
    return (
        "<h3>CaFe Workbench</h3>"
        "<p>Train and compare sparse sequential recommenders: CaFe (Li et al., "
        "“Coarse-to-Fine Sparse Sequential Recommendation”, SIGIR 2022) and its "
        "baselines.</p>"
        f"<p><b>Run store:</b> {store.url}<br><b>Files:</b> {store.data_dir}</p>"
        f"<p>{'<br>'.join(versions)}</p>"
    )
