"""How long a worker takes to stop after SIGTERM (SPEC §4: "within a second or two").

Starts real worker processes on Ciao (CaFe, hidden 32) in a temporary store and sends
SIGTERM at three moments: mid-epoch (after a few batches), just after an epoch (during
validation) and again mid-epoch under the full-ranking protocol (a slower validation).
Reports the time to the worker's "finished" event (the run is recorded as cancelled)
and to the process exit.

    .venv/bin/python benchmarks/bench_cancel.py [--data ../shared/data/ciao]
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.worker import launch_worker  # noqa: E402
from engine.experiment import DataSpec, RunSpec, load_dataset  # noqa: E402
from storage import open_store  # noqa: E402
from storage import queries as q  # noqa: E402


def new_run(store, spec: DataSpec, dataset, protocol: str) -> int:
    train = {"epochs": 50, "min_epochs": 50, "seed": 1, "device": "cpu"}
    run_spec = RunSpec(spec, "cafe", {"hidden": 32}, train | {"protocol": protocol})

    def create(session):
        dataset_id = q.register_dataset(session, spec.to_dict(), dataset)
        return q.create_run(session, run_spec.resolved().to_dict(), dataset_id)

    return store.transact(create)


def stop_once(store, run_id: int, when: str) -> tuple[float, float, str]:
    """Seconds from SIGTERM to the "finished" event and to the exit, and the status."""
    worker = launch_worker(run_id, store.url)
    batches = 0
    for line in worker.stdout:
        event = json.loads(line)
        batches += event["event"] == "batch"
        if (when == "mid-epoch" and batches == 3) or (
            when == "after an epoch" and event["event"] == "epoch"
        ):
            break
    sent = time.perf_counter()
    worker.send_signal(signal.SIGTERM)
    finished = float("nan")
    for line in worker.stdout:
        if json.loads(line)["event"] == "finished":
            finished = time.perf_counter() - sent
    worker.wait()
    exited = time.perf_counter() - sent
    worker.stderr.close()
    with store.session() as session:
        status = q.get_run(session, run_id).status
    return finished, exited, status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared/data/ciao"))
    args = parser.parse_args()
    spec = DataSpec(path=args.data)
    dataset = load_dataset(spec)
    with tempfile.TemporaryDirectory(prefix="cafe-cancel-") as folder:
        store = open_store(str(Path(folder) / "runs.db"))
        print(f"{'protocol':<9} {'SIGTERM':<15} {'finished':>9} {'exit':>7}  status")
        for protocol, when in (
            ("sampled", "mid-epoch"),
            ("sampled", "after an epoch"),
            ("full", "after an epoch"),
        ):
            run_id = new_run(store, spec, dataset, protocol)
            finished, exited, status = stop_once(store, run_id, when)
            print(
                f"{protocol:<9} {when:<15} {finished:>8.2f}s {exited:>6.2f}s  {status}"
            )
        store.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
