"""Sub-commands that work on the run store: ``worker``, ``resume`` and ``runs``."""

from __future__ import annotations

import argparse
import logging
import sys

from app.progress import ProgressPrinter
from app.worker import JsonLines, StopFlag, run_stored
from storage import open_store
from storage import queries as q

log = logging.getLogger(__name__)


def add_store_commands(sub) -> None:
    p = sub.add_parser(
        "worker",
        help="Execute a stored run (started by the workbench; usable by hand).",
        description=(
            "Train the stored run --run ID, writing its progress to the run store as "
            "it comes and one JSON object per event to stdout. SIGTERM or Ctrl-C "
            "stops after the current batch, saves a checkpoint and marks the run "
            "cancelled."
        ),
    )
    p.add_argument("--run", type=int, required=True, help="Run id in the store.")
    p.add_argument(
        "--resume",
        action="store_true",
        help="Continue a cancelled or interrupted run from its last checkpoint.",
    )
    p.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    p.set_defaults(handler=worker)

    p = sub.add_parser(
        "resume",
        help="Continue a stopped run from its last checkpoint.",
        description=(
            "Continue run --run ID from its last checkpoint (model, optimizer, RNG "
            "and epoch), in the foreground, with progress on stderr."
        ),
    )
    p.add_argument("--run", type=int, required=True, help="Run id in the store.")
    p.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    p.add_argument("--quiet", action="store_true", help="No progress on stderr.")
    p.set_defaults(handler=resume)

    p = sub.add_parser(
        "runs",
        help="List the runs in the store.",
        description=(
            "List stored runs, newest first, with their best-epoch metrics; runs "
            "whose worker died are marked interrupted first."
        ),
    )
    p.add_argument("--status", default=None, help="Only runs with this status.")
    p.add_argument("--model", default=None, help="Only runs of this model.")
    p.add_argument("--limit", type=int, default=50, help="At most this many runs.")
    p.set_defaults(handler=list_runs)


def _threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))


def worker(args: argparse.Namespace) -> int:
    return _execute(args, resume=args.resume, emit=JsonLines(sys.stdout))


def resume(args: argparse.Namespace) -> int:
    return _execute(args, resume=True, emit=None, quiet=args.quiet)


def _execute(args, resume: bool, emit, quiet: bool = True) -> int:
    # a stop while the store opens ends the run as soon as it is claimed
    flag = StopFlag()
    with flag.installed():
        _threads(args.threads)
        store = open_store(args.db)
        printer = None
        try:
            if emit is None:
                with store.session() as session:
                    spec = q.run_spec(session, args.run)
                metric = spec["train"].get("metric", "NDCG@5")
                printer = ProgressPrinter(metric, quiet=quiet)
            result = run_stored(
                store,
                args.run,
                resume=resume,
                emit=emit,
                observe=printer,
                should_stop=flag,
            )
        finally:
            store.dispose()
    if result is not None and printer is not None and result.test is not None:
        names = list(result.test.metrics)
        print("        " + "".join(f"{n:>10}" for n in names))
        for split, evaluated in (("valid", result.valid), ("test", result.test)):
            values = evaluated.metrics
            print(f"{split:<8}" + "".join(f"{values[n]:>10.4f}" for n in names))
    return 0


def list_runs(args: argparse.Namespace) -> int:
    store = open_store(args.db)
    marked = store.transact(q.mark_stale_runs)
    if marked:
        print(
            f"marked {marked} run(s) interrupted: their worker is gone", file=sys.stderr
        )
    with store.session() as session:
        runs = q.list_runs(
            session, status=args.status, model=args.model, limit=args.limit
        )
    print(
        f"{'id':>5} {'model':<10} {'dataset':<16} {'status':<11} {'epochs':>6} "
        f"{'best':>4}  metrics"
    )
    for run in runs:
        shown = run.test or run.best
        label = "test" if run.test else "valid"
        metrics = " ".join(f"{k} {v:.4f}" for k, v in shown.items())
        print(
            f"{run.id:>5} {run.model:<10} {run.dataset[:16]:<16} {run.status:<11} "
            f"{run.epochs:>6} {run.best_epoch or '-':>4}  "
            f"{label + ' ' + metrics if metrics else ''}"
        )
    store.dispose()
    return 0
