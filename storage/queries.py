"""Reading and writing runs: every function takes the caller's Session first.

The caller frames the transaction (``Store.session`` or ``Store.transact``); these
functions never commit. Queries are built with SQLAlchemy expressions only, never from
strings, and paths read from the database are checked before a file is opened.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from storage.errors import StoreError, UnsafePathError
from storage.schema import (
    RUN_STATUSES,
    ArtifactRow,
    AttentionRow,
    DatasetRow,
    MetricRow,
    RunRow,
    UserResultRow,
    utcnow,
)
from storage.store import after_commit

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 300
# how often a training worker writes its heartbeat within an epoch (app.worker)
BEAT_SECONDS = 2.0
# a worker that has not written for this long is taken for dead, on any host (a pid
# can be reused, after a reboot above all). Far above the beat: a validation, the
# final evaluation or reading a large dataset write nothing for a while.
STALE_AFTER = max(timedelta(seconds=10 * BEAT_SECONDS), timedelta(minutes=10))
# a worker's own process starts before its first heartbeat; the margin covers the
# boot time in /proc (whole seconds) and a clock set forward while it loads its data
PID_START_SLACK = timedelta(seconds=30)
# the stderr of a worker the workbench started, in its run folder (app.gui.jobs)
WORKER_ERRORS_FILE = "worker.err"
# lines of that file attached to the error of a run found stale
STDERR_TAIL_LINES = 20
# SQLite allows 32,766 bound parameters; stay well below in IN lists
CHUNK = 900


# ---- result types
# ----------------------------------------------------------------------------


@dataclass
class DatasetSummary:
    id: int
    name: str
    path: str
    content_hash: str
    users: int
    items: int
    intents: int
    interactions: int
    created: datetime
    runs: int
    spec: dict[str, Any]  # engine.experiment.DataSpec.to_dict()
    stats: dict[str, Any]


@dataclass
class RunSummary:
    id: int
    model: str
    dataset: str
    dataset_id: int
    status: str
    seed: int
    protocol: str
    device: str | None
    created: datetime
    started: datetime | None
    finished: datetime | None
    seconds: float | None
    epochs: int  # completed epochs
    max_epochs: int  # epochs asked for
    best_epoch: int | None
    best: dict[str, float] = field(default_factory=dict)  # valid metrics, best epoch
    test: dict[str, float] = field(default_factory=dict)  # test metrics, best epoch
    error: str | None = None
    batch: int | None = None  # batches done in the epoch being trained
    batches: int | None = None  # batches an epoch
    heartbeat: datetime | None = None  # last write of the worker


@dataclass
class RunDetail(RunSummary):
    spec: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    pid: int | None = None
    host: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    stop_reason: str | None = None
    dataset_hash: str = ""


# ---- datasets
# --------------------------------------------------------------------------------


def spec_hash(data_spec: dict[str, Any]) -> str:
    text = json.dumps(data_spec, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def register_dataset(
    session: Session,
    data_spec: dict[str, Any],
    dataset,
    *,
    name: str | None = None,
) -> int:
    """The id of this dataset version, adding it on first sight.

    ``dataset`` is an ``engine.data.Dataset``; the same content read with the same spec
    is one row however often it is registered. Its paths are stored absolute, so a
    worker in another folder reads the same files. ``name`` (default: the dataset's
    own) is the name shown for it; given for a version already registered under
    another name, it renames that row.
    """
    stored = absolute_data_spec(data_spec)
    row = _registered(session, dataset.hash, stored, data_spec)
    if row is not None:
        if name is not None and row.name != name:
            row.name = name
        return row.id
    row = DatasetRow(
        name=name if name is not None else dataset.name,
        path=str(stored.get("path", "")),
        items_path=stored.get("items_path"),
        mapping=_jsonable(stored.get("mapping") or dataset.mapping.to_dict()),
        filters=_jsonable(stored.get("filters") or dataset.filters.to_dict()),
        content_hash=dataset.hash,
        spec_hash=spec_hash(stored),
        stats=_jsonable(dataset.stats),
        stats_before=_jsonable(dataset.stats_before),
        notes=list(dataset.notes),
    )
    session.add(row)
    session.flush()
    return row.id


def _registered(
    session: Session, content: str, stored: dict[str, Any], typed: dict[str, Any]
) -> DatasetRow | None:
    """The row of this content and spec; one an older workbench stored with the
    paths as typed gets the absolute ones now."""
    key = spec_hash(stored)
    for wanted in dict.fromkeys((key, spec_hash(typed))):
        row = session.scalar(
            select(DatasetRow).where(
                DatasetRow.content_hash == content, DatasetRow.spec_hash == wanted
            )
        )
        if row is not None:
            break
    else:
        return None
    if row.spec_hash != key:
        row.path = str(stored.get("path", ""))
        row.items_path = stored.get("items_path")
        row.spec_hash = key
    return row


def absolute_data_spec(data_spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a data spec (``DataSpec.to_dict()``) with ``path`` and ``items_path``
    made absolute against the current folder; the caller's dict is left alone."""
    found = dict(data_spec)
    for key in ("path", "items_path"):
        value = found.get(key)
        # a URL (another filesystem) means the same from every folder
        if value and "://" not in str(value):
            found[key] = os.path.abspath(os.path.expanduser(str(value)))
    return found


