"""Opening the workbench: ``python main.py [--db URL]`` without a command."""

from __future__ import annotations

import argparse
import ctypes.util
import logging
import os
import sys

from engine.errors import CafeError

log = logging.getLogger(__name__)

# X11 libraries Qt's xcb plugin loads at start; without them Qt aborts the process
# with a message that names libxcb-cursor0 instead (seen on Debian 12)
XCB_LIBRARIES = {"xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1"}


class DisplayError(CafeError):
    """No window can open on this machine; the message says what would fix it."""


def display_problem(env=os.environ, platform: str = sys.platform) -> str | None:
    """Why no window can open here, before Qt aborts the process over it; None when
    nothing is known to be missing."""
    if not platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        return (
            "no display: the workbench needs a desktop session (neither DISPLAY nor "
            "WAYLAND_DISPLAY is set). On a server, run it under a virtual screen "
            "(xvfb-run -a python main.py), or use the command line: python main.py "
            "train/compare/runs (see python main.py --help)."
        )
    if env.get("WAYLAND_DISPLAY"):
        return None
    missing = [
        pkg for lib, pkg in XCB_LIBRARIES.items() if not ctypes.util.find_library(lib)
    ]
    if missing:
        return (
            f"Qt's X11 plugin needs {' and '.join(missing)}, which this system lacks; "
            f"install them (Debian/Ubuntu: apt-get install {' '.join(missing)})."
        )
    return None


def launch(args: argparse.Namespace) -> int:
    """Open the store (marking runs left running by a dead worker), show the window,
    run the event loop; returns the exit code."""
    problem = display_problem()
    if problem is not None:
        raise DisplayError(problem)

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
