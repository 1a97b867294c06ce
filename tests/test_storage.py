"""The run store: migrations, pragmas, the GUI-facing queries, path and checkpoint
safety."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sqlalchemy import create_engine, inspect, text

from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.errors import CheckpointError
from storage import StoreError, UnsafePathError, open_store
from storage import queries as q
from storage.migrations import current_revision, head_revision, upgrade
from storage.sample import METRICS, fill_store
from storage.schema import ArtifactRow, DatasetRow, RunRow

TABLES = {"datasets", "runs", "metrics", "attention", "user_results", "artifacts"}


@pytest.fixture()
def store(tmp_path):
    opened = open_store(str(tmp_path / "runs.db"))
    yield opened
    opened.dispose()


@pytest.fixture(scope="module")
def ciao_dataset(ciao_small):
    from engine.experiment import DataSpec, load_dataset

    spec = DataSpec(path=str(ciao_small))
    return spec, load_dataset(spec)


def _run_spec(data_spec, **train):
    from engine.experiment import RunSpec

    settings = {"epochs": 2, "seed": 0, "device": "cpu", **train}
    return RunSpec(data_spec, "sasrec", {"hidden": 16}, settings).resolved().to_dict()


def _new_run(store, ciao_dataset, **train) -> int:
    spec, dataset = ciao_dataset

    def work(session):
        dataset_id = q.register_dataset(session, spec.to_dict(), dataset)
        return q.create_run(session, _run_spec(spec, **train), dataset_id)

    return store.transact(work)


# ---- schema and migrations


def test_new_store_is_at_head_with_wal_and_foreign_keys(store):
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert TABLES <= set(inspect(store.engine).get_table_names())


def test_upgrade_from_first_revision_keeps_rows(tmp_path):
    path = tmp_path / "old.db"
    engine = create_engine(f"sqlite:///{path}")
    upgrade(engine, "0001")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO datasets (name, path, mapping, filters, content_hash, "
                "spec_hash, stats, stats_before, notes, created) VALUES ('old', 'p', "
                "'{}', '{}', 'h', 's', '{\"users\": 3}', '{}', '[]', "
                "'2024-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO runs (dataset_id, model, spec, seed, protocol, status, "
                "versions, created, epochs, best_epoch, log) VALUES (1, 'cafe', '{}', "
                "0, 'sampled', 'finished', '{}', '2024-01-01 00:00:00', 4, 2, 'a')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO metrics (run_id, epoch, split, name, value) "
                "VALUES (1, 2, 'valid', 'NDCG@5', 0.5)"
            )
        )
    engine.dispose()

    store = open_store(str(path))
    with store.session() as session:
        datasets = q.list_datasets(session)
        assert [(d.name, d.users) for d in datasets] == [("old", 3)]
        [run] = q.list_runs(session)
        # the run made before the progress columns existed reads with them empty
        assert (run.model, run.best, run.batch, run.heartbeat) == (
            "cafe",
            {"NDCG@5": 0.5},
            None,
            None,
        )
    with store.engine.connect() as connection:
        assert current_revision(connection) == head_revision()
        assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
    store.dispose()


def test_foreign_keys_are_enforced(store):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with store.session(write=True) as session:
            q.add_metrics(session, 999, 1, "train", {"loss": 1.0})


def test_in_memory_sqlite_is_refused():
    with pytest.raises(ValueError, match="in-memory"):
        open_store("sqlite://")


def test_default_url_follows_cafe_db(monkeypatch, tmp_path):
    from storage import default_url

    monkeypatch.setenv("CAFE_DB", str(tmp_path / "x.db"))
    assert default_url() == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("CAFE_DB", "postgresql://u@h/db")
    assert default_url() == "postgresql://u@h/db"


# ---- datasets and runs


def test_register_dataset_is_idempotent_and_keeps_statistics(store, ciao_dataset):
    spec, dataset = ciao_dataset
    with store.session(write=True) as session:
        first = q.register_dataset(session, spec.to_dict(), dataset)
        again = q.register_dataset(session, spec.to_dict(), dataset)
        other = q.register_dataset(
            session, {**spec.to_dict(), "items_path": "elsewhere"}, dataset
        )
    assert first == again != other
    with store.session() as session:
        found = q.get_dataset(session, first)
    assert found.content_hash == dataset.hash
    assert found.users == dataset.num_users
    assert found.stats["item_freq_hist"] == dataset.stats["item_freq_hist"]


def test_run_queries_return_what_was_written(store, ciao_dataset):
    run_id = _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        q.start_run(session, run_id, device="cpu")
        for epoch, ndcg in ((1, 0.1), (2, 0.3), (3, 0.2)):
            q.add_metrics(session, run_id, epoch, "train", {"loss": 1.0 / epoch})
            q.add_metrics(session, run_id, epoch, "valid", {"NDCG@5": ndcg})
        q.add_metrics(session, run_id, 2, "test", {"NDCG@5": 0.25})
        q.update_progress(session, run_id, epochs=3, best_epoch=2, seconds=4.0)
        q.set_status(session, run_id, "finished")

    with store.session() as session:
        [summary] = q.list_runs(session)
        curves = q.run_curves(session, run_id)
        detail = q.get_run(session, run_id)
        table = q.compare_runs(session, [run_id])
        assert q.list_runs(session, status="failed") == []
        assert q.list_runs(session, text="ciao")[0].id == run_id
    assert summary.status == "finished" and summary.finished is not None
    assert summary.best == {"NDCG@5": 0.3} and summary.test == {"NDCG@5": 0.25}
    assert summary.best_epoch == 2 and summary.max_epochs == 2
    valid = curves[curves.split == "valid"]
    assert valid.epoch.tolist() == [1, 2, 3]
    assert valid.value.tolist() == [0.1, 0.3, 0.2]
    assert detail.spec["model_config"]["hidden"] == 16
    assert detail.versions["torch"] == torch.__version__
    assert detail.versions["torch threads"] == str(torch.get_num_threads())
    assert table.loc[0, "test NDCG@5"] == 0.25
    assert table.loc[0, "model.hidden"] == 16


def test_unknown_status_and_missing_run_are_refused(store, ciao_dataset):
    run_id = _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        with pytest.raises(StoreError, match="unknown run status"):
            q.set_status(session, run_id, "done")
        with pytest.raises(StoreError, match="not in the run store"):
            q.get_run(session, run_id + 100)


def test_user_results_round_trip_the_evaluation(store, ciao_dataset, ciao_split):
    from engine.evaluation import evaluate
    from engine.experiment import model_context
    from engine.models import build_model, model_class

    model = build_model(
        "sasrec",
        model_class("sasrec").config_class.from_dict({"hidden": 16}),
        model_context(ciao_split),
    )
    result = evaluate(model, ciao_split, "test")
    run_id = _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        q.add_user_results(session, run_id, "test", result.per_user)
    with store.session() as session:
        stored = q.user_results(session, run_id, "test")
    expected = result.per_user.sort_values("user").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored[expected.columns], expected, check_dtype=False)


def test_attention_maps_keep_shape_and_values(store, ciao_dataset):
    run_id = _new_run(store, ciao_dataset)
    rng = np.random.default_rng(0)
    first = {"item layer 1": rng.random((2, 5, 5))}
    latest = {"item layer 1": rng.random((2, 5, 5)), "item layer 2": np.eye(5)[None]}
    with store.session(write=True) as session:
        q.add_attention(session, run_id, 1, first)
        q.add_attention(session, run_id, 2, latest)
    with store.session() as session:
        maps = q.attention_maps(session, run_id)
    assert sorted(maps) == [
        "item layer 1 head 1",
        "item layer 1 head 2",
        "item layer 2 head 1",
    ]
    # float16 storage: three decimals are kept
    np.testing.assert_allclose(
        maps["item layer 1 head 2"], latest["item layer 1"][1], atol=1e-3
    )
    assert maps["item layer 2 head 1"].dtype == np.float32


# ---- files


def _save_best(store, run_id):
    path = store.run_dir(run_id) / "best.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}}, path)
    with store.session(write=True) as session:
        q.record_artifact(session, run_id, "best", path)
    return path


def test_checkpoint_path_checks_the_recorded_file(store, ciao_dataset):
    run_id = _new_run(store, ciao_dataset)
    path = _save_best(store, run_id)
    with store.session() as session:
        assert q.checkpoint_path(session, run_id) == path.resolve()

    # a file replaced after it was recorded is not loaded
    save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    with store.session() as session:
        with pytest.raises(UnsafePathError, match="changed"):
            q.checkpoint_path(session, run_id)

    # a path in the database that leads out of the store's folder is refused
    for bad in ("../../etc/passwd", "/etc/passwd"):
        with store.session(write=True) as session:
            row = session.query(ArtifactRow).filter_by(run_id=run_id).one()
            row.path = bad
        with store.session() as session:
            with pytest.raises(UnsafePathError):
                q.checkpoint_path(session, run_id)


class _Payload:
    """Unpickling this would run a command: what a crafted checkpoint does."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused(store, ciao_dataset, tmp_path):
    marker = tmp_path / "pwned"
    run_id = _new_run(store, ciao_dataset)
    path = store.run_dir(run_id) / "best.pt"
    path.parent.mkdir(parents=True)
    torch.save({"model": _Payload(marker)}, path)
    with store.session(write=True) as session:
        q.record_artifact(session, run_id, "best", path)
    with store.session() as session:
        checked = q.checkpoint_path(session, run_id)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(checked)
    assert not marker.exists()


