"""Forms generated from config dataclasses, the preview model and the runs table."""

from __future__ import annotations

import time
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QSpinBox

from app.gui.config_form import ConfigForm, FloatBox
from app.gui.frame_model import FrameModel
from app.gui.runs_model import COLUMN, RunsFilter, RunsModel
from engine.errors import ConfigError
from engine.models import REGISTRY
from engine.training import TrainConfig
from storage.queries import RunSummary


def test_form_has_the_right_widget_bounds_and_tooltip_per_field(qtbot):
    form = ConfigForm(REGISTRY["cafe"].config_class)
    qtbot.addWidget(form)
    assert isinstance(form.widgets["fuse_intent"], QCheckBox)
    assert isinstance(form.widgets["hidden"], QSpinBox)
    assert isinstance(form.widgets["dropout"], FloatBox)
    assert form.widgets["hidden"].minimum() == 4
    assert form.widgets["dropout"].maximum() == pytest.approx(0.9)
    assert "Hidden size" in form.widgets["hidden"].toolTip()
    assert "Default: 128" in form.widgets["hidden"].toolTip()
    assert form.values() == REGISTRY["cafe"].config_class().to_dict()


def test_train_form_offers_choices_and_validates_through_the_dataclass(qtbot):
    form = ConfigForm(TrainConfig, choices={"device": ["auto", "cpu"]})
    qtbot.addWidget(form)
    assert isinstance(form.widgets["protocol"], QComboBox)
    assert form.widgets["protocol"].count() == 2
    assert form.widgets["lr"].text() == "0.001"
    form.set_value("metric", "NDCG@50")
    with pytest.raises(ConfigError, match="metric"):
        form.validate()
    form.set_value("metric", "HR@10")
    assert form.validate().metric == "HR@10"

    # an empty choice reads "(none)" and means ""
    also = form.widgets["also_evaluate"]
    assert also.currentText() == "(none)" and form.value("also_evaluate") == ""
    form.set_value("also_evaluate", "full")
    assert also.currentText() == "full" and form.validate().also_evaluate == "full"
    # an editable choice takes what is typed
    form.set_value("device", "cuda:1")
    assert form.value("device") == "cuda:1"


def test_typed_numbers_count_before_they_are_committed(qtbot):
    """A launch by shortcut leaves the focus in the box: the text shown is used."""
    form = ConfigForm(TrainConfig)
    qtbot.addWidget(form)
    epochs, lr = form.widgets["epochs"], form.widgets["lr"]
    epochs.lineEdit().selectAll()
    qtbot.keyClicks(epochs.lineEdit(), "2")
    lr.lineEdit().selectAll()
    qtbot.keyClicks(lr.lineEdit(), "0.005")
    config = form.validate()
    assert (config.epochs, config.lr) == (2, pytest.approx(0.005))

    # half-typed is refused and marked, never replaced by the previous value
    lr.lineEdit().selectAll()
    qtbot.keyClicks(lr.lineEdit(), "1e-")
    with pytest.raises(ConfigError, match="lr reads '1e-'"):
        form.validate()
    assert "border" in lr.styleSheet()


def test_preview_model_serves_a_million_rows_lazily(qtbot):
    frame = pd.DataFrame(
        {"user": np.arange(1_000_000), "score": np.linspace(0, 1, 1_000_000)}
    )
    frame["label"] = pd.array(["a"] * 1_000_000, dtype="string")
    began = time.perf_counter()
    model = FrameModel(frame)
    assert time.perf_counter() - began < 1.0
    assert model.rowCount() == 1_000_000
    assert model.data(model.index(999_999, 0)) == "999999"
    assert model.data(model.index(999_999, 1)) == "1"
    assert model.data(model.index(5, 2)) == "a"
    assert model.headerData(0, Qt.Orientation.Vertical) == "1"


def run(run_id, status, model, test=None, started=None):
    return RunSummary(
        id=run_id,
        model=model,
        dataset="ciao",
        dataset_id=1,
        status=status,
        seed=0,
        protocol="sampled",
        device="cpu",
        created=datetime(2024, 1, run_id),
        started=started,
        finished=None,
        seconds=12.0,
        epochs=2,
        max_epochs=2,
        best_epoch=1,
        test=test or {},
    )


def test_runs_table_sorts_by_value_filters_and_updates_in_place(qtbot):
    model = RunsModel()
    proxy = RunsFilter()
    proxy.setSourceModel(model)
    runs = [
        run(1, "finished", "cafe", {"NDCG@5": 0.2}),
        run(2, "finished", "sasrec", {"NDCG@5": 0.15}),
        run(3, "running", "cafe"),
    ]
    model.set_runs(runs)
    proxy.sort(COLUMN["test NDCG@5"], Qt.SortOrder.DescendingOrder)
    order = [proxy.index(r, COLUMN["ID"]).data() for r in range(3)]
    assert order == ["1", "2", "3"]
    proxy.set_filters(model="cafe")
    assert proxy.rowCount() == 2
    proxy.set_filters(text="sasrec")
    assert proxy.rowCount() == 1

    # a changed run emits dataChanged, not a reset, so the selection survives
    resets = []
    model.modelReset.connect(lambda: resets.append(1))
    runs[2] = run(3, "finished", "cafe", {"NDCG@5": 0.3})
    model.set_runs(runs)
    assert resets == []
    assert model.index(2, COLUMN["Status"]).data() == "finished"


def test_runs_panel_keeps_its_selection_when_a_run_is_added(qtbot, tmp_path):
    from app.gui.runs_panel import RunsPanel
    from storage import open_store

    store = open_store(str(tmp_path / "runs.db"))
    panel = RunsPanel(store, interval=60_000)
    qtbot.addWidget(panel)
    runs = [run(1, "finished", "cafe"), run(2, "finished", "sasrec")]
    panel._on_runs(runs)
    assert panel.select_run(1) and panel.selected_ids() == [1]

    # a run launched meanwhile (the model resets): run 1 stays selected, so the
    # toolbar's cancel and the Inspect button still act on it
    panel._on_runs([*runs, run(3, "queued", "cafe")])
    assert panel.selected_ids() == [1]
    assert panel.inspect_button.isEnabled()
    panel.shutdown()
    store.dispose()


def test_intent_chart_shows_as_many_intents_as_fit_readably(qtbot, ml_small):
    from app.gui.dataset_stats_view import BAR_PIXELS, TOP_INTENTS, DatasetStatsView
    from engine.data import load_raw, prepare

    dataset = prepare(load_raw(ml_small))  # 18 genres
    view = DatasetStatsView()
    qtbot.addWidget(view)
    view.resize(900, 1200)
    view.show()
    view.show_stats(dataset.stats_before, dataset.stats)
    qtbot.wait(50)
    assert len(view.bars.opts["y"]) == TOP_INTENTS

    # a short window: fewer bars, each tall enough for its name
    view.resize(900, 330)
    qtbot.wait(50)
    shown = len(view.bars.opts["y"])
    height = view.intents.getPlotItem().getViewBox().height()
    assert 3 <= shown < TOP_INTENTS and shown * BAR_PIXELS <= max(
        height, 3 * BAR_PIXELS
    )
    assert f"({shown} of " in view.intents.getPlotItem().titleLabel.text
