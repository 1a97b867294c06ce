"""Screenshots of the compare, inspect and embedding views on real finished runs.

Trains a few small runs on real data into a temporary run store (CaFe with two seeds,
SASRec, IntentPop; MovieLens-100K by default, whose items have genres as intents and
titles as names), then renders each view offscreen at 1280x800 into docs/screenshots/.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshots_views.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SIZE = (1280, 800)
# the runs behind the pictures, in the order they are trained: name -> (model, seed,
# settings); the last is CaFe without local heads and joint inference, the (1)(2) step
# of the paper's Table 3 ablation
WANTED = {
    "cafe s0": ("cafe", 0, {}),
    "cafe s1": ("cafe", 1, {}),
    "sasrec s0": ("sasrec", 0, {}),
    "intentpop s0": ("intentpop", 0, {}),
    "cafe (1)(2) s0": ("cafe", 0, {"local_heads": 0, "joint_inference": False}),
}
TABLE2 = ("cafe s0", "cafe s1", "sasrec s0", "intentpop s0")


def train_runs(store, data: Path, epochs: int) -> dict[str, int]:
    from app.worker import run_stored
    from engine.experiment import DataSpec, RunSpec, load_dataset
    from storage import queries as q

    spec = DataSpec(path=str(data))
    dataset = load_dataset(spec)
    ids = {}
    for name, (model, seed, settings) in WANTED.items():
        config = {"hidden": 64} if model in ("cafe", "sasrec") else {}
        config |= settings
        train = {"epochs": epochs, "min_epochs": 0, "seed": seed, "device": "cpu"}
        run_spec = RunSpec(spec, model, config, train).resolved().to_dict()

        def create(session, run_spec=run_spec):
            dataset_id = q.register_dataset(session, spec.to_dict(), dataset)
            return q.create_run(session, run_spec, dataset_id)

        ids[name] = store.transact(create)
        started = time.perf_counter()
        run_stored(store, ids[name], dataset=dataset)
        print(
            f"trained {name} as run {ids[name]} in {time.perf_counter() - started:.0f}s"
        )
    return ids


def settle(app, condition, seconds: float = 300.0) -> None:
    """Process events until ``condition()`` holds (a worker thread has answered)."""
    deadline = time.perf_counter() + seconds
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("a view did not finish in time")
        app.processEvents()
        time.sleep(0.02)
    for _ in range(5):
        app.processEvents()


def shoot(app, widget, path: Path) -> None:
    settle(app, lambda: True)
    widget.grab().save(str(path))
    print(f"wrote {path}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/ml-100k"
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--db", type=Path, help="keep the runs in this store; reuse them when present"
    )
    args = parser.parse_args()

    import torch
    from PySide6.QtWidgets import QApplication

    from app.gui.compare_view import CompareView
    from app.gui.embedding_view import EmbeddingView
    from app.gui.inspect_view import InspectView
    from app.gui.run_source import StoreSource
    from app.gui.theme import Theme, apply_fusion
    from storage import open_store, queries

    torch.set_num_threads(2)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_fusion(app)
    Theme(app, "light")
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cafe-shots-") as folder:
        store = open_store(str(args.db or Path(folder) / "runs.db"))
        with store.session() as session:
            done = queries.list_runs(session, status="finished")
        if len(done) == len(WANTED):
            ids = dict(zip(WANTED, sorted(r.id for r in done)))
        else:
            ids = train_runs(store, args.data, args.epochs)
        source = StoreSource(store)

        compare = CompareView(source)
        compare.resize(*SIZE)
        compare.show()
        compare.compare([ids[name] for name in TABLE2])
        settle(app, lambda: compare.grid is not None)
        shoot(app, compare, args.out / "compare.png")
        compare.grid = None
        compare.compare(list(ids.values()))
        settle(app, lambda: compare.grid is not None)
        compare.table_box.setCurrentIndex(compare.table_box.findData("ablation"))
        shoot(app, compare, args.out / "compare-ablation.png")

        inspect = InspectView(source)
        inspect.resize(*SIZE)
        inspect.show()
        inspect.select_run(ids["cafe s0"])
        settle(app, lambda: inspect.run is not None)
        # a user served well, with a history long enough to show its attention
        users = inspect.users
        chosen = users[(users["length"] >= 25) & (users["rank"] <= 5)]
        row = chosen.index[0] if len(chosen) else 0
        inspect.users_table.selectRow(int(row))
        settle(app, lambda: inspect.current is not None)
        shoot(app, inspect, args.out / "inspect.png")
        inspect.tabs.setCurrentIndex(1)
        shoot(app, inspect, args.out / "inspect-next-intent.png")

        embeddings = EmbeddingView(source)
        embeddings.resize(*SIZE)
        embeddings.show()
        embeddings.show_run(ids["cafe s0"])
        embeddings.compute()
        settle(app, lambda: embeddings.shown is not None)
        shoot(app, embeddings, args.out / "embeddings.png")
        embeddings.filter_box.setCurrentIndex(2)
        shoot(app, embeddings, args.out / "embeddings-infrequent.png")
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