def _absolute_run_spec(run_spec: dict[str, Any]) -> dict[str, Any]:
    """A copy of a run spec whose data paths are absolute."""
    if not run_spec.get("data"):
        return dict(run_spec)
    return {**run_spec, "data": absolute_data_spec(run_spec["data"])}


def list_datasets(session: Session) -> list[DatasetSummary]:
    counts = (
        select(RunRow.dataset_id, func.count(RunRow.id).label("n"))
        .group_by(RunRow.dataset_id)
        .subquery()
    )
    rows = session.execute(
        select(DatasetRow, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.dataset_id == DatasetRow.id)
        .order_by(DatasetRow.id.desc())
    ).all()
    return [_dataset_summary(row, n) for row, n in rows]


def get_dataset(session: Session, dataset_id: int) -> DatasetSummary:
    row = session.get(DatasetRow, dataset_id)
    if row is None:
        raise StoreError(f"dataset {dataset_id} is not in the run store.")
    n = session.scalar(select(func.count(RunRow.id)).where(RunRow.dataset_id == row.id))
    return _dataset_summary(row, n or 0)


def _dataset_summary(row: DatasetRow, runs: int) -> DatasetSummary:
    stats = row.stats or {}
    return DatasetSummary(
        id=row.id,
        name=row.name,
        path=row.path,
        content_hash=row.content_hash,
        users=int(stats.get("users", 0)),
        items=int(stats.get("items", 0)),
        intents=int(stats.get("intents", 0)),
        interactions=int(stats.get("interactions", 0)),
        created=row.created,
        runs=int(runs),
        spec={
            "path": row.path,
            "items_path": row.items_path,
            "mapping": row.mapping,
            "filters": row.filters,
        },
        stats=stats,
    )


# ---- runs: creating and listing
# --------------------------------------------------------------


def create_run(session: Session, run_spec: dict[str, Any], dataset_id: int) -> int:
    """A queued run of ``run_spec`` (``RunSpec.resolved().to_dict()``) on a dataset;
    its data paths are stored absolute, so it resumes from any folder."""
    if session.get(DatasetRow, dataset_id) is None:
        raise StoreError(f"dataset {dataset_id} is not in the run store.")
    train = run_spec.get("train") or {}
    row = RunRow(
        dataset_id=dataset_id,
        model=run_spec["model"],
        spec=_jsonable(_absolute_run_spec(run_spec)),
        seed=int(train.get("seed", 0)),
        protocol=str(train.get("protocol", "sampled")),
        status="queued",
        versions={},
        epochs=0,
        log="",
    )
    session.add(row)
    session.flush()
    return row.id


