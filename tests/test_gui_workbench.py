"""The workbench window driven through pytest-qt, offscreen, on real data.

Every dialog goes through ``app.gui.dialogs``; the fixture replaces those functions so
that no modal box blocks the run, and records the messages for the tests to check.
Runs train in real worker processes against a temporary store, one torch thread each.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings, Qt  # noqa: E402

from app.gui import dialogs  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from app.gui.runs_model import COLUMN  # noqa: E402
from app.gui.settings import VERSION, Settings  # noqa: E402
from storage import open_store, queries  # noqa: E402

RUN_TIMEOUT_MS = 90_000
REAL_SHOW_ERROR = dialogs.show_error


@pytest.fixture
def errors(monkeypatch) -> list[tuple[str, str]]:
    shown: list[tuple[str, str]] = []
    monkeypatch.setattr(dialogs, "show_error", lambda _p, t, m: shown.append((t, m)))
    monkeypatch.setattr(dialogs, "confirm", lambda *_: True)
    # closing the window at teardown never waits on a modal question
    monkeypatch.setattr(dialogs, "ask_close_with_runs", lambda *_: "cancel")
    return shown


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "runs.db"))
    yield store
    store.dispose()


@pytest.fixture
def window(qtbot, store, tmp_path, errors):
    settings = Settings(
        QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    )
    win = MainWindow(store, settings)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    yield win
    win.jobs.cancel_all(wait=10)
    win.runs_panel.shutdown()


def load(qtbot, window, path) -> None:
    panel = window.data_panel
    with qtbot.waitSignal(panel.prepared, timeout=30_000):
        panel.open_path(path)


def register(qtbot, window) -> int:
    with qtbot.waitSignal(window.data_panel.registered, timeout=30_000) as signal:
        window.data_panel.register()
    return signal.args[0]


def status_of(store, run_id: int) -> str:
    with store.session() as session:
        return queries.get_run(session, run_id).status


def epochs_of(store, run_id: int) -> int:
    with store.session() as session:
        return queries.get_run(session, run_id).epochs


def tiny_run(window, epochs: int) -> list[int]:
    """Launch CaFe (hidden 16, one block) through the train page."""
    panel = window.train_panel
    panel.model_combo.setCurrentText("cafe")
    panel.model_form.set_values({"hidden": 16, "blocks": 1})
    # every epoch asked for: patience never ends a run the test means to cancel
    panel.train_form.set_values(
        {"epochs": epochs, "device": "cpu", "min_epochs": epochs}
    )
    return panel.launch()


def test_window_starts_remembers_geometry_and_quits(qtbot, window, tmp_path):
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert titles[:3] == ["Data", "Train", "Runs"]
    # the icon from assets/ is found and renders
    assert not window.windowIcon().pixmap(32, 32).isNull()
    # the offscreen screen is 800x600: a restored window is kept inside its width
    window.resize(810, 590)
    window.tabs.setCurrentIndex(2)
    size = window.size()
    assert window.close()
    stored = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    assert int(stored.value("version")) == VERSION
    assert int(stored.value("window/page")) == 2
    again = MainWindow(window.store, Settings(stored))
    qtbot.addWidget(again)
    assert again.height() == size.height() == 590 and again.tabs.currentIndex() == 2
    again.runs_panel.shutdown()


def test_load_map_filter_register(qtbot, window, store, ml_small, errors):
    load(qtbot, window, ml_small)
    panel = window.data_panel
    assert panel.preview_model.rowCount() == panel.dataset.stats["interactions"]
    assert panel.stats_view.table.item(0, 1).text() == "60"
    assert panel.dataset.mapping.intent == "category"

    # the intent can be any item attribute; the statistics follow
    with qtbot.waitSignal(panel.prepared, timeout=30_000):
        panel.set_mapping(intent="title")
    assert panel.dataset.stats["intents"] > 100
    with qtbot.waitSignal(panel.prepared, timeout=30_000):
        panel.set_mapping(intent="category")
        panel.min_item.setValue(3)
    after = panel.dataset.stats
    assert after["items"] < panel.dataset.stats_before["items"]
    assert min(after["item_freq_hist"]["freq"]) >= 3
    x, y = panel.stats_view.hist_after.getData()
    assert len(x) == len(after["item_freq_hist"]["freq"]) and len(y) == len(x)

    dataset_id = register(qtbot, window)
    with store.session() as session:
        (registered,) = queries.list_datasets(session)
    assert registered.id == dataset_id
    assert registered.content_hash == panel.dataset.hash
    assert registered.spec["filters"]["min_item_freq"] == 3
    assert window.train_panel.dataset_id() == dataset_id

    # renamed after the statistics were shown: registering again keeps the one row
    # and takes the name as it reads now
    panel.name_edit.setText("movies, k=3")
    assert register(qtbot, window) == dataset_id
    with store.session() as session:
        (registered,) = queries.list_datasets(session)
    assert registered.name == "movies, k=3"
    assert errors == []


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty"),
        ("user_id,item_id,timestamp\n", "no rows"),
        ("user_id,item_id,timestamp\n1,2,yesterday-ish\n1,3,soon\n", "time column"),
    ],
)
def test_bad_file_shows_error_and_window_survives(
    qtbot, window, tmp_path, errors, content, expected
):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    window.data_panel.open_path(bad)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=30_000)
    assert expected in errors[0][1] and "bad.csv" in errors[0][1]
    assert window.isVisible()
    # the page still works after the error
    window.data_panel.open_path(tmp_path / "missing.csv")
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=30_000)
    assert "no such file" in errors[1][1]


def test_unknown_columns_are_one_message_in_the_pages_words(
    qtbot, window, tmp_path, errors
):
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\n1,2,3\n1,3,4\n1,4,5\n")
    window.data_panel.open_path(odd)
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=30_000)
    qtbot.wait(500)  # no second dialog from preparing with a guessed mapping
    assert len(errors) == 1
    assert "the User box" in errors[0][1] and "--user" not in errors[0][1]
    # choosing the columns prepares the data
    panel = window.data_panel
    with qtbot.waitSignal(panel.prepared, timeout=30_000):
        panel.set_mapping(user="a", item="b", time="c")
    assert panel.dataset.stats["interactions"] == 3


def test_launch_watch_and_cancel_runs(qtbot, window, store, ciao_small, errors):
    load(qtbot, window, ciao_small)
    register(qtbot, window)
    (short,) = tiny_run(window, epochs=2)
    (long,) = tiny_run(window, epochs=500)
    assert status_of(store, short) in ("queued", "running", "finished")

    # cancel the long run once its worker is training
    qtbot.waitUntil(lambda: status_of(store, long) == "running", timeout=RUN_TIMEOUT_MS)
    window.runs_panel.cancel_run(long)
    qtbot.waitUntil(lambda: status_of(store, long) == "cancelled", timeout=30_000)

    qtbot.waitUntil(
        lambda: status_of(store, short) == "finished", timeout=RUN_TIMEOUT_MS
    )
    panel = window.runs_panel
    qtbot.waitUntil(
        lambda: any(r.id == short and r.status == "finished" for r in panel.runs),
        timeout=5_000,
    )
    assert panel.select_run(short)
    row = next(
        r
        for r in range(panel.proxy.rowCount())
        if panel.proxy.index(r, 0).data() == str(short)
    )
    metric = panel.proxy.index(row, COLUMN["test NDCG@5"]).data()
    assert metric and 0.0 <= float(metric) <= 1.0

    # the run page shows both epochs on the curves, and the attention maps
    page = panel.page
    qtbot.waitUntil(lambda: page.points().get("loss") == 2, timeout=10_000)
    assert page.points()["NDCG@5"] == 2
    qtbot.waitUntil(lambda: page.attention.current_key() is not None, timeout=10_000)
    assert page.progress.value() == 1000
    config = json.loads(page.config_text.toPlainText())
    assert config["model"] == "cafe"
    # where and with what the worker ran, one torch thread as the Train page set
    assert config["environment"]["device"] == "cpu"
    assert config["environment"]["torch threads"] == "1"
    assert errors == []

    # clone fills the train page with the run's settings
    page.buttons["clone"].click()
    assert window.tabs.currentWidget() is window.train_panel
    assert window.train_panel.model_form.value("hidden") == 16
    assert window.train_panel.train_form.value("epochs") == 2


def test_runs_beyond_the_limit_wait_for_a_free_worker(
    qtbot, window, store, ciao_small, tmp_path, errors
):
    load(qtbot, window, ciao_small)
    register(qtbot, window)
    panel = window.train_panel
    panel.parallel.setValue(1)
    panel.seeds.setValue(3)
    first, second, third = tiny_run(window, epochs=2)
    assert "2 waiting for a free worker" in panel.status.text()
    assert window.queue.waiting_ids() == [second, third]
    assert status_of(store, second) == status_of(store, third) == "queued"
    assert sorted(window.jobs.jobs) == [first]

    # a waiting run is withdrawn and cancelled without ever getting a worker
    window.runs_panel.cancel_run(third)
    assert status_of(store, third) == "cancelled"
    assert window.queue.waiting_ids() == [second]

    # the next one starts when the first has finished, never beside it
    qtbot.waitUntil(
        lambda: status_of(store, first) == "finished", timeout=RUN_TIMEOUT_MS
    )
    qtbot.waitUntil(lambda: second in window.jobs.jobs, timeout=10_000)
    qtbot.waitUntil(
        lambda: status_of(store, second) == "finished", timeout=RUN_TIMEOUT_MS
    )
    assert third not in window.jobs.jobs and status_of(store, third) == "cancelled"
    assert errors == []

    # the worker settings are remembered
    stored = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    assert int(stored.value("workers/parallel")) == 1


@pytest.mark.parametrize("choice", ["stay", "keep", "cancel"])
def test_closing_with_a_run_in_flight_asks_first(
    qtbot, window, store, ciao_small, monkeypatch, choice
):
    load(qtbot, window, ciao_small)
    register(qtbot, window)
    (run_id,) = tiny_run(window, epochs=500)
    qtbot.waitUntil(
        lambda: status_of(store, run_id) == "running", timeout=RUN_TIMEOUT_MS
    )
    asked = []
    monkeypatch.setattr(
        dialogs,
        "ask_close_with_runs",
        lambda _p, n, waiting=0: asked.append((n, waiting)) or choice,
    )
    job = window.jobs.jobs[run_id]

    closed = window.close()
    assert asked == [(1, 0)]
    assert closed == (choice != "stay")
    if choice == "stay":
        assert window.isVisible() and window.jobs.running() == [run_id]
    elif choice == "keep":
        # the worker outlives the window and goes on recording epochs
        before = epochs_of(store, run_id)
        qtbot.waitUntil(
            lambda: epochs_of(store, run_id) > before, timeout=RUN_TIMEOUT_MS
        )
        assert job.popen.poll() is None and status_of(store, run_id) == "running"
        job.popen.terminate()
        job.popen.wait(30)
    if choice != "stay":
        qtbot.waitUntil(lambda: status_of(store, run_id) == "cancelled", timeout=30_000)


def test_statistics_and_runs_tables_export_as_shown(
    qtbot, window, store, ciao_small, tmp_path, errors
):
    import pandas as pd

    from app.gui import exports

    load(qtbot, window, ciao_small)
    stats = window.data_panel.stats_view
    path = exports.export_table(stats.frame(), tmp_path / "stats.csv")
    written = pd.read_csv(path, dtype=str).set_index("statistic")
    assert written.loc["Users", "after filters"] == "300"
    assert len(written) == stats.table.rowCount()
    png = exports.export_plot(stats.histogram, tmp_path / "hist.png")
    assert png.stat().st_size > 0

    register(qtbot, window)
    (run_id,) = tiny_run(window, epochs=1)
    qtbot.waitUntil(
        lambda: status_of(store, run_id) == "finished", timeout=RUN_TIMEOUT_MS
    )
    panel = window.runs_panel
    qtbot.waitUntil(
        lambda: any(r.id == run_id and r.status == "finished" for r in panel.runs),
        timeout=10_000,
    )
    frame = panel.table_frame()
    row = frame[frame["ID"] == str(run_id)].iloc[0]
    assert row["Status"] == "finished" and row["Model"] == "cafe"
    # filters apply to the export as to the table
    panel.search.setText("no such model")
    assert panel.table_frame().empty
    assert errors == []


def test_a_dropped_folder_loads_and_a_cancelled_load_keeps_the_page(
    qtbot, window, ciao_small, ml_small
):
    from PySide6.QtCore import QMimeData, QPoint, QUrl
    from PySide6.QtGui import QDropEvent

    panel = window.data_panel
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(ciao_small))])
    drop = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    # dropped on the window while another page shows: the Data page opens it
    window.show_page(window.runs_panel)
    with qtbot.waitSignal(panel.prepared, timeout=30_000):
        window.dropEvent(drop)
    assert window.tabs.currentWidget() is panel
    assert panel.loaded_data.path == ciao_small
    users = panel.dataset.stats["users"]

    # cancelled: the bar goes away at once and the page keeps the data it had
    panel.open_path(ml_small)
    assert panel.cancel_button.isVisible()
    panel.cancel_load()
    assert not panel.cancel_button.isVisible()
    qtbot.wait(3_000)
    assert panel.loaded_data.path == ciao_small
    assert panel.dataset.stats["users"] == users


def test_about_names_the_store_and_the_libraries(window, store):
    from app.gui.main_window import about_text

    text = about_text(store)
    assert str(store.url) in text and "torch" in text and "PySide6" in text


def test_a_bad_file_shows_a_real_message_box(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMessageBox

    # the fixture's stand-in is replaced by the real dialog, closed by a timer
    monkeypatch.setattr(dialogs, "show_error", REAL_SHOW_ERROR)
    seen = []

    def dismiss():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            seen.append(box.text() + box.informativeText())
            box.accept()
        else:
            QTimer.singleShot(100, dismiss)

    bad = tmp_path / "empty.csv"
    bad.write_text("")
    QTimer.singleShot(100, dismiss)
    window.data_panel.open_path(bad)
    qtbot.waitUntil(lambda: bool(seen), timeout=30_000)
    assert "empty.csv" in seen[0]
    assert window.isVisible()
