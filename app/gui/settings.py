"""Settings kept between sessions (QSettings), with a version for later migrations.

Each key is read through a typed accessor with its default, so a missing or damaged
value never reaches a widget. When the layout of the stored settings changes, raise
``VERSION`` and add a step to :func:`migrate`.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

log = logging.getLogger(__name__)

ORGANIZATION = "cafe-workbench"
APPLICATION = "CaFe Workbench"
VERSION = 1


def migrate(settings: QSettings, found: int) -> None:
    """Bring settings written by an older version up to ``VERSION``.

    Version 0 is "no version recorded": a first start, or settings from before
    versioning; nothing of it is kept that the current keys could misread.
    """
    if found > VERSION:
        log.warning(
            "settings version %d is newer than this workbench's %d; reset",
            found,
            VERSION,
        )
        settings.clear()
    elif found < 1:
        settings.clear()
    settings.setValue("version", VERSION)


class Settings:
    """Typed access to the workbench's QSettings."""

    def __init__(self, qsettings: QSettings | None = None):
        self.q = qsettings or QSettings(ORGANIZATION, APPLICATION)
        found = self._int("version", 0)
        if found != VERSION:
            migrate(self.q, found)

    def _int(self, key: str, default: int) -> int:
        try:
            return int(self.q.value(key, default))
        except (TypeError, ValueError):
            return default

    # window
    def geometry(self) -> QByteArray | None:
        value = self.q.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, value: QByteArray) -> None:
        self.q.setValue("window/geometry", value)

    def window_state(self) -> QByteArray | None:
        value = self.q.value("window/state")
        return value if isinstance(value, QByteArray) else None

    def set_window_state(self, value: QByteArray) -> None:
        self.q.setValue("window/state", value)

    def page(self) -> int:
        return self._int("window/page", 0)

    def set_page(self, index: int) -> None:
        self.q.setValue("window/page", index)

    # folders
    def last_folder(self, purpose: str) -> str:
        """The folder last used for ``purpose`` ("data", "export"), else the home."""
        value = str(self.q.value(f"folders/{purpose}", "") or "")
        return value if value and Path(value).is_dir() else str(Path.home())

    def set_last_folder(self, purpose: str, path: str | Path) -> None:
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        self.q.setValue(f"folders/{purpose}", str(folder))

    # appearance
    def theme(self) -> str:
        value = str(self.q.value("appearance/theme", "system"))
        return value if value in ("system", "light", "dark") else "system"

    def set_theme(self, value: str) -> None:
        self.q.setValue("appearance/theme", value)

    # workers
    def worker_threads(self) -> int:
        """Torch threads of each worker the window starts (one keeps a shared
        two-core machine responsive)."""
        return max(1, self._int("workers/threads", 1))

    def parallel_runs(self) -> int | None:
        """Workers training at once; None means as many as the cores hold."""
        value = self._int("workers/parallel", 0)
        return value if value > 0 else None

    def set_workers(self, threads: int, parallel: int) -> None:
        self.q.setValue("workers/threads", int(threads))
        self.q.setValue("workers/parallel", int(parallel))

    def sync(self) -> None:
        self.q.sync()