def find_runs(
    session: Session,
    dataset_id: int,
    run_spec: dict[str, Any],
    status: Sequence[str],
) -> list[int]:
    """Ids of the runs of exactly ``run_spec`` on a dataset whose status is one of
    ``status``, newest first (how ``compare --store`` finds a run to resume).

    Paths compare as stored (absolute); a run an older workbench stored with the
    paths as typed is found too."""
    wanted = (_jsonable(_absolute_run_spec(run_spec)), _jsonable(run_spec))
    rows = session.execute(
        select(RunRow.id, RunRow.spec)
        .where(
            RunRow.dataset_id == dataset_id,
            RunRow.model == run_spec["model"],
            RunRow.status.in_(list(status)),
        )
        .order_by(RunRow.id.desc())
    ).all()
    return [run_id for run_id, spec in rows if spec in wanted]


def list_runs(
    session: Session,
    *,
    status: str | Sequence[str] | None = None,
    model: str | None = None,
    text: str | None = None,
    limit: int | None = None,
) -> list[RunSummary]:
    """Runs, newest first, with their best-epoch validation and test metrics.

    ``text`` matches model, dataset name, status or device, case-insensitively.
    """
    query = select(RunRow, DatasetRow.name).join(DatasetRow)
    if status:
        wanted = [status] if isinstance(status, str) else list(status)
        query = query.where(RunRow.status.in_(wanted))
    if model:
        query = query.where(RunRow.model == model)
    if text:
        pattern = f"%{text.strip()}%"
        query = query.where(
            or_(
                RunRow.model.ilike(pattern),
                DatasetRow.name.ilike(pattern),
                RunRow.status.ilike(pattern),
                RunRow.device.ilike(pattern),
            )
        )
    query = query.order_by(RunRow.id.desc())
    if limit:
        query = query.limit(limit)
    rows = session.execute(query).all()
    best = _best_metrics(session, [run.id for run, _ in rows])
    return [_summary(RunSummary, run, name, best.get(run.id, {})) for run, name in rows]


def runs_stamp(session: Session) -> tuple:
    """A fingerprint of the runs table that changes whenever :func:`list_runs` would
    answer differently: a poller reads it (a few ms) and lists again only on change.

    Every write of a worker moves a heartbeat, an epoch or batch count, a status or a
    start/finish time; creating or deleting a run moves the count or the largest id.
    Totals as well as maxima, so a clock that is behind on one host is caught too.
    """
    totals = session.execute(
        select(
            func.count(RunRow.id),
            func.max(RunRow.id),
            func.max(RunRow.heartbeat),
            func.max(RunRow.started),
            func.max(RunRow.finished),
            func.sum(RunRow.epochs),
            func.sum(RunRow.batch),
            func.sum(RunRow.best_epoch),
        )
    ).one()
    statuses = session.execute(
        select(RunRow.status, func.count()).group_by(RunRow.status)
    ).all()
    return (tuple(totals), tuple(sorted((s, n) for s, n in statuses)))


def _best_metrics(
    session: Session, run_ids: list[int]
) -> dict[int, dict[str, dict[str, float]]]:
    """{run: {"valid": {...}, "test": {...}}} at each run's best epoch, by index."""
    found: dict[int, dict[str, dict[str, float]]] = {}
    for start in range(0, len(run_ids), CHUNK):
        part = run_ids[start : start + CHUNK]
        rows = session.execute(
            select(MetricRow.run_id, MetricRow.split, MetricRow.name, MetricRow.value)
            .join(RunRow, RunRow.id == MetricRow.run_id)
            .where(
                MetricRow.run_id.in_(part),
                MetricRow.split.in_(("valid", "test")),
                MetricRow.epoch == RunRow.best_epoch,
            )
        ).all()
        for run_id, split, name, value in rows:
            found.setdefault(run_id, {}).setdefault(split, {})[name] = value
    return found


