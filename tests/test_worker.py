"""The worker process end to end: progress into the store, faults, resume, several
workers at once, and ``train`` storing its run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from app.worker import launch_worker, run_stored, settle_run
from engine.checkpoint import load_checkpoint
from engine.errors import CheckpointError
from engine.experiment import DataSpec, RunSpec, load_dataset
from engine.training import BatchDone, EpochDone, Started, Validated
from storage import StoreError, open_store
from storage import queries as q

WATCHDOG_S = 120
EPOCHS = 2


@pytest.fixture(scope="module")
def ciao(ciao_small):
    spec = DataSpec(path=str(ciao_small))
    return spec, load_dataset(spec)


@pytest.fixture()
def store(tmp_path):
    opened = open_store(str(tmp_path / "runs.db"))
    yield opened
    opened.dispose()


def new_run(store, ciao, model="sasrec", **train) -> int:
    spec, dataset = ciao
    settings = {
        "epochs": EPOCHS,
        "batch_size": 32,
        "seed": 3,
        "device": "cpu",
        "min_epochs": 0,
        **train,
    }
    config = {"hidden": 16} if model != "poprec" else {}
    run_spec = RunSpec(spec, model, config, settings).resolved().to_dict()

    def work(session):
        dataset_id = q.register_dataset(session, spec.to_dict(), dataset)
        return q.create_run(session, run_spec, dataset_id)

    return store.transact(work)


def read_events(popen, until=None) -> list[dict]:
    """JSON lines of a worker until EOF or until ``until(event)`` is true; a watchdog
    kills a worker that hangs."""
    watchdog = threading.Timer(WATCHDOG_S, popen.kill)
    watchdog.start()
    events = []
    try:
        for line in popen.stdout:
            events.append(json.loads(line))
            if until is not None and until(events[-1]):
                break
    finally:
        watchdog.cancel()
    return events


def finish(popen) -> int:
    popen.stdout.read()
    stderr = popen.stderr.read()
    code = popen.wait(timeout=WATCHDOG_S)
    assert code == 0 or code < 0, stderr
    return code


def final_metrics(store, run_id):
    with store.session() as session:
        run = q.get_run(session, run_id)
        curves = q.run_curves(session, run_id)
    valid = curves[(curves.split == "valid") & (curves.name == "NDCG@5")]
    return run, valid.value.tolist()


def integrity(store) -> str:
    with store.engine.connect() as connection:
        return connection.exec_driver_sql("PRAGMA integrity_check").scalar()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, ciao):
    """The uninterrupted run, trained in this process: what resumed runs must reach."""
    opened = open_store(str(tmp_path_factory.mktemp("ref") / "runs.db"))
    run_id = new_run(opened, ciao)
    run_stored(opened, run_id, dataset=ciao[1])
    run, curve = final_metrics(opened, run_id)
    opened.dispose()
    assert run.status == "finished" and len(curve) == EPOCHS
    return run, curve


def test_two_workers_at_once_one_finishes_one_is_cancelled(store, ciao):
    """A CaFe worker runs to the end while a long SASRec worker writes to the same
    database; then SIGTERM stops the second after its batch, with a checkpoint."""
    done_id = new_run(store, ciao, model="cafe")
    # at least 200 epochs: patience must not end it before the signal does
    long_id = new_run(store, ciao, seed=1, epochs=200, min_epochs=200)
    done = launch_worker(done_id, store.url)
    long = launch_worker(long_id, store.url)
    events = read_events(done)
    assert finish(done) == 0

    read_events(long, until=lambda e: e["event"] == "epoch")
    asked = time.perf_counter()
    long.send_signal(signal.SIGTERM)
    cancelled = read_events(long)
    assert finish(long) == 0
    stopped_after = time.perf_counter() - asked

    assert integrity(store) == "ok"
    check_worker_run(store, ciao, done_id, events)
    with store.session() as session:
        maps = q.attention_maps(session, done_id)
        run = q.get_run(session, long_id)
        curves = q.run_curves(session, long_id)
    # CaFe has an item and an intent encoder of 2 blocks each
    assert any(key.startswith("intent layer 2") for key in maps)
    assert all(grid.shape == (50, 50) for grid in maps.values())

    assert cancelled[-1]["status"] == "cancelled"
    assert run.status == "cancelled" and run.stop_reason == "cancelled"
    saved = load_checkpoint(store.run_dir(long_id) / "last.pt")
    assert 1 <= saved["state"]["epoch"] < 200 and run.epochs >= 1
    trained = curves[(curves.split == "train") & (curves.name == "loss")]
    assert trained.epoch.tolist() == list(range(1, run.epochs + 1))
    # a generous bound for a loaded machine; the worker stops after one batch
    assert stopped_after < 10


def check_worker_run(store, ciao, run_id, events) -> None:
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [1, 2]
    assert events[-1]["status"] == "finished" and events[-1]["test"]
    with store.session() as session:
        run = q.get_run(session, run_id)
        curves = q.run_curves(session, run_id)
        users = q.user_results(session, run_id, "test")
        maps = q.attention_maps(session, run_id)
        best = q.checkpoint_path(session, run_id, "best")
    assert run.status == "finished" and run.device == "cpu" and run.pid
    assert run.test == pytest.approx(events[-1]["test"])
    assert "started from epoch 0" in run.log
    losses = curves[(curves.split == "train") & (curves.name == "loss")]
    assert losses.epoch.tolist() == [1, 2]
    assert len(users) == len(ciao[1].user_ids) - (ciao[1].lengths() < 3).sum()
    assert users["NDCG@5"].mean() == pytest.approx(run.test["NDCG@5"])
    assert maps and all(grid.ndim == 2 for grid in maps.values())
    assert set(load_checkpoint(best)["model"]) == set(
        load_checkpoint(store.run_dir(run_id) / "last.pt")["model"]
    )


def test_kill_9_then_resume_reaches_the_uninterrupted_metrics(store, ciao, reference):
    run_id = new_run(store, ciao)
    popen = launch_worker(run_id, store.url)
    last = store.run_dir(run_id) / "last.pt"
    read_events(popen, until=lambda e: e["event"] == "valid" and e["epoch"] == 1)
    # the epoch-1 checkpoint follows the validation; kill during epoch 2
    while not last.exists():
        assert popen.poll() is None, popen.stderr.read()
        time.sleep(0.005)
    popen.send_signal(signal.SIGKILL)
    code = popen.wait(timeout=WATCHDOG_S)
    popen.stdout.close()
    popen.stderr.close()
    assert settle_run(store, run_id, code, "") == "interrupted"

    assert integrity(store) == "ok"
    run, curve = final_metrics(store, run_id)
    assert run.status == "interrupted" and "signal 9" in run.error
    assert curve[0] == reference[1][0]

    with pytest.raises(StoreError, match="resume"):
        run_stored(store, run_id, dataset=ciao[1])
    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and run.error is None
    assert curve == reference[1]
    assert run.test == reference[0].test and run.best == reference[0].best


def test_cancel_mid_epoch_then_resume_matches(store, ciao, reference):
    run_id = new_run(store, ciao)
    batches, per_epoch = [], []

    def count(event):
        if isinstance(event, Started):
            per_epoch.append(event.batches_per_epoch)
        if isinstance(event, BatchDone):
            batches.append(event)

    result = run_stored(
        store,
        run_id,
        dataset=ciao[1],
        observe=count,
        should_stop=lambda: len(batches) == 13,
    )
    assert result.stop_reason == "cancelled"
    saved = load_checkpoint(store.run_dir(run_id) / "last.pt")
    # the stop fell inside epoch 2, after its first few batches
    assert 13 - per_epoch[0] > 0
    assert (saved["state"]["epoch"], saved["state"]["batch"]) == (1, 13 - per_epoch[0])
    with store.session() as session:
        assert q.get_run(session, run_id).status == "cancelled"

    # the command a person types: it reads the data again and checks its hash
    from app.cli import main

    assert main(["--db", store.url, "resume", "--run", str(run_id), "--quiet"]) == 0
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]
    assert run.test == reference[0].test


WRITER = """
import sys
from storage import open_store
from storage import queries as q
store = open_store(sys.argv[1])
run_id, offset = int(sys.argv[2]), int(sys.argv[3])
for epoch in range(offset, offset + 150):
    store.transact(q.add_metrics, run_id, epoch, "train", {"loss": 1.0, "x": 2.0})
    store.transact(q.append_log, run_id, [f"epoch {epoch}"])
