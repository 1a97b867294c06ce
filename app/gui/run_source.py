"""Where the compare, inspect and embedding views get finished runs from.

The views ask a source for the list of finished runs, for a run rebuilt with its
checkpoint's weights, for its per-user results and for the numbers of a comparison.
:class:`StoreSource` reads the run store; :func:`fake_source` builds a small synthetic
dataset and untrained models in memory, so each view runs alone without a database.

Rebuilding a run reads its data file again and draws its split, which takes seconds on
large data, so rebuilt runs (and the datasets under them) are kept for a few runs.
Every method may be called from a worker thread; none touches a widget.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from engine.data.dataset import Dataset
from engine.evaluation import evaluate
from engine.experiment import PreparedRun, RunSpec, build_run, load_dataset
from engine.inspect import load_trained


@dataclass(frozen=True)
class RunChoice:
    """A finished run as the views' run pickers list it."""

    id: int
    model: str
    dataset: str
    seed: int
    protocol: str

    @property
    def label(self) -> str:
        return f"#{self.id} {self.model} on {self.dataset} (seed {self.seed})"


@dataclass
class Comparison:
    """Everything the compare view shows about a set of runs."""

    runs: pd.DataFrame  # storage.queries.compare_runs: one row per run
    curves: dict[int, pd.DataFrame]  # run -> epoch, split, name, value
    per_user: dict[int, pd.DataFrame] = field(default_factory=dict)  # test results


class RunSource(Protocol):
    def finished_runs(self) -> list[RunChoice]: ...

    def trained(self, run_id: int) -> PreparedRun: ...

    def user_results(self, run_id: int, which: str = "test") -> pd.DataFrame: ...

    def comparison(self, ids: list[int]) -> Comparison: ...

    def record_export(self, run_ids: list[int], what: str, path: Path) -> None: ...

    def cache_dir(self, run_id: int) -> Path | None:
        """A folder for what is computed from a finished run (its 2-D projections),
        removed with the run; None: nothing is kept on disk."""
        ...


class _Recent:
    """A small thread-safe most-recently-used cache."""

    def __init__(self, size: int):
        self.size = size
        self.items: OrderedDict[Any, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class StoreSource:
    """Finished runs of a run store (``storage.open_store``)."""

    def __init__(self, store, keep: int = 3):
        self.store = store
        self._runs = _Recent(keep)
        self._datasets = _Recent(keep)

    def finished_runs(self) -> list[RunChoice]:
        from storage import queries

        with self.store.session() as session:
            runs = queries.list_runs(session, status="finished")
        return [RunChoice(r.id, r.model, r.dataset, r.seed, r.protocol) for r in runs]

    def trained(self, run_id: int) -> PreparedRun:
        from storage import StoreError, queries

        found = self._runs.get(run_id)
        if found is not None:
            return found
        with self.store.session() as session:
            detail = queries.get_run(session, run_id)
            spec = RunSpec.from_dict(detail.spec)
            checkpoint = queries.checkpoint_path(session, run_id, "best")
        key = json.dumps(spec.data.to_dict(), sort_keys=True)
        dataset = self._datasets.get(key)
        if dataset is None:
            dataset = load_dataset(spec.data)
            self._datasets.put(key, dataset)
        # the weights index items of the data they were trained on: other data
        # would put every item id on the wrong item
        if detail.dataset_hash and dataset.hash != detail.dataset_hash:
            raise StoreError(
                f"{spec.data.path}: the data changed since run {run_id} was trained "
                "on it (content hash differs), so its items no longer match the "
                "model's; restore the file, or train a new run on the data as it is."
            )
        run = load_trained(spec, checkpoint, dataset=dataset)
        self._runs.put(run_id, run)
        return run

    def user_results(self, run_id: int, which: str = "test") -> pd.DataFrame:
        from storage import queries

        with self.store.session() as session:
            return queries.user_results(session, run_id, which)

    def comparison(self, ids: list[int]) -> Comparison:
        from storage import queries

        with self.store.session() as session:
            runs = queries.compare_runs(session, ids)
            curves = {i: queries.run_curves(session, i) for i in ids}
            per_user = {i: queries.user_results(session, i, "test") for i in ids}
        return Comparison(runs, curves, per_user)

    def record_export(self, run_ids: list[int], what: str, path: Path) -> None:
        from app.gui.exports import record_in_store

        record_in_store(self.store, run_ids, what, path)

    def cache_dir(self, run_id: int) -> Path | None:
        return self.store.run_dir(run_id) / "projections"


# ---- fake data for running a view alone


def synthetic_dataset(users: int = 120, items: int = 300, intents: int = 6) -> Dataset:
    """Users who mostly stay within two intents, items popular by a power law."""
    from engine.data.dataset import ColumnMapping, prepare
    from engine.data.io import RawData

    rng = np.random.default_rng(0)
    item_intent = rng.integers(0, intents, items)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    rows = []
    for user in range(users):
        liked = rng.choice(intents, 2, replace=False)
        weights = popularity * np.where(np.isin(item_intent, liked), 8.0, 1.0)
        length = int(rng.integers(3, 30))
        chosen = rng.choice(items, length, p=weights / weights.sum())
        rows += [(f"u{user}", f"i{item}", t) for t, item in enumerate(chosen)]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    catalogue = pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(items)],
            "category": [f"genre-{chr(65 + c)}" for c in item_intent],
            "title": [f"Item number {i}" for i in range(items)],
        }
    )
    raw = RawData(inter, catalogue, interactions_path=_fake_path())
    mapping = ColumnMapping("user_id", "item_id", "timestamp", "category", (), "title")
    return prepare(raw, mapping, name="synthetic")


