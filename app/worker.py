"""The worker: one run of the store, trained in its own process.

The workbench starts ``python main.py --db URL worker --run ID`` with
:func:`launch_worker` and reads two things: the run store, where every epoch's numbers,
attention maps, per-user results, checkpoints and the end state are written as they
come, and the worker's stdout, one JSON object per line, for liveliness.

Faults (SPEC §4): SIGTERM or SIGINT sets a flag the trainer polls between batches,
also those of validation and the final evaluation, and the worker between the steps
that prepare the run; it saves a resumable checkpoint and the run is marked
cancelled. A kill or a crash leaves the run "running" with a dead pid;
:func:`settle_run` (the launcher, when the process exits) or
``storage.queries.mark_stale_runs`` (at start-up) marks it interrupted or failed.
Everything written before stays, each checkpoint recorded with its size and hash as it
was saved; ``resume`` checks ``last.pt`` against that record and continues from it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from engine.evaluation import average_attention
from engine.experiment import DataSpec, RunSpec, build_run, load_dataset, make_trainer
from engine.training import (
    BatchDone,
    EpochDone,
    Finished,
    Started,
    TrainResult,
    Validated,
)
from storage import Store, StoreError
from storage import queries as q

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
# a live map is a glance, not a measurement: a bounded number of users keeps each
# validation cheap; the final map uses more
LIVE_ATTENTION_USERS = 256
FINAL_ATTENTION_USERS = 2000
BATCH_EVENTS_PER_SECOND = 5.0
# within an epoch the store learns the batch position at most this often (the store
# takes a run whose heartbeat is many beats old for dead)
BEAT_SECONDS = q.BEAT_SECONDS


# ---- the launcher's side
# ---------------------------------------------------------------------


def worker_command(
    run_id: int, db_url: str, threads: int = 1, resume: bool = False
) -> list[str]:
    command = [sys.executable, str(ROOT / "main.py"), "--db", db_url, "worker"]
    command += ["--run", str(int(run_id)), "--threads", str(int(threads))]
    return command + (["--resume"] if resume else [])


def launch_worker(
    run_id: int, db_url: str, threads: int = 1, resume: bool = False
) -> subprocess.Popen:
    """Start a worker process for a stored run; its stdout is JSON lines, one per
    event, and its stderr the log."""
    env = dict(os.environ)
    # idle OpenMP threads sleep instead of spinning on the cores the GUI needs
    env["OMP_WAIT_POLICY"] = "PASSIVE"
    env["OMP_NUM_THREADS"] = str(max(1, int(threads)))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return subprocess.Popen(
        worker_command(run_id, db_url, threads, resume),
        cwd=str(ROOT),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )


def cancel_worker(popen: subprocess.Popen) -> None:
    """Ask a worker to stop: it finishes the batch, saves, marks the run cancelled."""
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)


def settle_run(
    store: Store, run_id: int, returncode: int | None, stderr_tail: str = ""
) -> str | None:
    """After a worker exited: a run it left "running" becomes interrupted (killed by a
    signal) or failed (crashed), with what it said last. Returns the new status."""

    def work(session):
        run = q.get_run(session, run_id)
        if run.status != "running":
            return None
        killed = returncode is not None and returncode < 0
        status = "interrupted" if killed else "failed"
        how = (
            f"killed by signal {-returncode}"
            if killed
            else f"exited with code {returncode}"
        )
        error = f"the worker {how} before recording an end."
        if stderr_tail.strip():
            error += "\n" + stderr_tail.strip()[-4000:]
        q.set_status(session, run_id, status, error=error)
        return status

    return store.transact(work)


# ---- the worker's side
# -----------------------------------------------------------------------


class StopFlag:
    """Set by SIGTERM/SIGINT; polled by the trainer between batches."""

    def __init__(self) -> None:
        self.stopped = False

    def __call__(self) -> bool:
        return self.stopped

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Catch SIGTERM and SIGINT while inside; the old handlers come back after."""

        def handler(signum, _frame):
            log.warning("signal %d: stopping after this batch", signum)
            self.stopped = True

        before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in before:
            signal.signal(sig, handler)
        try:
            yield self
        finally:
            for sig, old in before.items():
                signal.signal(sig, old)


