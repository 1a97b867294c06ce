"""A generated store of many runs, for the query benchmark and the query tests.

The numbers are random but shaped like real ones (loss falling, validation metrics
rising then flat), so the queries meet the same row counts and index paths as on a
store a person has filled over months.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import insert

from storage.schema import DatasetRow, MetricRow, RunRow, UserResultRow, utcnow
from storage.store import Store

MODELS = ("cafe", "sasrec", "bert4rec", "fdsa", "poprec", "intentpop")
STATUSES = ("finished",) * 8 + ("failed", "cancelled", "interrupted", "running")
METRICS = ("HR@5", "NDCG@5", "HR@10", "NDCG@10", "MRR")


def fill_store(
    store: Store,
    runs: int = 1000,
    epochs: int = 100,
    users: int = 0,
    seed: int = 0,
) -> list[int]:
    """Add ``runs`` finished-looking runs of ``epochs`` epochs; return their ids.

    Each epoch writes 2 training and 6 validation numbers, so 1,000 runs of 125 epochs
    hold a million metric rows. ``users`` per-user test results are added per run.
    """
    rng = np.random.default_rng(seed)
    with store.session(write=True) as session:
        dataset_ids = []
        for index, name in enumerate(("ciao", "beauty", "sports")):
            row = DatasetRow(
                name=name,
                path=f"data/{name}",
                items_path=None,
                mapping={"user": "user_id", "item": "item_id"},
                filters={},
                content_hash=f"{index:064x}",
                spec_hash=f"{index:064x}",
                stats={"users": 1000, "items": 5000, "interactions": 20000},
                stats_before={},
                notes=[],
            )
            session.add(row)
            session.flush()
            dataset_ids.append(row.id)
        plans = [_plan_run(rng, dataset_ids, epochs) for _ in range(runs)]
        run_ids = list(
            session.scalars(
                insert(RunRow).returning(RunRow.id, sort_by_parameter_order=True),
                [run for run, _ in plans],
            )
        )
        metrics, per_user = [], []
        for run_id, (_, records) in zip(run_ids, plans):
            metrics += [
                {"run_id": run_id, "epoch": e, "split": s, "name": n, "value": v}
                for e, s, n, v in records
            ]
            per_user += _user_rows(rng, run_id, users)
        session.execute(insert(MetricRow), metrics)
        if per_user:
            session.execute(insert(UserResultRow), per_user)
    return run_ids


def _plan_run(rng, dataset_ids, epochs: int):
    """One run's row and its metric records (epoch, split, name, value)."""
    model = str(rng.choice(MODELS))
    seed = int(rng.integers(0, 5))
    spec = {
        "data": {"path": "data", "items_path": None, "mapping": None, "filters": {}},
        "model": model,
        "model_config": {"hidden": int(rng.choice([32, 64, 128])), "blocks": 2},
        "train": {"epochs": epochs, "seed": seed, "protocol": "sampled", "ks": "5,10"},
    }
    quality = rng.uniform(0.1, 0.4, size=epochs)
    curve = np.maximum.accumulate(quality * np.linspace(0.3, 1.0, epochs))
    best_epoch = int(np.argmax(curve)) + 1
    now = utcnow()
    run = {
        "dataset_id": int(rng.choice(dataset_ids)),
        "model": model,
        "spec": spec,
        "seed": seed,
        "protocol": "sampled",
        "status": str(rng.choice(STATUSES)),
        "device": "cpu",
        "host": "bench",
        "pid": None,
        "versions": {},
        "created": now,
        "started": now,
        "finished": now,
        "seconds": float(epochs),
        "epochs": epochs,
        "best_epoch": best_epoch,
        "stop_reason": "epochs",
        "log": "",
    }

    # every epoch: training loss and seconds, validation metrics and seconds
    records = []
    for epoch in range(1, epochs + 1):
        value = float(curve[epoch - 1])
        records.append((epoch, "train", "loss", 2.0 / epoch + 0.5))
        records.append((epoch, "train", "seconds", 1.0))
        for offset, name in enumerate(METRICS):
            records.append((epoch, "valid", name, value * (1 + 0.1 * offset)))
        records.append((epoch, "valid", "seconds", 0.2))
    for offset, name in enumerate(METRICS):
        records.append(
            (best_epoch, "test", name, float(curve[-1]) * (1 + 0.1 * offset))
        )
    return run, records


def _user_rows(rng, run_id: int, users: int) -> list[dict]:
    ranks = rng.integers(0, 101, size=users)
    return [
        {
            "run_id": run_id,
            "which": "test",
            "user": u,
            "target": u + 1,
            "rank": int(ranks[u]),
            "candidates": 101,
            "history_len": 5,
            "target_train_freq": 3,
        }
        for u in range(users)
    ]
