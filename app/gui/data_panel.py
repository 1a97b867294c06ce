"""The Data page: open interaction logs, map their columns, filter, see the statistics,
and register the dataset in the run store.

Reading and preparing run on the thread pool (:mod:`app.gui.tasks`); every change of a
mapping or a filter recomputes the statistics in the background, after a short pause so
that typing a number does not start one job per keystroke. Any problem the engine
reports (a missing column, an empty file, a bad time value) is shown in a dialog and
the page keeps what it had.

Run alone: ``python -m app.gui.data_panel [DATA]``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from app.gui import dialogs
from app.gui.data_work import Loaded, data_spec, load_data, prepare_data
from app.gui.dataset_stats_view import DatasetStatsView
from app.gui.frame_model import FrameModel
from app.gui.tasks import Task
from engine.data.dataset import ColumnMapping, Dataset, Filters
from engine.data.io import TABLE_SUFFIXES
from engine.experiment import dataset_name

log = logging.getLogger(__name__)

NONE_TIME = "(file order)"
NONE_COLUMN = "(none)"
# the engine's messages name command-line flags; on this page they are these controls
# (longest first, so "--time none" is read before "--time")
FLAG_CONTROLS = (
    ("pass --time none", f"set Time to {NONE_TIME}"),
    ("(--duplicates keep)", "(Duplicates: keep)"),
    ("--name-column", "the Item name box"),
    ("--min-item-freq", "Min item frequency"),
    ("--intent", "the Intent box"),
    ("--items", "item table"),
    ("--user", "the User box"),
    ("--item", "the Item box"),
    ("--time", "the Time box"),
)


def in_page_words(message: str) -> str:
    """An engine message with its command-line flags named as this page's controls."""
    for flag, control in FLAG_CONTROLS:
        message = message.replace(flag, control)
    return message


FILE_FILTER = (
    "Interaction tables (*.csv *.tsv *.txt *.parquet *.pq *.inter);;All files (*)"
)