class JsonLines:
    """Events as one JSON object per line; batch events at most a few per second."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.last_batch = 0.0

    def __call__(self, payload: dict[str, Any]) -> None:
        if payload.get("event") == "batch":
            now = time.monotonic()
            if now - self.last_batch < 1.0 / BATCH_EVENTS_PER_SECOND:
                return
            self.last_batch = now
        line = json.dumps(_finite(payload), default=_number, allow_nan=False)
        self.stream.write(line + "\n")
        self.stream.flush()


def _finite(value: Any) -> Any:
    """The payload with every NaN or infinite number (a diverged loss) as None: JSON
    has no NaN, and a strict reader of the events refuses the token."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: Any) -> float | None:
    """A value json cannot write (a 0-d tensor) as a plain, finite number."""
    return _finite(float(value))


class LogCollector(logging.Handler):
    """Keeps log lines until the next write to the store, for the run's log tail."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def load_run_dataset(store: Store, run_id: int):
    """Read the run's data again and check it is the registered version."""
    with store.session() as session:
        run = q.get_run(session, run_id)
        registered = q.get_dataset(session, run.dataset_id)
    dataset = load_dataset(DataSpec.from_dict(registered.spec))
    if dataset.hash != registered.content_hash:
        raise StoreError(
            f"{registered.path}: the data changed since dataset {registered.id} was "
            "registered (content hash differs); register it again and start a new run."
        )
    return dataset