def test_delete_run_removes_rows_and_files(store, ciao_dataset):
    run_id = _new_run(store, ciao_dataset)
    _save_best(store, run_id)
    with store.session(write=True) as session:
        q.add_metrics(session, run_id, 1, "train", {"loss": 1.0})
        q.delete_run(session, run_id)
    assert not store.run_dir(run_id).exists()
    with store.session() as session:
        assert q.list_runs(session) == []
        assert q.run_curves(session, run_id).empty


# ---- stale runs


def test_runs_of_dead_workers_are_marked_interrupted(store, ciao_dataset):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, alive = _new_run(store, ciao_dataset), _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        q.start_run(session, stale, device="cpu", pid=dead.pid)
        q.start_run(session, alive, device="cpu")
    with store.session(write=True) as session:
        assert q.mark_stale_runs(session) == 1
    with store.session() as session:
        assert q.get_run(session, stale).status == "interrupted"
        assert "killed or crashed" in q.get_run(session, stale).error
        assert q.get_run(session, alive).status == "running"
        with pytest.raises(StoreError, match="still running"):
            q.delete_run(session, alive)


def test_runs_on_another_host_go_stale_by_heartbeat(store, ciao_dataset):
    from datetime import timedelta

    from storage.schema import utcnow

    quiet, beating = _new_run(store, ciao_dataset), _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        for run_id, age in ((quiet, 60), (beating, 1)):
            q.start_run(session, run_id, device="cuda:0", pid=1)
            run = session.get(RunRow, run_id)
            run.host = "elsewhere"
            run.heartbeat = utcnow() - timedelta(minutes=age)
    with store.session(write=True) as session:
        assert q.mark_stale_runs(session) == 1
    with store.session() as session:
        assert q.get_run(session, quiet).status == "interrupted"
        assert q.get_run(session, beating).status == "running"


