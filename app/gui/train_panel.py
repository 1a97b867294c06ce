"""The Train page: choose a registered dataset and a model, set the hyperparameters,
and launch one run or several seeds.

The hyperparameter forms are generated from the model's config dataclass and from
:class:`engine.training.TrainConfig` (:mod:`app.gui.config_form`), so a new model or
setting appears here without GUI code. Launching validates both configs through the
same ``from_dict`` the worker uses and stores one queued run per seed; the run queue
(:mod:`app.gui.run_queue`) starts a worker process for each as cores come free. This
process never trains.

Run alone: ``python -m app.gui.train_panel [DB]``.
"""

from __future__ import annotations

import logging
import os
import sys

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui import dialogs
from app.gui.config_form import ConfigForm
from engine.device import available_devices
from engine.errors import CafeError
from engine.experiment import DataSpec, RunSpec
from engine.models import REGISTRY
from engine.training import TrainConfig

log = logging.getLogger(__name__)

# the paper's model first, the baselines after
MODEL_ORDER = ("cafe", "sasrec")


def model_names() -> list[str]:
    first = [m for m in MODEL_ORDER if m in REGISTRY]
    return first + sorted(m for m in REGISTRY if m not in first)


class TrainPanel(QWidget):
    launched = Signal(list)  # ids of the runs just queued
    workersChanged = Signal(int, int)  # torch threads per run, runs at once

    def __init__(self, store, jobs=None, queue=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.jobs = jobs
        self.queue = queue
        self.datasets: list = []
        self.model_form: ConfigForm | None = None
        self._build()
        self.refresh_datasets()

    def _build(self) -> None:
        self.dataset_combo = QComboBox()
        self.dataset_combo.setObjectName("dataset")
        self.dataset_combo.setMinimumWidth(320)
        self.dataset_combo.currentIndexChanged.connect(self._show_dataset)
        self.dataset_info = QLabel()
        self.dataset_info.setWordWrap(True)
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(self.refresh_datasets)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("model")
        self.model_combo.addItems(model_names())
        self.model_combo.currentTextChanged.connect(self._model_changed)
        self.model_doc = QLabel()
        self.model_doc.setWordWrap(True)
        self.seeds = QSpinBox(minimum=1, maximum=50, value=1)
        self.seeds.setObjectName("seeds")
        self.seeds.setToolTip(
            "Queue this many runs with seeds seed, seed+1, …; "
            + "each gets its own worker."
        )
        self.launch_button = QPushButton("Launch")
        self.launch_button.setObjectName("launch")
        self.launch_button.setDefault(True)
        self.launch_button.clicked.connect(self.launch)
        self.reset_button = QPushButton("Defaults")
        self.reset_button.setToolTip("Reset every setting to the model's defaults.")
        self.reset_button.clicked.connect(self._reset)
        self.status = QLabel()
        self.status.setWordWrap(True)
        cores = os.cpu_count() or 1
        self.threads = QSpinBox(minimum=1, maximum=max(cores, 1))
        self.threads.setObjectName("threads")
        self.threads.setToolTip(
            "Torch CPU threads of each worker. On a CPU, threads beyond the free "
            "cores make every run slower."
        )
        self.parallel = QSpinBox(minimum=1, maximum=max(cores, 8))
        self.parallel.setObjectName("parallel")
        self.parallel.setToolTip(
            "Workers training at once; further runs wait in the queue (status "
            "'queued') and start as workers finish."
        )
        if self.jobs is not None:
            self.threads.setValue(self.jobs.threads)
        if self.queue is not None:
            self.parallel.setValue(self.queue.limit)
        self.threads.valueChanged.connect(self._workers_changed)
        self.parallel.valueChanged.connect(self._workers_changed)

        choose = QGroupBox("What to train")
        form = QFormLayout(choose)
        row = QHBoxLayout()
        row.addWidget(self.dataset_combo, 1)
        row.addWidget(refresh)
        form.addRow("Dataset", row)
        form.addRow("", self.dataset_info)
        form.addRow("Model", self.model_combo)
        form.addRow("", self.model_doc)
        form.addRow("Seeds to run", self.seeds)
        workers = QHBoxLayout()
        workers.addWidget(self.threads)
        workers.addWidget(QLabel("threads each,"))
        workers.addWidget(self.parallel)
        workers.addWidget(QLabel("runs at once"))
        workers.addStretch(1)
        form.addRow("Workers", workers)
        buttons = QHBoxLayout()
        buttons.addWidget(self.launch_button)
        buttons.addWidget(self.reset_button)
        buttons.addStretch(1)
        form.addRow(buttons)
        form.addRow(self.status)

        devices = ["auto", *available_devices()]
        self.train_form = ConfigForm(TrainConfig, choices={"device": devices})
        self.train_form.setObjectName("trainForm")
        train_box = QGroupBox("Training and evaluation")
        QVBoxLayout(train_box).addWidget(self.train_form)
        self.model_box = QGroupBox("Model hyperparameters")
        self.model_box_layout = QVBoxLayout(self.model_box)

        left = QVBoxLayout()
        left.addWidget(choose)
        left.addWidget(self.model_box)
        left.addStretch(1)
        columns = QHBoxLayout()
        columns.addLayout(left, 1)
        columns.addWidget(train_box, 1)
        body = QWidget()
        body.setLayout(columns)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(body)
        layout = QVBoxLayout(self)
        layout.addWidget(scroll)
        self._model_changed(self.model_combo.currentText())

    # ---- datasets

    def refresh_datasets(self, select: int | None = None) -> None:
        from storage import queries

        current = select if select is not None else self.dataset_id()
        with self.store.session() as session:
            self.datasets = queries.list_datasets(session)
        self.dataset_combo.blockSignals(True)
        self.dataset_combo.clear()
        for d in self.datasets:
            self.dataset_combo.addItem(f"{d.id}: {d.name} ({d.content_hash[:8]})", d.id)
        index = self.dataset_combo.findData(current) if current is not None else 0
        self.dataset_combo.setCurrentIndex(max(index, 0))
        self.dataset_combo.blockSignals(False)
        self._show_dataset()

    def dataset_id(self) -> int | None:
        value = self.dataset_combo.currentData()
        return int(value) if value is not None else None

    def _show_dataset(self) -> None:
        chosen = next((d for d in self.datasets if d.id == self.dataset_id()), None)
        self.launch_button.setEnabled(chosen is not None)
        if chosen is None:
            self.dataset_info.setText("Register a dataset on the Data page first.")
            return
        intent = (chosen.spec.get("mapping") or {}).get("intent") or "none"
        self.dataset_info.setText(
            f"{chosen.users:,} users, {chosen.items:,} items, {chosen.intents} intents "
            f"({intent}), {chosen.interactions:,} interactions"
        )

    # ---- models

    def _model_changed(self, name: str) -> None:
        if self.model_form is not None:
            self.model_form.setParent(None)
            self.model_form.deleteLater()
        cls = REGISTRY[name]
        self.model_form = ConfigForm(cls.config_class)
        self.model_form.setObjectName("modelForm")
        self.model_box_layout.addWidget(self.model_form)
        self.model_box.setTitle(f"{name} hyperparameters")
        # the class's summary, else its module's (a model module is the model only)
        doc = cls.__doc__ or sys.modules[cls.__module__].__doc__ or ""
        doc = doc.strip().split("\n\n")[0]
        self.model_doc.setText(" ".join(doc.split()))

    def _reset(self) -> None:
        self.train_form.reset()
        if self.model_form is not None:
            self.model_form.reset()

    def prefill(self, spec: dict, dataset_id: int | None = None) -> None:
        """Fill the page from a stored run spec (clone)."""
        if dataset_id is not None:
            self.refresh_datasets(select=dataset_id)
        model = spec.get("model")
        if model in REGISTRY:
            self.model_combo.setCurrentText(model)
        self.train_form.set_values(spec.get("train") or {})
        if self.model_form is not None:
            self.model_form.set_values(spec.get("model_config") or {})
        self.seeds.setValue(1)
        self.status.setText(f"Settings copied from a {model} run; edit and launch.")

    # ---- launching

    def build_specs(self) -> list[dict]:
        """One resolved spec per seed; raises ConfigError naming the bad field."""
        chosen = next((d for d in self.datasets if d.id == self.dataset_id()), None)
        if chosen is None:
            raise CafeError("Choose a registered dataset first.")
        train = self.train_form.validate().to_dict()
        model_config = self.model_form.validate().to_dict()
        data = DataSpec.from_dict(chosen.spec)
        specs = []
        for offset in range(self.seeds.value()):
            seeded = {**train, "seed": train["seed"] + offset}
            spec = RunSpec(data, self.model_combo.currentText(), model_config, seeded)
            specs.append(spec.resolved().to_dict())
        return specs

    def launch(self) -> list[int]:
        from storage import queries

        try:
            specs = self.build_specs()
        except CafeError as exc:
            dialogs.show_error(self, "Cannot launch", str(exc))
            return []
        dataset_id = self.dataset_id()
        ids = [
            self.store.transact(queries.create_run, spec, dataset_id) for spec in specs
        ]
        queue = self.queue
        started = [
            run_id for run_id in ids if queue is not None and queue.submit(run_id)
        ]
        waiting = len(ids) - len(started)
        self.status.setText(
            f"Queued run(s) {', '.join(map(str, ids))}: {len(started)} started"
            + (f", {waiting} waiting for a free worker" if waiting else "")
            + ". Follow them on the Runs page."
        )
        self.launched.emit(ids)
        return ids

    def _workers_changed(self) -> None:
        threads, parallel = self.threads.value(), self.parallel.value()
        if self.jobs is not None:
            self.jobs.threads = threads
        if self.queue is not None:
            self.queue.set_limit(parallel)
        self.workersChanged.emit(threads, parallel)


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from app.gui.jobs import WorkerJobs
    from app.gui.run_queue import RunQueue
    from storage import open_store

    app = QApplication(sys.argv)
    store = open_store(sys.argv[1] if len(sys.argv) > 1 else None)
    jobs = WorkerJobs(store)
    panel = TrainPanel(store, jobs, RunQueue(jobs))
    panel.resize(1280, 800)
    panel.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