def run_stored(
    store: Store,
    run_id: int,
    *,
    resume: bool = False,
    dataset=None,
    emit: Callable[[dict[str, Any]], None] | None = None,
    observe: Callable[[Any], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train run ``run_id`` in this process, writing everything to the store.

    ``emit`` receives the JSON-ready events, ``observe`` the trainer's own events
    (the command line's progress printer). A failure marks the run failed with its
    traceback and is raised again.
    """
    emit = emit or (lambda payload: None)
    # a refusal (already running, finished, not resumable) leaves the run as it is
    spec = RunSpec.from_dict(store.transact(_claim, run_id, resume))
    collector = LogCollector()
    root = logging.getLogger()
    before = root.level
    # the run's log keeps INFO lines even when the console shows only warnings
    quieted = [h for h in root.handlers if h.level == logging.NOTSET]
    for handler in quieted:
        handler.setLevel(before)
    root.setLevel(min(before, logging.INFO))
    root.addHandler(collector)
    try:
        return _run_stored(
            store, run_id, spec, resume, dataset, emit, observe, should_stop, collector
        )
    except StoppedEarly:
        log.info("run %d: stopped before training began", run_id)
        result = store.transact(_end_stopped_early, run_id, collector.take())
        emit(_finished_event("cancelled", result))
        return result
    except BaseException as exc:
        text = "".join(traceback.format_exception(exc)).strip()
        if isinstance(exc, torch.OutOfMemoryError):
            text = (
                "The GPU ran out of memory. Lower batch_size, hidden or max_len, or "
                "train on another device; resume continues from the last epoch.\n"
                + text
            )
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.transact(_end_failed, run_id, status, text, collector.take())
        emit({"event": "finished", "status": status, "error": str(exc)})
        raise
    finally:
        root.removeHandler(collector)
        root.setLevel(before)
        for handler in quieted:
            handler.setLevel(logging.NOTSET)


class StoppedEarly(Exception):
    """A stop was asked for while the run was still being prepared."""


def _unless_stopped(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise StoppedEarly


def _end_stopped_early(session, run_id: int, lines) -> TrainResult:
    """Mark the run cancelled; what it had learned before (a resumed run's
    checkpoint) is kept as it was."""
    q.append_log(session, run_id, lines)
    q.set_status(session, run_id, "cancelled", stop_reason="cancelled")
    run = q.get_run(session, run_id)
    return TrainResult(
        best_epoch=run.best_epoch or 0,
        epochs_trained=run.epochs,
        stop_reason="cancelled",
        seconds=run.seconds or 0.0,
        device=run.device or "",
    )


def _finished_event(status: str, result: TrainResult) -> dict[str, Any]:
    return {
        "event": "finished",
        "status": status,
        "stop_reason": result.stop_reason,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs_trained,
        "seconds": result.seconds,
        "valid": result.valid.metrics if result.valid else {},
        "test": result.test.metrics if result.test else {},
    }


def _end_failed(session, run_id: int, status: str, text: str, lines) -> None:
    q.append_log(session, run_id, lines + text.splitlines()[-20:])
    q.set_status(session, run_id, status, error=text)


def _claim(session, run_id: int, resume: bool) -> dict[str, Any]:
    """Check the run may start here and mark it running by this process, in one
    transaction, so two workers never take the same run; returns its spec."""
    run = q.get_run(session, run_id)
    # a "running" run may be taken over only when its own worker is gone
    if run.status == "running" and not q.mark_stale_run(session, run_id):
        raise StoreError(
            f"run {run_id} is already running (pid {run.pid} on {run.host}); cancel "
            "it first, or wait for it to end."
        )
    run = q.get_run(session, run_id)
    if run.status == "finished":
        raise StoreError(f"run {run_id} has already finished.")
    if run.status != "queued" and not resume:
        raise StoreError(
            f"run {run_id} is {run.status}; resume it (resume --run {run_id}) to "
            "continue from its last checkpoint."
        )
    q.start_run(session, run_id, device=None)
    return run.spec


def _run_stored(
    store, run_id, spec, resume, dataset, emit, observe, should_stop, collector
):
    # reading the data, splitting it and building the model take seconds each on a
    # large dataset: a stop asked for meanwhile ends the run between them (SPEC §4)
    _unless_stopped(should_stop)
    if dataset is None:
        dataset = load_run_dataset(store, run_id)
        _unless_stopped(should_stop)
    prepared = build_run(spec, dataset)
    _unless_stopped(should_stop)
    folder = store.run_dir(run_id)
    trainer = make_trainer(
        prepared,
        checkpoint_dir=folder,
        should_stop=should_stop,
        on_checkpoint=lambda kind, path: record_checkpoint(store, run_id, kind, path),
    )
    _unless_stopped(should_stop)
    if resume:
        check_checkpoints(store, run_id)
    resumed = resume and trainer.resume()
    store.transact(_begin, run_id, str(trainer.device), trainer.state.epoch)
    log.info(
        "run %d: %s on %s, %s from epoch %d",
        run_id,
        spec.model,
        dataset.name,
        "resumed" if resumed else "started",
        trainer.state.epoch,
    )
    recorder = Recorder(store, run_id, prepared, trainer, emit, collector)
    result = None
    for event in trainer.run():
        if observe is not None:
            observe(event)
        recorder(event)
        if isinstance(event, Finished):
            result = event.result
    return result


# the checkpoints a trainer writes, as artifact kinds (engine.training.Trainer)
CHECKPOINTS = ("last", "best")


def record_checkpoint(store: Store, run_id: int, kind: str, path: Path) -> None:
    """Record a checkpoint in the store as soon as the trainer has saved it, so a run
    that is killed or crashes later resumes from a file the store can check."""
    # hashed before the transaction: the write lock is held for the row only
    digest = q.file_digest(path)
    store.transact(q.record_artifact, run_id, kind, path, digest)


def check_checkpoints(store: Store, run_id: int) -> None:
    """Before a resume loads them: each recorded checkpoint is still the file the run
    saved (size and hash). One an older workbench left unrecorded is loaded as it
    is (the loader refuses anything but tensors and plain values anyway).

    A worker killed between writing a checkpoint and recording it leaves a file newer
    than its record. Such a ``last.pt`` is taken when it holds the epoch the store has
    recorded last (then it is the run's own latest state) and recorded anew; any other
    mismatch is refused. ``best.pt`` holds weights only, loaded as tensors alone: a
    mismatch there is recorded anew with a warning.
    """
    from engine.checkpoint import load_checkpoint

    changed = []
    with store.session() as session:
        recorded = {row.kind: row for row in q.artifacts(session, run_id)}
        epochs = q.get_run(session, run_id).epochs
        for kind in CHECKPOINTS:
            row = recorded.get(kind)
            if row is None:
                continue
            try:
                # inside the store's folder, whatever else
                path = q.checked_path(session, row, verify=False)
                try:
                    q.checked_path(session, row)
                    continue
                except StoreError:
                    if kind == "last":
                        saved = load_checkpoint(path).get("state", {}).get("epoch")
                        if saved != epochs:
                            raise
            except StoreError as exc:
                raise StoreError(
                    f"run {run_id} cannot resume: {exc} Start a new run of the same "
                    "settings instead."
                ) from exc
            log.warning(
                "run %d: %s changed after it was recorded (a worker stopped between "
                "saving and recording it); taking it as the run's own",
                run_id,
                path.name,
            )
            changed.append((kind, path))
    for kind, path in changed:
        record_checkpoint(store, run_id, kind, path)


def _begin(session, run_id: int, device: str, epoch: int) -> None:
    # numbers past the checkpoint's epoch were written by a run that died before
    # saving; the resumed run writes them again
    q.drop_metrics_after(session, run_id, epoch)
    q.start_run(session, run_id, device=device)


class Recorder:
    """Turns trainer events into store rows and JSON lines."""

    def __init__(self, store, run_id, prepared, trainer, emit, collector):
        self.store = store
        self.run_id = run_id
        self.prepared = prepared
        self.trainer = trainer
        self.emit = emit
        self.collector = collector
        # wall time counts on from what the run had spent before a resume
        self.t0 = time.perf_counter() - trainer.state.elapsed
        self.metric = prepared.train_config.metric
        self.last_beat = time.monotonic()

    def __call__(self, event) -> None:
        if isinstance(event, Started):
            self.emit({"event": "started", "run": self.run_id, **vars(event)})
        elif isinstance(event, BatchDone):
            self._batch(event)
        elif isinstance(event, EpochDone):
            self._epoch(event)
        elif isinstance(event, Validated):
            self._validated(event)
        elif isinstance(event, Finished):
            self._finished(event.result)

    def _batch(self, event: BatchDone) -> None:
        now = time.monotonic()
        if now - self.last_beat >= BEAT_SECONDS:
            self.last_beat = now
            self.store.transact(q.beat, self.run_id, event.batch, event.batches)
        self.emit({"event": "batch", **vars(event)})

    def _epoch(self, event: EpochDone) -> None:
        values = {**event.losses, "seconds": event.seconds}
        self.store.transact(self._write_epoch, event.epoch, "train", values)
        self.emit({"event": "epoch", "epoch": event.epoch, **values})

    def _validated(self, event: Validated) -> None:
        maps = {}
        # a stop was asked for: the live map is a glance, the stop comes first (the
        # final map is drawn at the end anyway)
        if event.improved and not self.trainer.should_stop():
            maps = average_attention(
                self.prepared.model,
                self.prepared.split,
                "valid",
                max_users=LIVE_ATTENTION_USERS,
            )
        values = {**event.metrics, "seconds": event.seconds}
        self.store.transact(self._write_epoch, event.epoch, "valid", values, maps)
        self.emit(
            {
                "event": "valid",
                "epoch": event.epoch,
                "improved": event.improved,
                "best_epoch": event.best_epoch,
                "best_value": event.best_value,
                **values,
            }
        )

    def _write_epoch(self, session, epoch, split, values, maps=None) -> None:
        q.add_metrics(session, self.run_id, epoch, split, values)
        if maps:
            q.add_attention(session, self.run_id, epoch, maps)
        state = self.trainer.state
        q.update_progress(
            session,
            self.run_id,
            epochs=epoch,
            best_epoch=state.best_epoch or None,
            seconds=time.perf_counter() - self.t0,
        )
        q.append_log(session, self.run_id, self.collector.take())

    def _finished(self, result: TrainResult) -> None:
        maps = {}
        if result.test is not None:
            # asked to stop while finishing: a map over fewer users ends sooner
            users = (
                LIVE_ATTENTION_USERS
                if self.trainer.should_stop()
                else FINAL_ATTENTION_USERS
            )
            maps = average_attention(
                self.prepared.model, self.prepared.split, "test", max_users=users
            )
        status = "cancelled" if result.stop_reason == "cancelled" else "finished"
        self.store.transact(self._write_end, result, maps, status)
        self.emit(_finished_event(status, result))

    def _write_end(self, session, result: TrainResult, maps, status: str) -> None:
        run_id, epoch = self.run_id, result.best_epoch
        for which, evaluated in (("valid", result.valid), ("test", result.test)):
            if evaluated is None:
                continue
            if not q.has_metrics(session, run_id, epoch, which, self.metric):
                q.add_metrics(session, run_id, epoch, which, evaluated.metrics)
            q.add_user_results(session, run_id, which, evaluated.per_user)
        # the best checkpoint under a second protocol: names carry the protocol
        for which, evaluated in result.extra.items():
            named = {
                f"{evaluated.protocol} {k}": v for k, v in evaluated.metrics.items()
            }
            if not q.has_metrics(session, run_id, epoch, which, next(iter(named))):
                q.add_metrics(session, run_id, epoch, which, named)
        if maps:
            q.add_attention(session, run_id, max(result.epochs_trained, epoch), maps)
        for kind in ("best", "last"):
            path = self.store.run_dir(run_id) / f"{kind}.pt"
            if path.is_file():
                q.record_artifact(session, run_id, kind, path)
        q.update_progress(
            session,
            run_id,
            epochs=result.epochs_trained,
            best_epoch=epoch,
            seconds=result.seconds,
            stop_reason=result.stop_reason,
        )
        q.append_log(session, run_id, self.collector.take())
        q.set_status(session, run_id, status)
