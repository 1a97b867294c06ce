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
    identity = {
        "model": spec.model,
        "model_config": spec.model_config,
        "train": {k: v for k, v in spec.train.items() if k != "also_evaluate"},
        "mapping": spec.data.mapping,
        "filters": spec.data.filters,
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
) -> tuple[dict, pd.DataFrame]:
    """Train and evaluate one run, resuming its checkpoint; save and return it."""
    run = build_run(spec, dataset)
    printer = ProgressPrinter(run.train_config.metric, quiet=quiet)
    checkpoints = folder / f"{key}.ckpt"
    trainer = make_trainer(run, checkpoint_dir=checkpoints)
    if trainer.resume():
        note(f"{key}: resuming from its checkpoint at epoch {trainer.state.epoch}.")
    result = None
    for event in trainer.run():
        printer(event)
        if isinstance(event, Finished):
            result = event.result
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
    save_done(folder, key, summary, users)
    shutil.rmtree(checkpoints, ignore_errors=True)
    return summary, users


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