def _summary(cls, run: RunRow, dataset_name: str, best: dict, **extra):
    train = (run.spec or {}).get("train") or {}
    return cls(
        id=run.id,
        model=run.model,
        dataset=dataset_name,
        dataset_id=run.dataset_id,
        status=run.status,
        seed=run.seed,
        protocol=run.protocol,
        device=run.device,
        created=run.created,
        started=run.started,
        finished=run.finished,
        seconds=run.seconds,
        epochs=run.epochs,
        max_epochs=int(train.get("epochs", 0)),
        best_epoch=run.best_epoch,
        best=_headline(best.get("valid", {})),
        test=_headline(best.get("test", {})),
        error=run.error,
        batch=run.batch,
        batches=run.batches,
        heartbeat=run.heartbeat,
        **extra,
    )


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    """Metrics of the run's own protocol: no durations, no "full NDCG@5" extras."""
    return {k: v for k, v in metrics.items() if k != "seconds" and " " not in k}


def get_run(session: Session, run_id: int) -> RunDetail:
    run = _run(session, run_id)
    best = _best_metrics(session, [run.id]).get(run.id, {})
    return _summary(
        RunDetail,
        run,
        run.dataset.name,
        best,
        spec=run.spec,
        log=run.log or "",
        pid=run.pid,
        host=run.host,
        versions=run.versions or {},
        stop_reason=run.stop_reason,
        dataset_hash=run.dataset.content_hash,
    )


def run_spec(session: Session, run_id: int) -> dict[str, Any]:
    return dict(_run(session, run_id).spec)


def _run(session: Session, run_id: int) -> RunRow:
    run = session.get(RunRow, int(run_id))
    if run is None:
        raise StoreError(f"run {run_id} is not in the run store.")
    return run


# ---- runs: what the GUI plots and compares
# ---------------------------------------------------


def run_curves(session: Session, run_id: int) -> pd.DataFrame:
    """Every per-epoch number of a run: columns epoch, split, name, value."""
    rows = session.execute(
        select(MetricRow.epoch, MetricRow.split, MetricRow.name, MetricRow.value)
        .where(MetricRow.run_id == int(run_id))
        .order_by(MetricRow.epoch, MetricRow.id)
    ).all()
    frame = pd.DataFrame(rows, columns=["epoch", "split", "name", "value"])
    return frame.astype({"epoch": "int64", "value": "float64"})


def compare_runs(session: Session, ids: Iterable[int]) -> pd.DataFrame:
    """One row per run: identity, config (``model.X``, ``train.X``) and best-epoch
    metrics as ``valid NDCG@5`` / ``test NDCG@5``, in the order asked."""
    ids = [int(i) for i in ids]
    runs = {
        run.id: (run, name, content_hash)
        for run, name, content_hash in session.execute(
            select(RunRow, DatasetRow.name, DatasetRow.content_hash)
            .join(DatasetRow)
            .where(RunRow.id.in_(ids))
        ).all()
    }
    best = _best_metrics(session, list(runs))
    records = []
    for run_id in ids:
        if run_id not in runs:
            raise StoreError(f"run {run_id} is not in the run store.")
        run, name, content_hash = runs[run_id]
        record: dict[str, Any] = {
            "id": run.id,
            "model": run.model,
            "dataset": name,
            "dataset_hash": content_hash,
            "protocol": run.protocol,
            "seed": run.seed,
            "status": run.status,
            "device": run.device,
            "best_epoch": run.best_epoch,
            "epochs": run.epochs,
            "seconds": run.seconds,
        }
        spec = run.spec or {}
        for key, value in (spec.get("model_config") or {}).items():
            record[f"model.{key}"] = value
        for key, value in (spec.get("train") or {}).items():
            record[f"train.{key}"] = value
        for split in ("valid", "test"):
            for metric, value in best.get(run.id, {}).get(split, {}).items():
                if metric != "seconds":
                    record[f"{split} {metric}"] = value
        records.append(record)
    return pd.DataFrame.from_records(records)


