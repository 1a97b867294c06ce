"""Opening the run store: where it lives, how SQLite is set up, sessions and retries.

SQLite in WAL mode lets the workbench read while workers write. Each write is a short
transaction that takes the write lock at its start (``BEGIN IMMEDIATE``), so two
writers queue on the busy timeout instead of failing when one upgrades a read lock;
:meth:`Store.transact` retries the rare "database is locked" that still gets through.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import platformdirs
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import StoreError

log = logging.getLogger(__name__)

APP_NAME = "cafe-workbench"
BUSY_TIMEOUT_S = 30.0
RETRIES = 8
# Session.info key of the work to do once the session's transaction has committed
AFTER_COMMIT = "after_commit"

T = TypeVar("T")


def default_url() -> str:
    """``$CAFE_DB`` (a path or any SQLAlchemy URL), else ``runs.db`` in the user data
    dir."""
    chosen = os.environ.get("CAFE_DB")
    if chosen:
        return to_url(chosen)
    folder = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    return to_url(str(folder / "runs.db"))


def to_url(path_or_url: str) -> str:
    """A SQLAlchemy URL; a plain path becomes a SQLite URL.

    A SQLite file is always named by its absolute path, whether it came as a path or
    as a URL (``sqlite:///rel.db``): a worker runs in the repository root, and a
    relative name would open another file there.
    """
    if "://" not in path_or_url:
        return "sqlite:///" + str(Path(path_or_url).expanduser().resolve())
    parsed = make_url(path_or_url)
    database = parsed.database
    # an in-memory database and SQLite's own "file:" URIs are left as they are
    if (
        parsed.get_backend_name() != "sqlite"
        or database in (None, "", ":memory:")
        or database.startswith("file:")
    ):
        return path_or_url
    absolute = str(Path(database).expanduser().resolve())
    if absolute == database:
        return path_or_url
    return parsed.set(database=absolute).render_as_string(hide_password=False)


def is_locked(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


class Store:
    """An open run store: one engine per process, sessions framed by the caller."""

    def __init__(self, url: str, engine: Engine, data_dir: Path):
        self.url = url
        self.engine = engine
        self.data_dir = data_dir
        info = {"data_dir": data_dir}
        self._reads = sessionmaker(engine, expire_on_commit=False, info=info)
        self._writes = sessionmaker(
            engine.execution_options(sqlite_immediate=True),
            expire_on_commit=False,
            info=info,
        )
        for factory in (self._reads, self._writes):
            event.listen(factory, "after_commit", _run_after_commit)
            event.listen(factory, "after_soft_rollback", _forget_after_commit)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self, write: bool = False) -> Iterator[Session]:
        """A session that commits on success and rolls back on error.

        ``write=True`` takes SQLite's write lock up front; use it for anything that
        writes after it has read, or prefer :meth:`transact`, which also retries.
        """
        factory = self._writes if write else self._reads
        with factory() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def transact(self, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``work(session, *args, **kwargs)`` in one write transaction, retrying it
        while the database is locked by another process."""
        for attempt in range(RETRIES):
            try:
                with self.session(write=True) as session:
                    return work(session, *args, **kwargs)
            except OperationalError as exc:
                if not is_locked(exc) or attempt == RETRIES - 1:
                    raise
                pause = min(2.0, 0.05 * 2**attempt) * (0.5 + random.random())
                log.warning("database locked; retrying in %.2f s", pause)
                time.sleep(pause)
        raise AssertionError("unreachable")

    def run_dir(self, run_id: int) -> Path:
        """Folder of one run's checkpoints and exports."""
        return self.data_dir / "runs" / str(int(run_id))

    def dispose(self) -> None:
        self.engine.dispose()


def after_commit(session: Session, work: Callable[[], None]) -> None:
    """Do ``work`` once the session's transaction has committed, never when it rolls
    back: how files on disk follow rows that are deleted (``queries.delete_run``)."""
    # only a Store's sessions run this work; elsewhere it would be silently dropped
    if session.info.get("data_dir") is None:
        raise StoreError("this session was not opened by a Store; use Store.session.")
    session.info.setdefault(AFTER_COMMIT, []).append(work)


def _run_after_commit(session: Session) -> None:
    for work in session.info.pop(AFTER_COMMIT, []):
        # the rows are gone for good: a file that cannot go is left, and said
        try:
            work()
        except OSError as exc:
            log.warning("after commit: %s", exc)


def _forget_after_commit(session: Session, _previous_transaction) -> None:
    session.info.pop(AFTER_COMMIT, None)


def _sqlite_setup(engine: Engine) -> None:
    """WAL, foreign keys and a busy timeout on every connection; BEGIN IMMEDIATE for
    writes.

    pysqlite's own transaction handling is turned off so that SQLAlchemy's ``begin``
    event decides how each transaction starts (the SQLAlchemy docs' recipe).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        immediate = connection.get_execution_options().get("sqlite_immediate", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_store(url: str | None = None, upgrade: bool = True) -> Store:
    """Open (creating and upgrading to the latest migration) the store at ``url``.

    A file that is not a run store, or one written by a newer workbench, raises
    :class:`StoreError` naming the file and what to do.
    """
    url = to_url(url) if url else default_url()
    parsed = make_url(url)
    where = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (
        None,
        "",
        ":memory:",
    ):
        db_path = Path(parsed.database)
        where = str(db_path)
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{db_path}: cannot create the run store's folder ({exc}); point "
                "--db or CAFE_DB at a writable place."
            ) from exc
        data_dir = db_path.parent
        engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S})
    elif parsed.get_backend_name() == "sqlite":
        raise ValueError(
            f"{url}: an in-memory SQLite store cannot be shared with worker "
            "processes; give a file path."
        )
    else:
        data_dir = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
        engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine)
    try:
        _check_schema(engine, where, upgrade)
    except BaseException:
        engine.dispose()
        raise
    return Store(url, engine, data_dir)


def _check_schema(engine: Engine, where: str, upgrade: bool) -> None:
    """Read the database's schema revision, refuse one this code does not know, and
    upgrade an older one; a damaged or foreign file becomes a :class:`StoreError`."""
    from storage.migrations import current_revision, known_revisions, upgrade_to_head

    # the first connection runs the pragmas: a file that is not SQLite fails here
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    except DBAPIError as exc:
        raise StoreError(
            f"{where}: cannot be read as a run store ({exc.orig}). The file is damaged "
            "or is not a workbench database; point --db or CAFE_DB at another file, "
            "or move this one away to start an empty store."
        ) from exc

    # a revision from a newer workbench: upgrading or reading it would guess
    known = known_revisions()
    if current is not None and current not in known:
        raise StoreError(
            f"{where}: the run store has schema revision {current!r}, which this "
            f"version of the workbench does not know (it knows up to {known[-1]!r}); "
            "a newer workbench wrote it. Upgrade the workbench, or point --db or "
            "CAFE_DB at another file."
        )

    if upgrade:
        try:
            upgrade_to_head(engine)
        except DBAPIError as exc:
            raise StoreError(
                f"{where}: could not bring the run store to the current schema "
                f"({exc.orig}); check that the file is writable and not damaged."
            ) from exc
