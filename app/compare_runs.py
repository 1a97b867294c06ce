"""Finished runs of a comparison on disk: a JSON summary and a per-user table each.

``<key>.json`` holds the run's summary and full configuration,
``<key>.per_user.parquet`` its test per-user results under every protocol it was
evaluated with, and ``<key>.ckpt/`` the checkpoint of a run still in progress. The
key hashes everything that decides a result, so a run found under its key is the run
asked for.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from app.commands import result_summary
from app.progress import ProgressPrinter
from engine.errors import ConfigError
from engine.experiment import RunSpec, build_run, make_trainer
from engine.training import Finished

log = logging.getLogger(__name__)


def run_key(spec: RunSpec, dataset) -> str:
    """File name of a run: readable prefix, then a digest of everything that decides
    its result (the data's location does not; its content hash does)."""
    filters = dict(spec.data.filters)
    if filters.get("tie_break") != "random":
        # ties in file order: the tie seed orders nothing (``compare --seeds 2,3``
        # took the first seed for it and missed the runs of ``--seeds 1,2,3``)
        filters.pop("tie_seed", None)
    identity = {
        "model": spec.model,
        "model_config": spec.model_config,
        "train": {k: v for k, v in spec.train.items() if k != "also_evaluate"},
        "mapping": spec.data.mapping,
        "filters": filters,
        "dataset_hash": dataset.hash,
    }
    text = json.dumps(identity, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    k = spec.data.filters.get("min_item_freq")
    return f"{spec.model}__k{k}__seed{spec.train['seed']}__{digest}"


def load_done(
    folder: Path,
    key: str,
    spec: RunSpec,
    dataset,
    protocols: list[str],
    note: Callable[[str], None] = log.warning,
) -> tuple[dict, pd.DataFrame] | None:
    """A finished run's summary and per-user results, when they match this run and
    hold every protocol asked for; None otherwise."""
    summary_path = folder / f"{key}.json"
    users_path = folder / f"{key}.per_user.parquet"
    if not (summary_path.exists() and users_path.exists()):
        return None
    try:
        saved = json.loads(summary_path.read_text(encoding="utf-8"))
        users = pd.read_parquet(users_path)
    except (OSError, ValueError) as exc:
        note(f"{summary_path.name} is unreadable ({exc}); training it again.")
        return None
    same = (
        saved.get("dataset_hash") == dataset.hash
        and saved.get("spec", {}).get("model_config") == spec.model_config
        and _without_extra(saved.get("spec", {}).get("train", {}))
        == _without_extra(spec.train)
    )
    if not same or not set(protocols) <= set(users["protocol"]):
        return None
    return saved, users


def _without_extra(train: dict) -> dict:
    return {k: v for k, v in train.items() if k != "also_evaluate"}


def train_one(
    folder: Path,
    key: str,
    spec: RunSpec,
    dataset,
    quiet: bool = True,
    note: Callable[[str], None] = log.info,
    store=None,
) -> tuple[dict, pd.DataFrame]:
    """Train and evaluate one run, resuming its checkpoint; save and return it.

    With ``store`` (a ``storage.Store``) the run is recorded there exactly as ``train``
    records it, so the workbench can compare, inspect and explore it; a stopped run of
    the same spec in the store is resumed rather than started again."""
    if store is not None:
        run_id, result = train_stored(store, key, spec, dataset, quiet, note)
    else:
        run_id, result = None, train_here(folder, key, spec, dataset, quiet, note)
    if result is None or result.test is None:
        raise ConfigError(f"run {key} ended without a test evaluation.")

    # the run's own protocol, then the one also evaluated on the same checkpoint
    evaluations = [result.test] + ([result.extra["test"]] if result.extra else [])
    users = pd.concat(
        [e.per_user.assign(protocol=e.protocol) for e in evaluations],
        ignore_index=True,
    )
    summary = result_summary(spec, dataset, result) | {
        "key": key,
        "spec": spec.to_dict(),
        "min_item_freq": spec.data.filters.get("min_item_freq"),
    }
    if run_id is not None:
        summary["run"] = run_id
    save_done(folder, key, summary, users)
    # the checkpoint goes only once the finished run is saved
    shutil.rmtree(folder / f"{key}.ckpt", ignore_errors=True)
    return summary, users


def train_here(folder: Path, key: str, spec: RunSpec, dataset, quiet, note):
    """Train in this process with the checkpoint in ``folder/<key>.ckpt``."""
    run = build_run(spec, dataset)
    printer = ProgressPrinter(run.train_config.metric, quiet=quiet)
    trainer = make_trainer(run, checkpoint_dir=folder / f"{key}.ckpt")
    if trainer.resume():
        note(f"{key}: resuming from its checkpoint at epoch {trainer.state.epoch}.")
    result = None
    for event in trainer.run():
        printer(event)
        if isinstance(event, Finished):
            result = event.result
    return result


# a stored run in one of these states continues from its checkpoint
RESUMABLE = ("cancelled", "interrupted")


def train_stored(store, key: str, spec: RunSpec, dataset, quiet, note):
    """Train as a stored run (the worker's code path), resuming a stopped one;
    returns the run's id in the store and its result."""
    from app.worker import StopFlag, run_stored
    from storage import queries as q

    def claim(session) -> tuple[int, bool]:
        q.mark_stale_runs(session)
        dataset_id = q.register_dataset(session, spec.data.to_dict(), dataset)
        stopped = q.find_runs(session, dataset_id, spec.to_dict(), RESUMABLE)
        if stopped:
            return stopped[0], True
        return q.create_run(session, spec.to_dict(), dataset_id), False

    run_id, resume = store.transact(claim)
    if resume:
        note(f"{key}: resuming stored run {run_id} from its checkpoint.")
    printer = ProgressPrinter(spec.train.get("metric", "NDCG@5"), quiet=quiet)
    # Ctrl-C or SIGTERM stops after the batch; the next compare resumes the run
    with StopFlag().installed() as flag:
        result = run_stored(
            store, run_id, resume=resume, dataset=dataset, observe=printer,
            should_stop=flag,
        )  # fmt: skip
    if result.stop_reason == "cancelled":
        raise KeyboardInterrupt(f"run {run_id} cancelled")
    return run_id, result


def save_done(folder: Path, key: str, summary: dict, users: pd.DataFrame) -> None:
    """Per-user results first and the summary last, each by rename: a summary on
    disk means the run is complete."""
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f"{key}.per_user.parquet.partial"
    users.to_parquet(partial, index=False)
    partial.replace(folder / f"{key}.per_user.parquet")
    partial = folder / f"{key}.json.partial"
    partial.write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    partial.replace(folder / f"{key}.json")


def metrics_by_protocol(summary: dict) -> dict[str, dict[str, float]]:
    """Test metrics of a saved run per protocol."""
    found = {summary["protocol"]: summary["test"]}
    for protocol, splits in (summary.get("also") or {}).items():
        found[protocol] = splits["test"]
    return found
