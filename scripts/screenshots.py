"""Regenerate the workbench screenshots in docs/screenshots/ from real data and a real
finished run (offscreen, 1280x800, light theme).

    .venv/bin/python scripts/screenshots.py [--data ../shared/data/ciao] [--epochs 8]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.gui import dialogs  # noqa: E402
from app.gui.main_window import MainWindow  # noqa: E402
from app.gui.settings import Settings  # noqa: E402
from app.gui.theme import Theme, apply_fusion  # noqa: E402
from storage import open_store, queries  # noqa: E402


def settle(app: QApplication, seconds: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.01)


def wait(app: QApplication, condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.01)
        if time.monotonic() > deadline:
            raise TimeoutError("gave up waiting")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # relative to the checkout, so the pictures show no path of the machine they were
    # taken on
    parser.add_argument("--data", default="../shared/data/ciao")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshots"))
    args = parser.parse_args()
    os.chdir(ROOT)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    app = QApplication(sys.argv[:1])
    apply_fusion(app)
    theme = Theme(app, "light")
    folder = Path(tempfile.mkdtemp(prefix="cafe-shots-"))
    store = open_store(str(folder / "runs.db"))
    messages: list[str] = []
    dialogs.show_error = lambda _p, title, text: messages.append(f"{title}: {text}")
    settings = Settings(QSettings(str(folder / "gui.ini"), QSettings.Format.IniFormat))
    window = MainWindow(store, settings, theme, threads=2)
    window.resize(1280, 800)
    window.show()

    def shoot(name: str) -> None:
        settle(app)
        window.grab().save(str(out / name))
        print("wrote", out / name)

    # data page with statistics
    panel = window.data_panel
    window.show_page(panel)
    panel.open_path(args.data)
    wait(app, lambda: panel.dataset is not None or messages, 120)
    registered: list[int] = []
    panel.registered.connect(registered.append)
    panel.register()
    wait(app, lambda: registered or messages, 120)
    if messages:
        print("\n".join(messages))
        return 1
    shoot("data.png")

    # train page set up for CaFe: two seeds, one worker at a time
    train = window.train_panel
    window.show_page(train)
    train.model_combo.setCurrentText("cafe")
    train.model_form.set_values({"hidden": args.hidden})
    train.train_form.set_values({"epochs": args.epochs, "device": "cpu"})
    train.parallel.setValue(1)
    train.seeds.setValue(2)
    shoot("train.png")

    # real runs: CaFe with two seeds and SASRec, queued behind one worker
    ids = train.launch()
    train.seeds.setValue(1)
    train.model_combo.setCurrentText("sasrec")
    train.model_form.set_values({"hidden": args.hidden})
    train.train_form.set_values({"epochs": args.epochs, "device": "cpu"})
    ids += train.launch()

    def detail(run_id: int):
        with store.session() as session:
            return queries.get_run(session, run_id)

    # the first run live: progress with ETA, the curves so far, the others queued
    runs = window.runs_panel
    window.show_page(runs)
    wait(app, lambda: detail(ids[0]).epochs >= 3, 1800)
    wait(app, lambda: runs.select_run(ids[0]), 10)
    wait(app, lambda: runs.page.points().get("NDCG@5", 0) >= 3, 30)
    shoot("runs-live.png")

    # all three to the end, then the first one's page and attention maps
    ended = ("finished", "failed", "cancelled")
    wait(app, lambda: all(detail(i).status in ended for i in ids), 3600)
    # and the table has read their ends
    wait(app, lambda: all(r.status in ended for r in runs.runs), 30)
    wait(app, lambda: runs.select_run(ids[0]), 10)
    wait(
        app,
        lambda: (
            runs.page.detail is not None
            and runs.page.detail.status == detail(ids[0]).status
        ),
        20,
    )
    wait(app, lambda: runs.page.attention.current_key() is not None, 20)
    shoot("runs.png")
    runs.page.tabs.setCurrentIndex(1)
    shoot("run_attention.png")
    runs.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