def user_results(session: Session, run_id: int, which: str = "test") -> pd.DataFrame:
    """Per-user results of a run's final evaluation, as in
    ``engine.evaluation.EvalResult.per_user``: the stored ranks plus every metric of
    the run's cut-offs, recomputed from the rank."""
    from engine.evaluation import metrics_from_ranks

    run = _run(session, run_id)
    columns = [
        "user",
        "target",
        "rank",
        "candidates",
        "history_len",
        "target_train_freq",
    ]
    rows = session.execute(
        select(*(getattr(UserResultRow, c) for c in columns))
        .where(UserResultRow.run_id == run.id, UserResultRow.which == which)
        .order_by(UserResultRow.user)
    ).all()
    frame = pd.DataFrame(rows, columns=columns).astype("int64")
    ks_text = str(((run.spec or {}).get("train") or {}).get("ks", "5,10"))
    ks = [int(k) for k in ks_text.split(",") if k.strip()]
    for name, values in metrics_from_ranks(frame["rank"].to_numpy(), ks).items():
        frame[name] = values
    return frame


def attention_maps(session: Session, run_id: int) -> dict[str, np.ndarray]:
    """The latest snapshot of each head: ``"item layer 1 head 2"`` -> (L, L) float32."""
    run = _run(session, run_id)
    latest = session.scalar(
        select(func.max(AttentionRow.epoch)).where(AttentionRow.run_id == run.id)
    )
    if latest is None:
        return {}
    rows = session.scalars(
        select(AttentionRow)
        .where(AttentionRow.run_id == run.id, AttentionRow.epoch == latest)
        .order_by(AttentionRow.layer, AttentionRow.head)
    ).all()
    return {
        f"{row.layer} head {row.head}": np.frombuffer(row.data, dtype=row.dtype)
        .reshape(row.rows, row.cols)
        .astype(np.float32)
        for row in rows
    }


# ---- runs: what the worker writes
# ------------------------------------------------------------


def library_versions() -> dict[str, str]:
    """What a run was made with: library versions, and the number of torch threads
    (on the CPU it changes the order of float sums, so the same seed gives the same
    metrics only with the same count)."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    for package in ("torch", "numpy", "pandas", "SQLAlchemy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    torch = sys.modules.get("torch")
    if torch is not None:
        found["torch threads"] = str(torch.get_num_threads())
    return found


def start_run(
    session: Session, run_id: int, *, device: str | None, pid: int | None = None
) -> None:
    """Mark a run running in this process, on this host (device once known)."""
    run = _run(session, run_id)
    run.status = "running"
    run.device = device
    run.host = socket.gethostname()
    run.pid = os.getpid() if pid is None else pid
    run.versions = library_versions()
    run.started = run.started or utcnow()
    run.heartbeat = utcnow()
    run.finished = None
    run.error = None
    run.stop_reason = None


def set_status(
    session: Session,
    run_id: int,
    status: str,
    *,
    error: str | None = None,
    stop_reason: str | None = None,
) -> None:
    """Set a run's status; an ending status also stamps the finish time."""
    if status not in RUN_STATUSES:
        raise StoreError(
            f"unknown run status {status!r}; one of {', '.join(RUN_STATUSES)}."
        )
    run = _run(session, run_id)
    run.status = status
    if error is not None:
        run.error = error
    if stop_reason is not None:
        run.stop_reason = stop_reason
    if status in ("finished", "failed", "cancelled", "interrupted"):
        run.finished = utcnow()


def add_metrics(
    session: Session, run_id: int, epoch: int, split: str, values: dict[str, float]
) -> None:
    """One epoch's numbers of one split, in a single multi-row insert."""
    if not values:
        return
    session.execute(
        insert(MetricRow),
        [
            {
                "run_id": int(run_id),
                "epoch": int(epoch),
                "split": split,
                "name": name,
                "value": float(value),
            }
            for name, value in values.items()
        ],
    )


