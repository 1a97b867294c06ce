"""One experiment from a plain description: which data, which model, how to train.

The command line, the worker process and the comparison command all describe a run as a
:class:`RunSpec` (JSON-ready, stored with the run) and call :func:`build_run` to get the
prepared data, the model and a trainer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from engine.data.dataset import ColumnMapping, Dataset, Filters, guess_mapping, prepare
from engine.data.io import load_raw
from engine.data.split import Split, leave_last_two_out
from engine.models import build_model, model_class
from engine.models.base import ModelContext, Recommender
from engine.training import TrainConfig, Trainer, seed_everything

log = logging.getLogger(__name__)


@dataclass
class DataSpec:
    """Where the data lies and how its columns are read; mapping None means guessed."""

    path: str
    items_path: str | None = None
    mapping: dict[str, Any] | None = None
    filters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "items_path": self.items_path,
            "mapping": self.mapping,
            "filters": self.filters,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataSpec:
        return cls(**data)


@dataclass
class RunSpec:
    data: DataSpec
    model: str
    model_config: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data.to_dict(),
            "model": self.model,
            "model_config": self.model_config,
            "train": self.train,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(
            data=DataSpec.from_dict(data["data"]),
            model=data["model"],
            model_config=dict(data.get("model_config") or {}),
            train=dict(data.get("train") or {}),
        )

    def resolved(self) -> RunSpec:
        """The same spec with every default written out, as it is stored with a run."""
        cls = model_class(self.model)
        return RunSpec(
            data=self.data,
            model=self.model,
            model_config=cls.config_class.from_dict(self.model_config).to_dict(),
            train=TrainConfig.from_dict(self.train).to_dict(),
        )


def load_dataset(spec: DataSpec) -> Dataset:
    raw = load_raw(spec.path, spec.items_path)
    mapping = (
        ColumnMapping.from_dict(spec.mapping) if spec.mapping else guess_mapping(raw)
    )
    return prepare(
        raw, mapping, Filters.from_dict(spec.filters or {}), name=dataset_name(spec)
    )


def dataset_name(spec: DataSpec) -> str:
    path = Path(spec.path)
    return path.name if path.is_dir() else path.parent.name or path.stem


def model_context(split: Split) -> ModelContext:
    ds = split.dataset
    return ModelContext(
        num_items=ds.num_items,
        num_intents=ds.num_intents,
        num_users=ds.num_users,
        item_intent=torch.from_numpy(ds.item_intent),
        item_counts=torch.from_numpy(split.train_counts()),
        num_known_intents=ds.num_known_intents,
    )


@dataclass
class PreparedRun:
    spec: RunSpec
    dataset: Dataset
    split: Split
    model: Recommender
    train_config: TrainConfig


def build_run(spec: RunSpec, dataset: Dataset | None = None) -> PreparedRun:
    """Prepare data, split and a freshly initialised model, all fixed by the seed."""
    config = TrainConfig.from_dict(spec.train)
    cls = model_class(spec.model)
    model_config = cls.config_class.from_dict(spec.model_config)
    dataset = dataset if dataset is not None else load_dataset(spec.data)
    split = leave_last_two_out(dataset, config.seed, config.num_negatives)
    seed_everything(config.seed)
    model = build_model(spec.model, model_config, model_context(split))
    return PreparedRun(spec, dataset, split, model, config)


def make_trainer(
    run: PreparedRun, checkpoint_dir=None, should_stop=None, on_checkpoint=None
) -> Trainer:
    return Trainer(
        run.model,
        run.split,
        run.train_config,
        checkpoint_dir,
        should_stop,
        on_checkpoint,
    )
