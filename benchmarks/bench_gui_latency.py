"""Event-loop latency of the workbench while a worker process trains.

Opens the main window (offscreen unless a display is set) on a temporary store,
registers a real dataset through the data page, launches a CaFe run through the train
page, selects it in the runs table so that its page polls the store every second and
redraws its curves, and meanwhile measures how late a 10 ms timer fires. The GUI
process never trains; the numbers say whether it stays responsive (goal: 99th
percentile lateness under 100 ms).

    .venv/bin/python benchmarks/bench_gui_latency.py [--data ../shared/data/ciao]
        [--seconds 40] [--hidden 64]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QSettings, Qt, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui import dialogs  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from app.gui.settings import Settings  # noqa: E402
from storage import open_store, queries  # noqa: E402

TICK_MS = 10


def wait(app: QApplication, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.005)
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "ciao"))
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()

    app = QApplication(sys.argv[:1])
    folder = Path(tempfile.mkdtemp(prefix="cafe-bench-"))
    store = open_store(str(folder / "runs.db"))
    messages = []
    dialogs.show_error = lambda _p, title, text: messages.append(f"{title}: {text}")
    settings = Settings(QSettings(str(folder / "gui.ini"), QSettings.Format.IniFormat))
    window = MainWindow(store, settings)
    window.resize(1280, 800)
    window.show()

    # data page: read, prepare, register
    panel = window.data_panel
    panel.open_path(args.data)
    wait(app, lambda: panel.dataset is not None or messages, 120)
    registered = []
    panel.registered.connect(registered.append)
    panel.register()
    wait(app, lambda: registered or messages, 120)
    if messages:
        print("\n".join(messages))
        return 1

    # train page: one CaFe run in a worker process
    train = window.train_panel
    train.model_combo.setCurrentText("cafe")
    train.model_form.set_values({"hidden": args.hidden})
    train.train_form.set_values({"epochs": 1000, "device": "cpu", "min_epochs": 0})
    (run_id,) = train.launch()

    def status() -> str:
        with store.session() as session:
            return queries.get_run(session, run_id).status

    wait(app, lambda: status() == "running", 120)
    wait(app, lambda: window.runs_panel.select_run(run_id), 10)

    # measure: how late does a 10 ms timer fire while the run trains?
    lateness: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.nsecsElapsed()]

    def tick() -> None:
        now = clock.nsecsElapsed()
        lateness.append(max(0.0, (now - last[0]) / 1e6 - TICK_MS))
        last[0] = now
        window.update()

    timer = QTimer(interval=TICK_MS)
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.timeout.connect(tick)
    timer.start()
    began = time.monotonic()
    # half the time on the curves, half on the attention maps of the run page
    page = window.runs_panel.page
    while time.monotonic() - began < args.seconds:
        if time.monotonic() - began > args.seconds / 2:
            page.tabs.setCurrentIndex(1)
        app.processEvents()
        time.sleep(0.001)
    timer.stop()

    with store.session() as session:
        epochs = queries.get_run(session, run_id).epochs
    window.jobs.cancel_all(wait=15)
    window.runs_panel.shutdown()
    values = np.asarray(lateness[1:])
    result = {
        "ticks": int(values.size),
        "tick_ms": TICK_MS,
        "lateness_ms_p50": round(float(np.percentile(values, 50)), 2),
        "lateness_ms_p99": round(float(np.percentile(values, 99)), 2),
        "lateness_ms_max": round(float(values.max()), 2),
        "epochs_trained_meanwhile": epochs,
        "curve_points": page.points(),
        "cpus": os.cpu_count(),
        "platform": app.platformName(),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["lateness_ms_p99"] < 100 else 2


if __name__ == "__main__":
    raise SystemExit(main())
