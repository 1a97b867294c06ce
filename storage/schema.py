"""The run store's tables, as SQLAlchemy 2.0 typed mappings.

Every change to these classes needs a migration in ``storage/migrations/versions``; the
migrations, not ``create_all``, build a database, so an old file upgrades the same way a
new one is made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("queued", "running", "finished", "failed", "cancelled", "interrupted")
# statuses a run can no longer leave on its own; resume starts it again
DONE_STATUSES = ("finished", "failed", "cancelled", "interrupted")


def utcnow() -> datetime:
    """Called per row (a callable default), never once at import."""
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}


class DatasetRow(Base):
    """One version of a dataset: where it was read from, how, and what came out."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("content_hash", "spec_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    items_path: Mapped[str | None] = mapped_column(Text)
    mapping: Mapped[dict[str, Any]]
    filters: Mapped[dict[str, Any]]
    # hash of the mapped, filtered interactions (engine.data.Dataset.hash)
    content_hash: Mapped[str] = mapped_column(String(64))
    # hash of the data spec (paths, mapping, filters), so the same content read two
    # ways is two rows
    spec_hash: Mapped[str] = mapped_column(String(64))
    stats: Mapped[dict[str, Any]]
    stats_before: Mapped[dict[str, Any]]
    notes: Mapped[list[str]] = mapped_column(JSON, default=list)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    runs: Mapped[list[RunRow]] = relationship(back_populates="dataset")


class RunRow(Base):
    """One training run: its full spec, where and how it ran, and how it ended."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("datasets.id", ondelete="RESTRICT")
    )
    model: Mapped[str] = mapped_column(String(64), index=True)
    # engine.experiment.RunSpec.resolved().to_dict(): every default written out
    spec: Mapped[dict[str, Any]]
    seed: Mapped[int] = mapped_column(Integer)
    protocol: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    device: Mapped[str | None] = mapped_column(String(32))
    host: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)
    # python, torch, numpy, sqlalchemy ... versions the run was made with
    versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    started: Mapped[datetime | None] = mapped_column(DateTime)
    finished: Mapped[datetime | None] = mapped_column(DateTime)
    seconds: Mapped[float | None] = mapped_column(Float)
    epochs: Mapped[int] = mapped_column(Integer, default=0)  # completed epochs
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    stop_reason: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    # the last lines the worker logged, for the workbench's log tail
    log: Mapped[str] = mapped_column(Text, default="")
    # where the worker is inside the current epoch, for a progress bar read from the
    # store alone (a run started from the command line has no event stream to read)
    batch: Mapped[int | None] = mapped_column(Integer)
    batches: Mapped[int | None] = mapped_column(Integer)
    # last sign of life of the worker: the only staleness test for a worker on
    # another host, whose pid cannot be checked from here
    heartbeat: Mapped[datetime | None] = mapped_column(DateTime)

    dataset: Mapped[DatasetRow] = relationship(back_populates="runs")


class MetricRow(Base):
    """One number of one epoch: a training loss, a validation or test metric, a
    duration."""

    __tablename__ = "metrics"
    # curves read a run's rows in epoch order; the best-epoch lookup filters on split
    # and epoch too
    __table_args__ = (Index("ix_metrics_run_split_epoch", "run_id", "split", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    split: Mapped[str] = mapped_column(String(8))  # "train", "valid" or "test"
    name: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Float)


class AttentionRow(Base):
    """One head's attention map averaged over users (paper Figure 2), as raw bytes."""

    __tablename__ = "attention"
    __table_args__ = (Index("ix_attention_run", "run_id", "epoch"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    layer: Mapped[str] = mapped_column(String(64))  # e.g. "item layer 1"
    head: Mapped[int] = mapped_column(Integer)
    rows: Mapped[int] = mapped_column(Integer)
    cols: Mapped[int] = mapped_column(Integer)
    dtype: Mapped[str] = mapped_column(String(8))  # numpy dtype string, "<f2"
    data: Mapped[bytes] = mapped_column(LargeBinary)


class UserResultRow(Base):
    """One user's rank in the final evaluation; every metric follows from the rank."""

    __tablename__ = "user_results"
    __table_args__ = (Index("ix_user_results_run", "run_id", "which", "user"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    which: Mapped[str] = mapped_column(String(8))  # "valid" or "test"
    user: Mapped[int] = mapped_column(Integer)  # index into the dataset's users
    target: Mapped[int] = mapped_column(Integer)
    rank: Mapped[int] = mapped_column(Integer)  # 0-based, ties against the target
    candidates: Mapped[int] = mapped_column(Integer)
    history_len: Mapped[int] = mapped_column(Integer)
    target_train_freq: Mapped[int] = mapped_column(Integer)


class ArtifactRow(Base):
    """A file a run left on disk: its path (relative to the store's data folder),
    size and hash."""

    __tablename__ = "artifacts"
    __table_args__ = (UniqueConstraint("run_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))  # "best", "last", "export:..."
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
