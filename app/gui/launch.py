"""Opening the workbench: ``python main.py [--db URL]`` without a command."""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def launch(args: argparse.Namespace) -> int:
    """Open the store (marking runs left running by a dead worker), show the window,
    run the event loop; returns the exit code."""
    from PySide6.QtWidgets import QApplication

    from app.gui import dialogs
    from app.gui.main_window import MainWindow
    from app.gui.settings import APPLICATION, ORGANIZATION, Settings
    from app.gui.theme import Theme, app_icon, apply_fusion
    from storage import StoreError, open_store, queries

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    apply_fusion(app)
    app.setWindowIcon(app_icon())
    settings = Settings()
    theme = Theme(app, settings.theme())
    try:
        store = open_store(getattr(args, "db", None))
        stale = store.transact(queries.mark_stale_runs)
    except (StoreError, OSError, ValueError) as exc:
        dialogs.show_error(None, "Cannot open the run store", str(exc))
        return 1
    if stale:
        log.warning(
            "%d run(s) left running by a dead worker were marked interrupted", stale
        )
    window = MainWindow(store, settings, theme)
    window.show()
    code = app.exec()
    store.dispose()
    return code