# ---- the GUI's queries on a store of 1,000 runs


@pytest.fixture(scope="module")
def big_store(tmp_path_factory):
    opened = open_store(str(tmp_path_factory.mktemp("big") / "runs.db"))
    ids = fill_store(opened, runs=1000, epochs=6, users=20, seed=1)
    yield opened, ids
    opened.dispose()


def test_list_runs_on_many_runs_matches_the_metric_rows(big_store):
    store, ids = big_store
    with store.session() as session:
        runs = q.list_runs(session)
        cafe = q.list_runs(session, model="cafe", status="finished")
        limited = q.list_runs(session, limit=7)
        best_epochs = dict(session.query(RunRow.id, RunRow.best_epoch).all())
        curves = q.run_curves(session, ids[500])
    assert len(runs) == 1000 and [r.id for r in runs] == sorted(ids, reverse=True)
    assert {r.model for r in cafe} == {"cafe"} and all(
        r.status == "finished" for r in cafe
    )
    assert [r.id for r in limited] == sorted(ids, reverse=True)[:7]
    # the listed best metrics are the validation row of each run's best epoch
    run = next(r for r in runs if r.id == ids[500])
    valid = curves[(curves.split == "valid") & (curves.epoch == best_epochs[ids[500]])]
    assert run.best == {
        name: value for name, value in zip(valid.name, valid.value) if name != "seconds"
    }
    assert set(run.best) == set(METRICS) and set(run.test) == set(METRICS)