def _fake_path():
    from pathlib import Path

    return Path("synthetic") / "interactions.csv"


class FakeSource:
    """Untrained models on synthetic data: what a view looks like, without a store."""

    def __init__(self, models: tuple[str, ...] = ("cafe", "sasrec")):
        from engine.experiment import DataSpec
        from engine.models import model_class

        self.dataset = synthetic_dataset()
        self.runs: dict[int, PreparedRun] = {}
        self.results: dict[int, Any] = {}
        for run_id, model in enumerate(models, start=1):
            fields = model_class(model).config_class.__dataclass_fields__
            small = {k: v for k, v in (("hidden", 16), ("max_len", 20)) if k in fields}
            spec = RunSpec(
                DataSpec("synthetic"),
                model,
                small,
                {"seed": run_id, "device": "cpu"},
            ).resolved()
            run = build_run(spec, self.dataset)
            run.model.eval()
            self.runs[run_id] = run
            self.results[run_id] = evaluate(run.model, run.split, "test")

    def finished_runs(self) -> list[RunChoice]:
        return [
            RunChoice(i, run.spec.model, "synthetic", run.train_config.seed, "sampled")
            for i, run in self.runs.items()
        ]

    def trained(self, run_id: int) -> PreparedRun:
        return self.runs[run_id]

    def user_results(self, run_id: int, which: str = "test") -> pd.DataFrame:
        return self.results[run_id].per_user

    def comparison(self, ids: list[int]) -> Comparison:
        records, curves = [], {}
        for run_id in ids:
            run, result = self.runs[run_id], self.results[run_id]
            record = {
                "id": run_id,
                "model": run.spec.model,
                "dataset": "synthetic",
                "dataset_hash": self.dataset.hash,
                "protocol": "sampled",
                "seed": run.train_config.seed,
                "status": "finished",
            }
            record |= {f"model.{k}": v for k, v in run.spec.model_config.items()}
            record |= {f"test {k}": v for k, v in result.metrics.items()}
            records.append(record)
            # a made-up validation curve that rises like a real one
            epochs = np.arange(1, 21)
            value = result.metrics["NDCG@5"] * (1 - np.exp(-epochs / (4 + run_id)))
            curves[run_id] = pd.DataFrame(
                {"epoch": epochs, "split": "valid", "name": "NDCG@5", "value": value}
            )
        per_user = {i: self.results[i].per_user for i in ids}
        return Comparison(pd.DataFrame.from_records(records), curves, per_user)

    def record_export(self, run_ids: list[int], what: str, path: Path) -> None:
        """Nothing to record without a store."""

    def cache_dir(self, run_id: int) -> Path | None:
        """Nothing is kept on disk for synthetic runs."""
        return None