class DataPanel(QWidget):
    """Open → map → filter → register.

    ``registered`` carries the new dataset id.
    """

    registered = Signal(int)
    loaded = Signal(str)  # path
    prepared = Signal()  # statistics shown for the current mapping and filters

    def __init__(self, store=None, settings=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.settings = settings
        self.loaded_data: Loaded | None = None
        self.dataset: Dataset | None = None
        self.load_task: Task | None = None
        self.prepare_task: Task | None = None
        self._tasks: set[Task] = set()
        self._last_error = ""
        self.setAcceptDrops(True)

        self.restat_timer = QTimer(self, singleShot=True, interval=300)
        self.restat_timer.timeout.connect(self.recompute)
        self._build()
        self._set_loaded_state(False)

    # ---- layout

    def _build(self) -> None:
        self.open_file_button = QPushButton("Open file…")
        self.open_folder_button = QPushButton("Open folder…")
        self.items_button = QPushButton("Item table…")
        self.items_button.setToolTip(
            "Choose a separate table of item attributes, joined on the item column."
        )
        self.path_label = QLabel("Drop a file or folder here, or open one.")
        self.path_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(220)
        self.cancel_button = QPushButton("Cancel")
        self.open_file_button.clicked.connect(self.open_file_dialog)
        self.open_folder_button.clicked.connect(self.open_folder_dialog)
        self.items_button.clicked.connect(self.choose_items_dialog)
        self.cancel_button.clicked.connect(self.cancel_load)
        top = QHBoxLayout()
        for widget in (
            self.open_file_button,
            self.open_folder_button,
            self.items_button,
        ):
            top.addWidget(widget)
        top.addWidget(self.path_label, 1)
        top.addWidget(self.progress)
        top.addWidget(self.cancel_button)

        # preview of the raw tables
        self.table_choice = QComboBox()
        self.table_choice.addItems(["interactions", "items"])
        self.table_choice.currentIndexChanged.connect(self._show_preview)
        self.preview_model = FrameModel()
        self.preview = QTableView()
        self.preview.setObjectName("preview")
        self.preview.setModel(self.preview_model)
        self.preview.setAlternatingRowColors(True)
        self.preview.verticalHeader().setDefaultSectionSize(22)
        self.preview_label = QLabel()
        preview_box = QWidget()
        preview_layout = QVBoxLayout(preview_box)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        head.addWidget(QLabel("Preview:"))
        head.addWidget(self.table_choice)
        head.addWidget(self.preview_label, 1)
        preview_layout.addLayout(head)
        preview_layout.addWidget(self.preview)

        self.stats_view = DatasetStatsView()
        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(preview_box)
        left.addWidget(self.stats_view)
        left.setSizes([260, 440])

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(self._build_controls())
        split.setStretchFactor(0, 1)
        split.setSizes([860, 400])

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)

    def _build_controls(self) -> QWidget:
        # column mapping
        self.user_combo, self.item_combo = QComboBox(), QComboBox()
        self.time_combo, self.intent_combo = QComboBox(), QComboBox()
        self.name_combo = QComboBox()
        mapping_box = QGroupBox("Columns")
        form = QFormLayout(mapping_box)
        form.addRow("User", self.user_combo)
        form.addRow("Item", self.item_combo)
        form.addRow("Time", self.time_combo)
        form.addRow("Intent", self.intent_combo)
        form.addRow("Item name", self.name_combo)
        self.intent_combo.setToolTip(
            "The coarse label of each item (category, seller, genre) that CaFe learns "
            "as a dense sequence; any item attribute can serve."
        )
        self.time_combo.setToolTip("Orders each user's interactions; else file order.")

        # filters
        self.min_item = QSpinBox(minimum=1, maximum=1_000_000)
        self.min_item.setToolTip(
            "Drop items with fewer interactions (the paper's k, Figure 4)."
        )
        self.min_user = QSpinBox(minimum=1, maximum=1_000_000)
        self.min_user.setToolTip("Drop users with fewer interactions (after items).")
        self.duplicates = QComboBox()
        self.duplicates.addItems(["keep", "first", "last"])
        self.duplicates.setToolTip("Repeated (user, item) rows: keep all, first, last.")
        self.tie_break = QComboBox()
        self.tie_break.addItems(["file", "random"])
        self.tie_break.setToolTip(
            "Rows of one user with equal time: keep file order or shuffle them with "
            "the seed."
        )
        self.tie_seed = QSpinBox(minimum=0, maximum=2**31 - 1)
        filter_box = QGroupBox("Filters")
        filters = QFormLayout(filter_box)
        filters.addRow("Min item frequency", self.min_item)
        filters.addRow("Min user length", self.min_user)
        filters.addRow("Duplicates", self.duplicates)
        filters.addRow("Equal times", self.tie_break)
        filters.addRow("Tie seed", self.tie_seed)

        for combo in (
            self.user_combo,
            self.item_combo,
            self.time_combo,
            self.intent_combo,
            self.name_combo,
            self.duplicates,
            self.tie_break,
        ):
            combo.currentIndexChanged.connect(self.schedule_recompute)
        for spin in (self.min_item, self.min_user, self.tie_seed):
            spin.valueChanged.connect(self.schedule_recompute)

        # notes, errors, register
        self.notes = QLabel()
        self.notes.setObjectName("notes")
        self.notes.setWordWrap(True)
        self.notes.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("dataset name")
        self.register_button = QPushButton("Register dataset")
        self.register_button.setObjectName("register")
        self.register_button.clicked.connect(self.register)
        register_box = QGroupBox("Register")
        reg = QFormLayout(register_box)
        reg.addRow("Name", self.name_edit)
        reg.addRow(self.register_button)
        self.hash_label = QLabel()
        self.hash_label.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
        )
        reg.addRow("Content hash", self.hash_label)

        column = QWidget()
        box = QVBoxLayout(column)
        box.addWidget(mapping_box)
        box.addWidget(filter_box)
        box.addWidget(register_box)
        box.addWidget(self.notes)
        box.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(column)
        scroll.setMinimumWidth(340)
        return scroll

    def _set_loaded_state(self, busy: bool) -> None:
        has_data = self.loaded_data is not None
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        for widget in (self.open_file_button, self.open_folder_button):
            widget.setEnabled(not busy)
        self.items_button.setEnabled(has_data and not busy)
        self.register_button.setEnabled(
            has_data
            and not busy
            and self.dataset is not None
            and self.store is not None
        )

    # ---- opening

    def open_file_dialog(self) -> None:
        start = self.settings.last_folder("data") if self.settings else ""
        path, _ = QFileDialog.getOpenFileName(
            self, "Open interactions", start, FILE_FILTER
        )
        if path:
            self.open_path(path)

    def open_folder_dialog(self) -> None:
        start = self.settings.last_folder("data") if self.settings else ""
        path = QFileDialog.getExistingDirectory(self, "Open dataset folder", start)
        if path:
            self.open_path(path)

    def choose_items_dialog(self) -> None:
        if self.loaded_data is None:
            return
        start = str(self.loaded_data.path.parent)
        path, _ = QFileDialog.getOpenFileName(self, "Item table", start, FILE_FILTER)
        if path:
            self.open_path(self.loaded_data.path, items_path=path)

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(
            url.isLocalFile() for url in event.mimeData().urls()
        ):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile():
                self.open_path(url.toLocalFile())
                event.acceptProposedAction()
                return

    def open_path(self, path: str | Path, items_path: str | Path | None = None) -> None:
        """Read ``path`` in the background; the page keeps its data until it works."""
        path = Path(path)
        if path.is_file() and path.suffix.lower() not in TABLE_SUFFIXES:
            log.info("%s has an unusual suffix; trying to read it as text", path)
        if self.settings is not None:
            self.settings.set_last_folder("data", path)
        self.cancel_load()
        task = Task(load_data, path, items_path)
        task.progress.connect(self._on_progress)
        task.done.connect(lambda loaded, t=task: self._on_loaded(t, loaded))
        task.failed.connect(lambda message, t=task: self._on_load_failed(t, message))
        task.cancelled.connect(lambda t=task: self._on_load_cancelled(t))
        self.load_task = self._keep(task)
        self.progress.setValue(0)
        self.progress.setFormat(f"reading {path.name}")
        self._set_loaded_state(True)
        task.start()

    def cancel_load(self) -> None:
        """Stop waiting for the file being read; the thread's result is dropped."""
        if self.load_task is not None:
            self.load_task.cancel()
            self.load_task = None
            self._set_loaded_state(False)

    def _keep(self, task: Task) -> Task:
        self._tasks.add(task)
        for signal in (task.done, task.failed, task.cancelled):
            signal.connect(lambda *_, t=task: self._tasks.discard(t))
        return task

    def _on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 100))
        self.progress.setFormat(f"{text} %p%")

    def _on_loaded(self, task: Task, loaded: Loaded) -> None:
        if task is not self.load_task:
            return
        self.load_task = None
        self.loaded_data, self.dataset = loaded, None
        self._last_error = ""
        raw = loaded.raw
        where = ", ".join(str(p) for p in raw.paths)
        self.path_label.setText(where)
        self.path_label.setToolTip(where)
        self.table_choice.setEnabled(raw.items is not None)
        self.table_choice.setCurrentIndex(0)
        self._show_preview()
        self._fill_mapping(loaded)
        self.name_edit.setText(
            dataset_name(data_spec(loaded, _dummy_mapping(), Filters()))
        )
        self._set_loaded_state(False)
        self.loaded.emit(str(loaded.path))
        if loaded.mapping is None:
            # one message: nothing is prepared until the columns are chosen
            self.notes.setStyleSheet("color: #d0302f;")
            self.notes.setText(in_page_words(loaded.guess_error))
            dialogs.show_error(
                self, "Choose the columns", in_page_words(loaded.guess_error)
            )
            return
        self.recompute()

    def _on_load_failed(self, task: Task, message: str) -> None:
        if task is not self.load_task:
            return
        self.load_task = None
        self._set_loaded_state(False)
        dialogs.show_error(self, "Cannot open the data", in_page_words(message))

    def _on_load_cancelled(self, task: Task) -> None:
        if task is self.load_task:
            self.load_task = None
            self._set_loaded_state(False)

    def _show_preview(self) -> None:
        if self.loaded_data is None:
            self.preview_model.set_frame(None)
            return
        raw = self.loaded_data.raw
        items = self.table_choice.currentIndex() == 1 and raw.items is not None
        frame = raw.items if items else raw.interactions
        path = raw.items_path if items else raw.interactions_path
        self.preview_model.set_frame(frame)
        self.preview_label.setText(
            f"{path.name}: {len(frame):,} rows × {len(frame.columns)} columns"
        )

    # ---- mapping and filters

    def _fill_mapping(self, loaded: Loaded) -> None:
        raw = loaded.raw
        inter = [str(c) for c in raw.interactions.columns]
        items = [str(c) for c in raw.items.columns] if raw.items is not None else []
        guess = loaded.mapping
        attributes = list(dict.fromkeys(items + inter))
        fills = (
            (self.user_combo, inter, guess.user if guess else None),
            (self.item_combo, inter, guess.item if guess else None),
            (self.time_combo, [NONE_TIME, *inter], guess.time if guess else None),
            (
                self.intent_combo,
                [NONE_COLUMN, *attributes],
                guess.intent if guess else None,
            ),
            (
                self.name_combo,
                [NONE_COLUMN, *attributes],
                guess.name if guess else None,
            ),
        )
        for combo, options, chosen in fills:
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(options)
            index = combo.findText(chosen) if chosen else 0
            combo.setCurrentIndex(max(index, 0))
            combo.blockSignals(False)

    def mapping(self) -> ColumnMapping:
        time = self.time_combo.currentText()
        intent = self.intent_combo.currentText()
        name = self.name_combo.currentText()
        item = self.item_combo.currentText()
        raw = self.loaded_data.raw if self.loaded_data else None
        attributes = []
        if raw is not None and raw.items is not None:
            attributes = [str(c) for c in raw.items.columns]
        candidates = tuple(
            c for c in attributes if c not in (item, intent, name, NONE_COLUMN)
        )
        return ColumnMapping(
            user=self.user_combo.currentText(),
            item=item,
            time=None if time == NONE_TIME else time,
            intent=None if intent == NONE_COLUMN else intent,
            intent_candidates=candidates,
            name=None if name == NONE_COLUMN else name,
        )

    def filters(self) -> Filters:
        return Filters(
            duplicates=self.duplicates.currentText(),
            min_item_freq=self.min_item.value(),
            min_user_len=self.min_user.value(),
            tie_break=self.tie_break.currentText(),
            tie_seed=self.tie_seed.value(),
        )

    def set_mapping(self, **columns: str | None) -> None:
        """Choose columns by name (tests and clone use this); None means none."""
        combos = {
            "user": self.user_combo,
            "item": self.item_combo,
            "time": self.time_combo,
            "intent": self.intent_combo,
            "name": self.name_combo,
        }
        for role, column in columns.items():
            combo = combos[role]
            text = column or (NONE_TIME if role == "time" else NONE_COLUMN)
            index = combo.findText(text)
            if index < 0:
                raise ValueError(f"no column {column!r} to map as {role}")
            combo.setCurrentIndex(index)

    def schedule_recompute(self) -> None:
        if self.loaded_data is not None:
            self.dataset = None
            self._set_loaded_state(False)
            self.restat_timer.start()

    def recompute(self) -> None:
        """Prepare the data with the current mapping and filters, in the background."""
        if self.loaded_data is None:
            return
        if self.prepare_task is not None:
            self.prepare_task.cancel()
        name = self.name_edit.text().strip() or self.loaded_data.path.stem
        task = Task(
            prepare_data, self.loaded_data.raw, self.mapping(), self.filters(), name
        )
        task.done.connect(lambda dataset, t=task: self._on_prepared(t, dataset))
        task.failed.connect(lambda message, t=task: self._on_prepare_failed(t, message))
        task.progress.connect(
            lambda fraction, stage, t=task: self._on_prepare_progress(
                t, fraction, stage
            )
        )
        self.prepare_task = self._keep(task)
        self.notes.setStyleSheet("")
        self.notes.setText("computing statistics…")
        task.start()

    def _on_prepare_progress(self, task: Task, fraction: float, stage: str) -> None:
        if task is self.prepare_task:
            self.notes.setText(f"computing statistics: {stage}… {fraction:.0%}")

    def _on_prepared(self, task: Task, dataset: Dataset) -> None:
        if task is not self.prepare_task:
            return
        self.prepare_task = None
        self.dataset = dataset
        self._last_error = ""
        self.stats_view.show_stats(dataset.stats_before, dataset.stats)
        self.hash_label.setText(dataset.hash[:16])
        self.hash_label.setToolTip(dataset.hash)
        notes = dataset.notes or ["No rows were dropped or changed."]
        self.notes.setStyleSheet("")
        self.notes.setText("\n".join(f"• {n}" for n in notes))
        self._set_loaded_state(False)
        self.prepared.emit()

    def _on_prepare_failed(self, task: Task, message: str) -> None:
        if task is not self.prepare_task:
            return
        self.prepare_task = None
        self.dataset = None
        self.hash_label.clear()
        self.notes.setStyleSheet("color: #d0302f;")
        self.notes.setText(in_page_words(message))
        self._set_loaded_state(False)
        # one dialog per distinct problem, not one per click on a spin box
        if message != self._last_error:
            self._last_error = message
            dialogs.show_error(self, "Cannot prepare the data", in_page_words(message))

    # ---- registering

    def current_spec(self):
        return data_spec(self.loaded_data, self.mapping(), self.filters())

    def register(self) -> None:
        if self.dataset is None or self.loaded_data is None or self.store is None:
            return
        spec = self.current_spec().to_dict()
        # the name as it reads now: it may have been edited since the statistics
        name = self.name_edit.text().strip() or self.dataset.name
        task = Task(register_dataset, self.store, spec, self.dataset, name)
        task.done.connect(self._on_registered)
        task.failed.connect(self._on_register_failed)
        self._keep(task)
        self.register_button.setEnabled(False)
        task.start()

    def _on_register_failed(self, message: str) -> None:
        self._set_loaded_state(False)  # the button again, to try once more
        dialogs.show_error(self, "Cannot register", message)

    def _on_registered(self, dataset_id: int) -> None:
        self._set_loaded_state(False)
        self.notes.setText(
            self.notes.text() + f"\n• Registered as dataset {dataset_id}."
        )
        self.registered.emit(dataset_id)


def register_dataset(state, store, spec: dict, dataset: Dataset, name: str) -> int:
    """Store the dataset under ``name`` (idempotent on its content hash and spec, the
    name of an earlier registration updated); return its id."""
    from storage import queries

    state.check()
    return store.transact(queries.register_dataset, spec, dataset, name=name)


def _dummy_mapping() -> ColumnMapping:
    return ColumnMapping(user="", item="")


def main() -> int:
    import sys

    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv)
    panel = DataPanel()
    panel.resize(1280, 800)
    panel.show()
    default = Path(__file__).resolve().parents[3] / "shared" / "data" / "ml-100k"
    panel.open_path(sys.argv[1] if len(sys.argv) > 1 else default)
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