def test_compare_and_user_results_on_many_runs(big_store):
    store, ids = big_store
    chosen = [ids[3], ids[900], ids[42]]
    with store.session() as session:
        table = q.compare_runs(session, chosen)
        users = q.user_results(session, ids[10])
    assert table["id"].tolist() == chosen
    assert {f"test {m}" for m in METRICS} <= set(table.columns)
    assert len(users) == 20
    np.testing.assert_allclose(users["MRR"], 1.0 / (users["rank"] + 1))


def test_a_stale_run_keeps_the_tail_of_its_workers_stderr(store, ciao_dataset):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        q.start_run(session, run_id, device="cpu", pid=dead.pid)
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True)
    lines = [f"INFO epoch {n}" for n in range(1, 31)] + ["Segmentation fault"]
    (folder / q.WORKER_ERRORS_FILE).write_text("\n".join(lines) + "\n")

    with store.session(write=True) as session:
        assert q.mark_stale_runs(session) == 1
    with store.session() as session:
        error = q.get_run(session, run_id).error
    assert "killed or crashed" in error
    assert error.endswith("\n".join(lines[-q.STDERR_TAIL_LINES :]))
    assert "INFO epoch 11\n" not in error


def test_mark_stale_run_looks_at_that_run_only(store, ciao_dataset):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale, alive = _new_run(store, ciao_dataset), _new_run(store, ciao_dataset)
    with store.session(write=True) as session:
        q.start_run(session, stale, device="cpu", pid=dead.pid)
        q.start_run(session, alive, device="cpu")
    with store.session(write=True) as session:
        assert q.mark_stale_run(session, alive) is False
        assert q.mark_stale_run(session, stale) is True
    with store.session() as session:
        assert q.get_run(session, alive).status == "running"
        assert q.get_run(session, stale).status == "interrupted"


# ---- a store that cannot be opened


def _damaged(path) -> None:
    path.write_bytes(b"these bytes are not an SQLite database\n" * 200)


def _from_newer_workbench(path) -> None:
    open_store(str(path)).dispose()
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()


BAD_STORES = {
    "damaged": (_damaged, "cannot be read as a run store"),
    "newer": (_from_newer_workbench, "Upgrade the workbench"),
}


