"""Times of the queries the workbench runs, on a generated store of many runs.

    python benchmarks/bench_store.py [--runs 1000] [--epochs 125] [--users 300]

Builds a temporary SQLite store (1,000 runs x 125 epochs x 8 numbers = 1,000,000 metric
rows by default), then reports the median of several timings of each query.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402

from storage import open_store  # noqa: E402
from storage import queries as q  # noqa: E402
from storage.sample import fill_store  # noqa: E402
from storage.schema import MetricRow  # noqa: E402


def timed(work, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=125)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--db", default=None, help="Reuse this store file.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = args.db or str(Path(folder) / "bench.db")
        store = open_store(path)
        with store.session() as session:
            rows = session.scalar(select(func.count(MetricRow.id)))
        if not rows:
            began = time.perf_counter()
            fill_store(store, args.runs, args.epochs, users=args.users)
            print(f"filled {args.runs} runs in {time.perf_counter() - began:.1f} s")
        with store.session() as session:
            rows = session.scalar(select(func.count(MetricRow.id)))
            ids = [run.id for run in q.list_runs(session, limit=10)]
        print(f"store: {args.runs} runs, {rows:,} metric rows")

        def in_session(work):
            def call():
                with store.session() as session:
                    work(session)

            return call

        checks = {
            "runs_stamp (the 1 s poll when nothing changed)": q.runs_stamp,
            "list_runs (all, best-epoch metrics)": lambda s: q.list_runs(s),
            "list_runs (status=finished, model=cafe)": lambda s: q.list_runs(
                s, status="finished", model="cafe"
            ),
            "list_runs (text='beauty', limit=100)": lambda s: q.list_runs(
                s, text="beauty", limit=100
            ),
            "run_curves (one run)": lambda s: q.run_curves(s, ids[0]),
            "compare_runs (10 runs)": lambda s: q.compare_runs(s, ids),
            "user_results (one run)": lambda s: q.user_results(s, ids[0]),
            "get_run (one run)": lambda s: q.get_run(s, ids[0]),
        }
        for name, work in checks.items():
            print(f"{name:<48} {timed(in_session(work)) * 1000:8.1f} ms")
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