def has_metrics(
    session: Session, run_id: int, epoch: int, split: str, name: str | None = None
) -> bool:
    """Whether a run has numbers of this epoch and split (and name, when given)."""
    query = select(MetricRow.id).where(
        MetricRow.run_id == int(run_id),
        MetricRow.epoch == int(epoch),
        MetricRow.split == split,
    )
    if name is not None:
        query = query.where(MetricRow.name == name)
    return session.scalar(query.limit(1)) is not None


def drop_metrics_after(session: Session, run_id: int, epoch: int) -> None:
    """Forget numbers past ``epoch``: a resumed run writes those epochs again."""
    session.execute(
        delete(MetricRow).where(
            MetricRow.run_id == int(run_id), MetricRow.epoch > epoch
        )
    )
    session.execute(
        delete(AttentionRow).where(
            AttentionRow.run_id == int(run_id), AttentionRow.epoch > epoch
        )
    )


def update_progress(
    session: Session,
    run_id: int,
    *,
    epochs: int,
    best_epoch: int | None,
    seconds: float,
    stop_reason: str | None = None,
) -> None:
    values: dict[str, Any] = {
        "epochs": int(epochs),
        "best_epoch": best_epoch,
        "seconds": float(seconds),
        "batch": 0,
        "heartbeat": utcnow(),
    }
    if stop_reason is not None:
        values["stop_reason"] = stop_reason
    session.execute(update(RunRow).where(RunRow.id == int(run_id)).values(**values))


def beat(session: Session, run_id: int, batch: int, batches: int) -> None:
    """Where the worker is within the epoch, and that it is alive."""
    session.execute(
        update(RunRow)
        .where(RunRow.id == int(run_id))
        .values(batch=int(batch), batches=int(batches), heartbeat=utcnow())
    )


def add_attention(
    session: Session,
    run_id: int,
    epoch: int,
    maps: dict[str, np.ndarray],
    dtype: str = "<f2",
) -> None:
    """Store (H, L, L) maps per layer as one float16 row per head (the heatmap needs
    no more precision; it halves the size)."""
    rows = []
    for layer, heads in maps.items():
        heads = np.asarray(heads)
        for head, grid in enumerate(heads):
            data = np.ascontiguousarray(grid, dtype=np.dtype(dtype))
            rows.append(
                {
                    "run_id": int(run_id),
                    "epoch": int(epoch),
                    "layer": layer,
                    "head": head + 1,
                    "rows": int(data.shape[0]),
                    "cols": int(data.shape[1]),
                    "dtype": data.dtype.str,
                    "data": data.tobytes(),
                }
            )
    if rows:
        session.execute(insert(AttentionRow), rows)


def add_user_results(
    session: Session, run_id: int, which: str, per_user: pd.DataFrame
) -> None:
    """Replace the per-user ranks of one final evaluation (valid or test)."""
    session.execute(
        delete(UserResultRow).where(
            UserResultRow.run_id == int(run_id), UserResultRow.which == which
        )
    )
    if per_user is None or per_user.empty:
        return
    columns = ["user", "target", "rank", "candidates", "history_len"]
    columns.append("target_train_freq")
    table = per_user[columns].astype("int64")
    records = [
        {"run_id": int(run_id), "which": which, **dict(zip(columns, values))}
        for values in table.itertuples(index=False, name=None)
    ]
    session.execute(insert(UserResultRow), records)


def append_log(session: Session, run_id: int, lines: Sequence[str]) -> None:
    """Append lines to the run's log, keeping the last ``LOG_TAIL_LINES``."""
    if not lines:
        return
    run = _run(session, run_id)
    kept = ((run.log or "").splitlines() + list(lines))[-LOG_TAIL_LINES:]
    run.log = "\n".join(kept)


# ---- artifacts and files
# ----------------------------------------------------------------------


