"""The Qt binding itself: what the workbench relies on and a release once broke.

PySide6 6.12.0 on Python 3.11 dropped a reference to ``True`` on every
``Signal.emit`` and one to ``None`` on every ``processEvents``. Python 3.11 counts
references to both (3.12 made them immortal), so the window died with "Fatal Python
error: bool_dealloc" once the count ran out: measured on the runs page, about three a
second with a finished run selected, hours when idle and much sooner while a run
streams its curves. requirements.txt pins a release without the fault; this test
keeps a later upgrade from bringing it back.
"""

from __future__ import annotations

import sys

import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QObject, Signal  # noqa: E402

CALLS = 1000


class Source(QObject):
    changed = Signal(object)


def test_emit_and_process_events_keep_their_references(qapp):
    source = Source()
    received = 0

    def receive(value) -> None:  # keeps no reference to what it is given
        nonlocal received
        received += 1

    source.changed.connect(receive)
    before = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(CALLS):
        source.changed.emit(None)
        qapp.processEvents()
    after = sys.getrefcount(True), sys.getrefcount(None)
    assert received == CALLS
    # the faulty release lost CALLS references of each; other code may move a few
    assert after[0] > before[0] - CALLS // 10
    assert after[1] > before[1] - CALLS // 10