@pytest.mark.parametrize("case", sorted(BAD_STORES))
def test_open_store_names_the_file_and_the_fix(tmp_path, case):
    make, expected = BAD_STORES[case]
    path = tmp_path / "x.db"
    make(path)
    with pytest.raises(StoreError, match=expected) as caught:
        open_store(str(path))
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("case", "command"),
    [
        ("damaged", ["runs"]),
        ("damaged", ["worker", "--run", "1"]),
        ("newer", ["runs"]),
        ("newer", ["resume", "--run", "1"]),
        ("newer", "train"),
    ],
)
def test_the_command_line_reports_a_bad_store_without_a_traceback(
    tmp_path, ciao_small, case, command
):
    make, expected = BAD_STORES[case]
    path = tmp_path / "x.db"
    make(path)
    if command == "train":
        command = ["train", "--data", str(ciao_small), "--model", "pop", "--quiet"]
    main = Path(__file__).resolve().parents[1] / "main.py"
    finished = subprocess.run(
        [sys.executable, str(main), *command],
        env={**os.environ, "CAFE_DB": str(path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 2, finished.stderr
    # train reads its data first, and may note something about it before
    last = finished.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {path}: ") and expected in last
    assert "Traceback" not in finished.stderr


def test_runs_stamp_moves_with_every_change_list_runs_shows(store, ciao_dataset):
    def stamp():
        with store.session() as session:
            return q.runs_stamp(session)

    seen = [stamp()]

    def changed() -> bool:
        seen.append(stamp())
        return seen[-1] != seen[-2]

    run_id = _new_run(store, ciao_dataset)
    assert changed()  # created
    assert not changed()  # nothing happened
    store.transact(q.start_run, run_id, device="cpu")
    assert changed()
    store.transact(q.beat, run_id, 3, 10)
    assert changed()  # a batch further: the progress bar moves
    store.transact(q.update_progress, run_id, epochs=1, best_epoch=1, seconds=2.0)
    assert changed()
    store.transact(q.set_status, run_id, "cancelled")
    assert changed()
    other = _new_run(store, ciao_dataset)
    assert changed()
    store.transact(q.set_status, other, "cancelled")
    assert changed()  # a status alone: the counts per status move
    store.transact(q.delete_run, other)
    assert changed()


# ---- paths are stored absolute


def test_relative_data_paths_are_stored_absolute(store, ciao_dataset, monkeypatch):
    spec, dataset = ciao_dataset
    folder = Path(spec.path)
    monkeypatch.chdir(folder.parent)
    typed = {**spec.to_dict(), "path": folder.name, "items_path": "sub/items.csv"}
    run_spec = _run_spec(spec)
    run_spec["data"] = dict(typed)
    before = {"data": dict(typed), "run": {**run_spec, "data": dict(typed)}}

    with store.session(write=True) as session:
        dataset_id = q.register_dataset(session, typed, dataset)
        run_id = q.create_run(session, run_spec, dataset_id)
    # the caller's specs are not changed
    assert typed == before["data"] and run_spec == before["run"]

    # a worker in another folder reads the same files
    monkeypatch.chdir("/")
    with store.session() as session:
        found = q.get_dataset(session, dataset_id)
        stored = q.run_spec(session, run_id)["data"]
    assert found.path == stored["path"] == str(folder)
    assert found.spec["items_path"] == stored["items_path"]
    assert stored["items_path"] == str(folder.parent / "sub" / "items.csv")

    # the absolute spec is the same version, and finds the same run
    absolute = {**typed, "path": str(folder), "items_path": stored["items_path"]}
    with store.session(write=True) as session:
        assert q.register_dataset(session, absolute, dataset) == dataset_id
        wanted = {**run_spec, "data": absolute}
        assert q.find_runs(session, dataset_id, wanted, ["queued"]) == [run_id]


def test_a_dataset_stored_with_a_relative_path_gets_the_absolute_one(
    store, ciao_dataset, monkeypatch
):
    spec, dataset = ciao_dataset
    folder = Path(spec.path)
    monkeypatch.chdir(folder.parent)
    typed = {**spec.to_dict(), "path": folder.name}
    with store.session(write=True) as session:
        dataset_id = q.register_dataset(session, typed, dataset)
        # as an older workbench stored it: the path as typed, hashed as typed
        row = session.get(DatasetRow, dataset_id)
        row.path, row.spec_hash = folder.name, q.spec_hash(typed)
    with store.session(write=True) as session:
        assert q.register_dataset(session, typed, dataset) == dataset_id
    with store.session() as session:
        assert q.get_dataset(session, dataset_id).path == str(folder)


def test_register_dataset_names_and_renames_a_version(store, ciao_dataset):
    spec, dataset = ciao_dataset
    with store.session(write=True) as session:
        first = q.register_dataset(session, spec.to_dict(), dataset, name="Ciao 300")
        unnamed = q.register_dataset(session, spec.to_dict(), dataset)
        renamed = q.register_dataset(session, spec.to_dict(), dataset, name="ciao-a")
    assert first == unnamed == renamed
    # without a name, a new version takes the dataset's own
    other = {**spec.to_dict(), "items_path": "elsewhere"}
    with store.session(write=True) as session:
        second = q.register_dataset(session, other, dataset)
    with store.session() as session:
        names = {found.id: found.name for found in q.list_datasets(session)}
    assert names == {first: "ciao-a", second: dataset.name}


def test_a_relative_sqlite_url_names_an_absolute_file(tmp_path, monkeypatch):
    from storage.store import to_url

    monkeypatch.chdir(tmp_path)
    opened = open_store("sqlite:///rel.db")
    try:
        assert opened.url == f"sqlite:///{tmp_path / 'rel.db'}"
        assert opened.data_dir == tmp_path
    finally:
        opened.dispose()
    assert to_url("sqlite:///rel.db?timeout=5") == (
        f"sqlite:///{tmp_path / 'rel.db'}?timeout=5"
    )
    # absolute, in-memory and other databases stay as given
    for url in ("sqlite:////abs/x.db", "sqlite://", "postgresql://u@host/runs"):
        assert to_url(url) == url


# ---- deleting and stale runs, continued


def test_delete_run_removes_its_files_only_once_committed(store, ciao_dataset):
    run_id = _new_run(store, ciao_dataset)
    _save_best(store, run_id)
    folder = store.run_dir(run_id)

    # a transaction that fails after the delete keeps the rows and the files
    with pytest.raises(RuntimeError):
        with store.session(write=True) as session:
            q.delete_run(session, run_id)
            assert folder.is_dir()
            raise RuntimeError("a later step of the same transaction failed")
    assert folder.is_dir()
    with store.session() as session:
        assert q.checkpoint_path(session, run_id).is_file()

    with store.session(write=True) as session:
        q.delete_run(session, run_id)
        assert folder.is_dir()
    assert not folder.exists()


def test_a_live_pid_with_an_old_heartbeat_is_stale(store, ciao_dataset):
    from datetime import timedelta

    from storage.schema import utcnow

    quiet, beating, reused = (_new_run(store, ciao_dataset) for _ in range(3))
    # a process started now: the pid of a worker that wrote two minutes ago and
    # died, given to another program (as after a reboot)
    newer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        with store.session(write=True) as session:
            # this test process is alive: only the heartbeat tells the first apart
            q.start_run(session, quiet, device="cpu")
            q.start_run(session, beating, device="cpu")
            q.start_run(session, reused, device="cpu", pid=newer.pid)
            session.get(RunRow, quiet).heartbeat = (
                utcnow() - q.STALE_AFTER - timedelta(minutes=1)
            )
            session.get(RunRow, reused).heartbeat = utcnow() - timedelta(minutes=2)
        with store.session(write=True) as session:
            assert q.mark_stale_runs(session) == 2
        with store.session() as session:
            assert q.get_run(session, quiet).status == "interrupted"
            assert q.get_run(session, reused).status == "interrupted"
            assert q.get_run(session, beating).status == "running"
    finally:
        newer.kill()
        newer.wait()
    assert q.STALE_AFTER >= timedelta(seconds=10 * q.BEAT_SECONDS)