"""


def test_concurrent_writers_lose_no_row(store, ciao):
    run_id = new_run(store, ciao)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store.url, str(run_id), str(offset)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for offset in (0, 1000)
    ]
    for popen in writers:
        _, stderr = popen.communicate(timeout=WATCHDOG_S)
        assert popen.returncode == 0, stderr
    with store.session() as session:
        curves = q.run_curves(session, run_id)
        log_lines = q.get_run(session, run_id).log.splitlines()
    assert len(curves) == 2 * 150 * 2
    assert len(log_lines) == 300


def test_changed_data_fails_the_run_with_its_reason(store, ciao, tmp_path):
    spec, dataset = ciao
    run_id = new_run(store, ciao)
    with store.session(write=True) as session:
        q.set_status(session, run_id, "queued")
    moved = DataSpec(path=str(tmp_path / "nowhere"))
    with store.session(write=True) as session:
        from storage.schema import DatasetRow

        row = session.get(DatasetRow, q.get_run(session, run_id).dataset_id)
        row.path = moved.path
    with pytest.raises(Exception, match="nowhere"):
        run_stored(store, run_id)
    with store.session() as session:
        run = q.get_run(session, run_id)
    assert run.status == "failed" and "nowhere" in run.error


def test_resume_refuses_a_crafted_checkpoint(store, ciao, tmp_path):
    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(tmp_path / 'pwned')!r}, 'w')",))

    run_id = new_run(store, ciao)
    with store.session(write=True) as session:
        q.set_status(session, run_id, "interrupted")
    folder = store.run_dir(run_id)
    folder.mkdir(parents=True)
    torch.save({"model": Payload()}, folder / "last.pt")
    with pytest.raises(CheckpointError, match="refused"):
        run_stored(store, run_id, resume=True, dataset=ciao[1])
    assert not (tmp_path / "pwned").exists()
    with store.session() as session:
        assert q.get_run(session, run_id).status == "failed"


def test_train_command_stores_its_run(tmp_path, ciao_small, capsys):
    from app.cli import main

    db = str(tmp_path / "cli.db")
    code = main(
        ["--db", db, "train", "--data", str(ciao_small), "--model", "pop"]
        + ["--device", "cpu", "--quiet", "--json"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    store = open_store(db)
    with store.session() as session:
        [run] = q.list_runs(session)
    store.dispose()
    assert run.id == printed["run"] and run.status == "finished"
    assert run.test == pytest.approx(printed["test"])


def test_out_of_memory_fails_the_run_and_resume_recovers(
    store, ciao, reference, monkeypatch
):
    from engine.training import Trainer

    run_id = new_run(store, ciao)
    real_step = Trainer._step

    def step_until_oom(self, batch):
        if self.state.epoch == 1 and self.state.batch == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8 GiB")
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "_step", step_until_oom)
    with pytest.raises(torch.OutOfMemoryError):
        run_stored(store, run_id, dataset=ciao[1])
    monkeypatch.setattr(Trainer, "_step", real_step)

    run, curve = final_metrics(store, run_id)
    assert run.status == "failed" and run.error.startswith("The GPU ran out of memory")
    assert "Tried to allocate" in run.log
    # the first epoch, written before the crash, is kept
    assert curve == reference[1][:1]

    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]


def test_resume_refuses_a_live_run_even_when_another_run_is_stale(store, ciao):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live_id, stale_id = new_run(store, ciao), new_run(store, ciao)
    with store.session(write=True) as session:
        # this test process plays the live worker of the first run
        q.start_run(session, live_id, device="cpu")
        q.start_run(session, stale_id, device="cpu", pid=dead.pid)

    with pytest.raises(StoreError, match=f"run {live_id} is already running"):
        run_stored(store, live_id, resume=True, dataset=ciao[1])
    with store.session() as session:
        live = q.get_run(session, live_id)
    assert live.status == "running" and live.pid == os.getpid()


def test_a_stale_run_is_taken_over_by_resume(store, ciao, reference):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_id = new_run(store, ciao)
    with store.session(write=True) as session:
        q.start_run(session, run_id, device="cpu", pid=dead.pid)
    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]


def _stop_when(event_type, epoch):
    """An observer and a stop check: the check turns true once the observer has seen
    ``event_type`` of ``epoch``, so the stop falls in what the trainer does next."""
    seen = []

    def observe(event):
        if isinstance(event, event_type) and event.epoch == epoch:
            seen.append(event)

    return observe, lambda: bool(seen)


def test_cancel_during_validation_then_resume_redoes_it_and_matches(
    store, ciao, reference
):
    run_id = new_run(store, ciao)
    # the stop is asked for after epoch 1's last batch: its validation sees it
    observe, stop = _stop_when(EpochDone, 1)
    result = run_stored(
        store, run_id, dataset=ciao[1], observe=observe, should_stop=stop
    )

    assert result.stop_reason == "cancelled" and result.test is None
    run, curve = final_metrics(store, run_id)
    # the epoch was trained and recorded; its validation was cut short
    assert run.status == "cancelled" and curve == []
    with store.session() as session:
        assert q.has_metrics(session, run_id, 1, "train", "loss")
    saved = load_checkpoint(store.run_dir(run_id) / "last.pt")
    assert saved["state"]["epoch"] == 1 and saved["state"]["unvalidated"]

    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]
    assert run.test == reference[0].test and run.best == reference[0].best


def test_cancel_during_the_final_evaluation_then_resume_matches(store, ciao, reference):
    run_id = new_run(store, ciao)
    observe, stop = _stop_when(Validated, EPOCHS)
    result = run_stored(
        store, run_id, dataset=ciao[1], observe=observe, should_stop=stop
    )

    assert result.stop_reason == "cancelled" and result.test is None
    assert result.epochs_trained == EPOCHS
    run, curve = final_metrics(store, run_id)
    assert run.status == "cancelled" and run.test == {}
    # every validation was done; only the test evaluation is left
    assert curve == reference[1]

    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]
    assert run.test == reference[0].test and run.best == reference[0].best


def test_a_stop_after_a_new_best_skips_the_live_attention_map(store, ciao, reference):
    run_id = new_run(store, ciao)
    # epoch 1 always improves on nothing; the stop is asked for as it is recorded
    observe, stop = _stop_when(Validated, 1)
    result = run_stored(
        store, run_id, dataset=ciao[1], observe=observe, should_stop=stop
    )

    assert result.stop_reason == "cancelled"
    with store.session() as session:
        assert q.attention_maps(session, run_id) == {}
    run, curve = final_metrics(store, run_id)
    assert run.status == "cancelled" and curve == reference[1][:1]

    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]
    with store.session() as session:
        assert q.attention_maps(session, run_id)


def test_a_crashed_runs_checkpoints_are_recorded_and_checked_on_resume(
    store, ciao, monkeypatch
):
    from engine.training import Trainer

    run_id = new_run(store, ciao)
    real_step = Trainer._step

    def step_until_crash(self, batch):
        if self.state.epoch == 1 and self.state.batch == 2:
            raise RuntimeError("the worker crashed")
        return real_step(self, batch)

    monkeypatch.setattr(Trainer, "_step", step_until_crash)
    with pytest.raises(RuntimeError, match="crashed"):
        run_stored(store, run_id, dataset=ciao[1])
    monkeypatch.setattr(Trainer, "_step", real_step)

    # the epoch-1 checkpoints were recorded as they were saved, not at the end
    with store.session() as session:
        last = q.checkpoint_path(session, run_id, "last")
        best = q.checkpoint_path(session, run_id, "best")
    assert load_checkpoint(last)["state"]["epoch"] == 1 and best.is_file()

    # killed between saving a checkpoint and recording it: the file is newer than
    # its record but holds the epoch the store recorded last, so it is the run's own
    saved = load_checkpoint(last)
    saved["optimizer"]["state"] = {}  # other bytes, same epoch
    torch.save(saved, last)
    from app.worker import check_checkpoints

    check_checkpoints(store, run_id)
    with store.session() as session:
        assert q.checkpoint_path(session, run_id, "last") == last  # recorded anew

    # a last.pt that is not the one the run saved is not resumed from
    saved["state"]["epoch"] = 0
    torch.save(saved, last)
    with pytest.raises(StoreError, match=f"run {run_id} cannot resume: .*changed"):
        run_stored(store, run_id, resume=True, dataset=ciao[1])
    with store.session() as session:
        run = q.get_run(session, run_id)
    assert run.status == "failed" and "cannot resume" in run.error


@pytest.mark.parametrize("polls", [1, 2, 3])
def test_a_stop_while_the_run_is_prepared_cancels_it_at_once(
    store, ciao, reference, polls
):
    """Reading the data, building the model and the trainer each take seconds on a
    large dataset; a stop during them ends the run before the first batch."""
    run_id = new_run(store, ciao)
    asked, seen, events = [], [], []

    def stop() -> bool:
        asked.append(True)
        return len(asked) >= polls

    result = run_stored(
        store, run_id, emit=events.append, should_stop=stop, observe=seen.append
    )
    assert result.stop_reason == "cancelled" and result.epochs_trained == 0
    assert seen == [] and len(asked) == polls
    assert events[-1]["event"] == "finished" and events[-1]["status"] == "cancelled"
    with store.session() as session:
        run = q.get_run(session, run_id)
    assert run.status == "cancelled" and run.stop_reason == "cancelled"
    assert run.error is None and "stopped before training began" in run.log

    # nothing was trained: resume starts from the beginning and matches
    run_stored(store, run_id, resume=True, dataset=ciao[1])
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]


def test_a_run_of_a_relative_path_resumes_from_another_folder(
    store, ciao, reference, tmp_path, monkeypatch
):
    from app.cli import main

    spec, dataset = ciao
    folder = Path(spec.path)
    monkeypatch.chdir(folder.parent)
    run_id = new_run(store, (DataSpec(path=folder.name), dataset))
    result = run_stored(store, run_id, should_stop=lambda: True)
    assert result.stop_reason == "cancelled"

    # resume elsewhere, the store named after the sub-command
    monkeypatch.chdir(tmp_path)
    code = main(["resume", "--run", str(run_id), "--quiet", "--db", store.url])
    assert code == 0
    run, curve = final_metrics(store, run_id)
    assert run.status == "finished" and curve == reference[1]


def test_a_nan_loss_is_written_as_json_null():
    import io

    import numpy as np

    from app.worker import JsonLines

    stream = io.StringIO()
    emit = JsonLines(stream)
    emit({"event": "epoch", "epoch": 3, "loss": float("nan"), "aux": np.float32("inf")})
    emit({"event": "valid", "metrics": [torch.tensor(float("nan")), 0.5]})

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    lines = [
        json.loads(line, parse_constant=refuse)
        for line in stream.getvalue().splitlines()
    ]
    assert lines[0] == {"event": "epoch", "epoch": 3, "loss": None, "aux": None}
    assert lines[1]["metrics"] == [None, 0.5]