def data_dir_of(session: Session) -> Path:
    data_dir = session.info.get("data_dir")
    if data_dir is None:
        raise StoreError("this session was not opened by a Store; use Store.session.")
    return Path(data_dir)


def record_artifact(
    session: Session,
    run_id: int,
    kind: str,
    path: Path,
    digest: tuple[int, str] | None = None,
) -> None:
    """Record (or refresh) a file under the data folder with its size and hash;
    ``digest`` (:func:`file_digest`, taken before the transaction) keeps the hashing
    of a large checkpoint out of the write lock."""
    root = data_dir_of(session).resolve()
    path = Path(path).resolve()
    if not path.is_relative_to(root):
        raise UnsafePathError(f"{path} is outside the run store's folder {root}.")
    relative = path.relative_to(root).as_posix()
    _upsert_artifact(session, run_id, kind, relative, path, digest)


def record_export(session: Session, run_id: int, what: str, path: Path) -> None:
    """Record a file the user exported from a run (kind ``export:<what>``, the latest
    of each kind): where it went, its size and hash, for provenance.

    Exports lie wherever the user saved them, so the path is absolute; the workbench
    never opens or deletes them (:func:`checked_path` refuses absolute paths, and
    deleting a run removes only its folder in the store).
    """
    kind = f"export:{what}"
    if len(kind) > 32:
        raise StoreError(f"export kind {kind!r} is longer than 32 characters.")
    path = Path(path).resolve()
    _upsert_artifact(session, run_id, kind, str(path), path)


def file_digest(path: Path) -> tuple[int, str]:
    """Size and sha256 of a file, as an artifact records them."""
    from engine.checkpoint import file_sha256

    return Path(path).stat().st_size, file_sha256(path)


def _upsert_artifact(
    session: Session,
    run_id: int,
    kind: str,
    stored: str,
    path: Path,
    digest: tuple[int, str] | None = None,
) -> None:
    """The run's artifact of ``kind``, added or replaced: ``stored`` path, size and
    hash of the file at ``path``."""
    size, sha256 = digest if digest is not None else file_digest(path)
    values = {"path": stored, "size": size, "sha256": sha256}
    row = session.scalar(
        select(ArtifactRow).where(
            ArtifactRow.run_id == int(run_id), ArtifactRow.kind == kind
        )
    )
    if row is None:
        session.add(ArtifactRow(run_id=int(run_id), kind=kind, **values))
        return
    row.path, row.size, row.sha256 = stored, values["size"], values["sha256"]
    row.created = utcnow()


def artifacts(session: Session, run_id: int) -> list[ArtifactRow]:
    return list(
        session.scalars(
            select(ArtifactRow)
            .where(ArtifactRow.run_id == int(run_id))
            .order_by(ArtifactRow.kind)
        )
    )


def checked_path(session: Session, row: ArtifactRow, verify: bool = True) -> Path:
    """The artifact's file, only if it lies inside the data folder and (unless told
    otherwise) is the file that was recorded: the same size and hash."""
    from engine.checkpoint import file_sha256

    root = data_dir_of(session).resolve()
    relative = Path(row.path)
    if relative.is_absolute() or ".." in relative.parts:
        raise UnsafePathError(
            f"artifact path {row.path!r} is not a plain relative path."
        )
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise UnsafePathError(f"artifact {row.path!r} resolves outside {root}.")
    if not path.is_file():
        raise StoreError(f"{path}: the {row.kind} file of run {row.run_id} is missing.")
    if verify and (path.stat().st_size != row.size or file_sha256(path) != row.sha256):
        raise UnsafePathError(
            f"{path}: the file changed since run {row.run_id} recorded it (size or "
            "hash differ); it will not be loaded."
        )
    return path


def checkpoint_path(session: Session, run_id: int, which: str = "best") -> Path:
    """The checked path of a run's ``best`` or ``last`` checkpoint."""
    row = session.scalar(
        select(ArtifactRow).where(
            ArtifactRow.run_id == int(run_id), ArtifactRow.kind == which
        )
    )
    if row is None:
        raise StoreError(f"run {run_id} has no {which} checkpoint recorded.")
    return checked_path(session, row)


