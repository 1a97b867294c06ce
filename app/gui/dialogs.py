"""Every message box of the workbench goes through these functions.

Keeping them in one place gives one look for errors and confirmations, and lets tests
replace them (``monkeypatch.setattr(dialogs, "show_error", ...)``) so that no modal box
ever blocks an offscreen test run.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget

log = logging.getLogger(__name__)


def show_error(parent: QWidget | None, title: str, message: str) -> None:
    """Show a problem the user can fix; the message is the engine's, unchanged."""
    log.warning("%s: %s", title, message)
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, parent=parent)
    # the message names files and columns: let people select and copy it
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    box.exec()


def confirm(parent: QWidget | None, title: str, message: str) -> bool:
    """Ask a yes/no question whose default answer is the safe one (no)."""
    answer = QMessageBox.question(
        parent,
        title,
        message,
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


def ask_close_with_runs(parent: QWidget | None, count: int, waiting: int = 0) -> str:
    """On closing with runs in flight: "keep" them running, "cancel" them, or "stay".

    Runs still ``waiting`` in this window's queue cannot start once it is closed;
    either way they are cancelled, and can be resumed (started) later.
    """
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Question)
    box.setWindowTitle("Runs in flight")
    text = f"{count} run(s) started here are still training."
    if waiting:
        text += (
            f" {waiting} more wait in the queue; they will be cancelled (resume them "
            "later to start them)."
        )
    box.setText(text)
    box.setInformativeText(
        "Keep the training runs going in the background (they finish and store their "
        "results), or cancel them now (each saves a checkpoint and can be resumed "
        "later)?"
    )
    keep = box.addButton("Keep running", QMessageBox.ButtonRole.AcceptRole)
    cancel = box.addButton("Cancel runs", QMessageBox.ButtonRole.DestructiveRole)
    stay = box.addButton("Don't close", QMessageBox.ButtonRole.RejectRole)
    box.setDefaultButton(stay)
    box.exec()
    clicked = box.clickedButton()
    if clicked is keep:
        return "keep"
    if clicked is cancel:
        return "cancel"
    return "stay"
