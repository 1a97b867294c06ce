"""What each sub-command does; ``app.cli`` only parses arguments."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import torch

from app.progress import ProgressPrinter
from engine import distributed
from engine.data.dataset import ColumnMapping, Filters, guess_mapping, prepare
from engine.data.io import load_raw
from engine.experiment import DataSpec, RunSpec, build_run, dataset_name, make_trainer
from engine.models import check_intents
from engine.training import Finished

log = logging.getLogger(__name__)

# the exit status of a command stopped by SIGTERM or Ctrl-C before it stored anything
EXIT_STOPPED = 130


def add_other_commands(sub) -> None:
    """Sub-commands other than ``train`` (which lives in app.cli beside its flags)."""


def open_workbench(args: argparse.Namespace) -> int:
    from app.gui.launch import launch

    return launch(args)


def configure_threads(threads: int) -> None:
    if threads and threads > 0:
        torch.set_num_threads(threads)


def data_spec_from_args(args: argparse.Namespace):
    """Read the data once, complete the column mapping from the flags, prepare it."""
    raw = load_raw(args.data, args.items)
    fields = guess_mapping(raw, user=args.user, item=args.item).to_dict()
    for key, flag in (
        ("time", args.time),
        ("intent", args.intent),
        ("name", args.name_column),
    ):
        if flag is not None:
            fields[key] = None if flag.lower() == "none" else flag
    mapping = ColumnMapping.from_dict(
        {k: fields.get(k) for k in ("user", "item", "time", "intent", "name")}
        | {"intent_candidates": tuple(fields.get("intent_candidates", ()))}
    )
    filters = Filters(
        duplicates=args.duplicates,
        min_item_freq=args.min_item_freq,
        min_user_len=args.min_user_len,
        tie_break=args.tie_break,
        tie_seed=args.seed,
    )
    spec = DataSpec(
        path=str(args.data),
        items_path=str(args.items) if args.items else None,
        mapping=mapping.to_dict(),
        filters=filters.to_dict(),
    )
    dataset = prepare(raw, mapping, filters, name=dataset_name(spec))
    return spec, dataset


def train(args: argparse.Namespace) -> int:
    """One run; started by torchrun, one data-parallel process of it, of which only
    the first (rank 0) stores the run and prints."""
    from app.cli import model_overrides, print_json, train_overrides
    from app.worker import StopFlag

    configure_threads(args.threads)
    overrides = model_overrides(args)
    # Ctrl-C or SIGTERM: while the data is read nothing is stored yet and the command
    # ends; once training, it stops after the batch and keeps a resumable checkpoint
    with StopFlag().installed() as flag:
        where = distributed.setup()
        try:
            data, dataset = data_spec_from_args(args)
            if flag():
                print("stopped before the run was stored", file=sys.stderr)
                return EXIT_STOPPED
            for note in dataset.notes if where.is_main else ():
                print(f"note: {note}", file=sys.stderr)
            check_intents(
                args.model, dataset.num_known_intents, *dataset.intent_origin()
            )
            spec = RunSpec(data, args.model, overrides, train_overrides(args))
            summary = execute_run(
                spec.resolved(),
                dataset,
                quiet=args.quiet or not where.is_main,
                store=not args.no_store and where.is_main,
                db=args.db,
                should_stop=flag,
            )
        finally:
            distributed.teardown()
    if where.is_main:
        print_metrics(summary)
        if args.json:
            print_json(summary)
    return 0


def execute_run(
    spec: RunSpec,
    dataset,
    quiet: bool = False,
    store: bool = False,
    db: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one run in this process; return its summary.

    With ``store`` the run is recorded in the run store at ``db`` (default: $CAFE_DB or
    the user data folder) exactly as a worker records it, so an open workbench shows
    it live; otherwise checkpoints go to a temporary folder and nothing is kept.
    ``should_stop`` (``train``'s SIGTERM/Ctrl-C flag) is polled between batches and,
    for a stored run, between the steps that prepare it.
    """
    if store:
        return execute_stored_run(spec, dataset, quiet, db, should_stop)
    run = build_run(spec, dataset)
    printer = ProgressPrinter(run.train_config.metric, quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="cafe-run-") as folder:
        trainer = make_trainer(run, checkpoint_dir=folder, should_stop=should_stop)
        result = None
        for event in trainer.run():
            printer(event)
            if isinstance(event, Finished):
                result = event.result
    return result_summary(spec, dataset, result)


def execute_stored_run(
    spec: RunSpec,
    dataset,
    quiet: bool,
    db: str | None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    from app.worker import run_stored
    from storage import open_store
    from storage import queries as q

    store = open_store(db)
    try:

        def create(session):
            dataset_id = q.register_dataset(session, spec.data.to_dict(), dataset)
            return q.create_run(session, spec.to_dict(), dataset_id)

        run_id = store.transact(create)
        printer = ProgressPrinter(spec.train.get("metric", "NDCG@5"), quiet=quiet)
        # a stop from here on marks the run cancelled and keeps what it learned
        result = run_stored(
            store, run_id, dataset=dataset, observe=printer, should_stop=should_stop
        )
    finally:
        store.dispose()
    if result.stop_reason == "cancelled":
        print(
            f"run {run_id} cancelled; continue it with: main.py resume --run {run_id}",
            file=sys.stderr,
        )
    return {"run": run_id, **result_summary(spec, dataset, result)}


def result_summary(spec: RunSpec, dataset, result) -> dict[str, Any]:
    return {
        "model": spec.model,
        "dataset": dataset.name,
        "dataset_hash": dataset.hash,
        "protocol": spec.train["protocol"],
        "seed": spec.train["seed"],
        "device": result.device,
        "processes": result.processes,
        # on the CPU the thread count orders float sums: same seed, same threads,
        # same metrics
        "threads": torch.get_num_threads(),
        "epochs_trained": result.epochs_trained,
        "best_epoch": result.best_epoch,
        "stop_reason": result.stop_reason,
        "seconds": round(result.seconds, 3),
        "valid": result.valid.metrics if result.valid else {},
        "test": result.test.metrics if result.test else {},
        "also": {
            result.extra["test"].protocol: {
                which: evaluation.metrics for which, evaluation in result.extra.items()
            }
        }
        if result.extra
        else {},
        "model_config": spec.model_config,
    }


def print_metrics(summary: dict[str, Any]) -> None:
    names = list(summary["test"] or summary["valid"])
    print(
        f"{summary['model']} on {summary['dataset']} ({summary['protocol']} protocol, "
        f"seed {summary['seed']}, best epoch {summary['best_epoch']})"
    )
    print("        " + "".join(f"{n:>10}" for n in names))
    for split in ("valid", "test"):
        values = summary[split]
        if values:
            print(f"{split:<8}" + "".join(f"{values[n]:>10.4f}" for n in names))