def delete_run(session: Session, run_id: int) -> None:
    """Delete a run's rows and, once that has committed, its folder of files; a live
    run must be cancelled first."""
    run = _run(session, run_id)
    if run.status == "running" and not _worker_gone(run):
        raise StoreError(f"run {run_id} is still running; cancel it first.")
    root = data_dir_of(session).resolve()
    folder = (root / "runs" / str(run.id)).resolve()
    session.delete(run)
    session.flush()
    # a transaction that fails later keeps the rows, and so their checkpoints too
    if folder.is_relative_to(root / "runs"):
        after_commit(session, lambda: _remove_folder(folder))


def _remove_folder(folder: Path) -> None:
    if folder.is_dir():
        shutil.rmtree(folder)


# ---- stale runs
# ------------------------------------------------------------------------------


def _worker_gone(run: RunRow) -> bool:
    """Whether the worker that claimed a run is dead: silent for ``STALE_AFTER`` on
    any host; on this one also its pid ended, or now belongs to a process started
    after the worker last wrote (the pid was reused, e.g. after a reboot)."""
    if run.heartbeat is None or utcnow() - run.heartbeat > STALE_AFTER:
        return True
    if run.host and run.host != socket.gethostname():
        return False
    if not _pid_alive(run.pid):
        return True
    started = _process_started(run.pid)
    return started is not None and started > run.heartbeat + PID_START_SLACK


def _process_started(pid: int) -> datetime | None:
    """When process ``pid`` started (naive UTC, like the store's times), from Linux's
    /proc; None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # clock ticks after boot, field 22; the name in field 2 may hold spaces
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        hertz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    seconds = boot + ticks / hertz
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        # a killed child its parent has not reaped yet is a zombie: gone for us
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state not in ("Z", "X")
    return True


def mark_stale_runs(session: Session) -> int:
    """Mark "running" runs whose worker is gone as interrupted; return how many."""
    stale = [
        run
        for run in session.scalars(select(RunRow).where(RunRow.status == "running"))
        if _worker_gone(run)
    ]
    for run in stale:
        _mark_interrupted(session, run)
    return len(stale)


def mark_stale_run(session: Session, run_id: int) -> bool:
    """Mark this one run interrupted if it is "running" and its worker is gone;
    return whether it was. A run whose worker is alive is left as it is."""
    run = _run(session, run_id)
    if run.status != "running" or not _worker_gone(run):
        return False
    _mark_interrupted(session, run)
    return True


def _mark_interrupted(session: Session, run: RunRow) -> None:
    run.status = "interrupted"
    run.finished = utcnow()
    if not run.error:
        run.error = (
            f"the worker (pid {run.pid} on {run.host}) ended without recording an "
            "end: killed or crashed. Resume continues from the last checkpoint."
        )
        tail = _worker_stderr_tail(session, run.id)
        if tail:
            run.error += f"\nThe last lines of its {WORKER_ERRORS_FILE}:\n{tail}"
    log.warning("run %d was left running by a dead worker; interrupted", run.id)


def _worker_stderr_tail(session: Session, run_id: int) -> str:
    """The last ``STDERR_TAIL_LINES`` of the stderr file a workbench-launched worker
    writes in its run folder; empty when there is none."""
    data_dir = session.info.get("data_dir")
    if data_dir is None:
        return ""
    path = Path(data_dir) / "runs" / str(int(run_id)) / WORKER_ERRORS_FILE
    try:
        with open(path, "rb") as fh:
            # a long log: the tail is in its last few kilobytes
            fh.seek(max(0, path.stat().st_size - 16_384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(lines[-STDERR_TAIL_LINES:])


def _jsonable(value: Any) -> Any:
    """Plain JSON types only (numpy scalars and tuples become Python ones)."""
    return json.loads(json.dumps(value, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-ready")
