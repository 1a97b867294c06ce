"""Model registry: every model is one file and one line here."""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.models.base import (
    EvalBatch,
    ModelConfig,
    ModelContext,
    Recommender,
    TrainBatch,
)
from engine.models.bert4rec import BERT4Rec
from engine.models.bertf import BERTF
from engine.models.cafe import CaFe
from engine.models.fdsa import FDSA
from engine.models.locker import LOCKER
from engine.models.lockerf import LOCKERF
from engine.models.nova import NOVA
from engine.models.pop import IntentPop, PopRec
from engine.models.sasrec import SASRec
from engine.models.ssept import SSEPT

REGISTRY: dict[str, type[Recommender]] = {
    "pop": PopRec,
    "intentpop": IntentPop,
    "sasrec": SASRec,
    "cafe": CaFe,
    "bert4rec": BERT4Rec,
    "ssept": SSEPT,
    "locker": LOCKER,
    "nova": NOVA,
    "fdsa": FDSA,
    "bertf": BERTF,
    "lockerf": LOCKERF,
}


def model_class(name: str) -> type[Recommender]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"There is no model {name!r}; choose one of {', '.join(REGISTRY)}."
        ) from None


def make_config(name: str, values: dict[str, Any] | None = None) -> ModelConfig:
    return model_class(name).config_class.from_dict(values)


def build_model(name: str, config: ModelConfig | dict | None, context: ModelContext):
    """Instantiate a registered model; intent-aware models need two known intents."""
    cls = model_class(name)
    if not isinstance(config, ModelConfig):
        config = cls.config_class.from_dict(config)
    if cls.needs_intents and context.num_known_intents < 2:
        raise ConfigError(
            f"{name} reads intents, but the intent column has fewer than two distinct "
            "values. Choose an item column with several values as the intent "
            "(--intent), "
            "or train an item-only model such as sasrec or pop."
        )
    return cls(config, context)


__all__ = [
    "REGISTRY",
    "EvalBatch",
    "ModelConfig",
    "ModelContext",
    "Recommender",
    "TrainBatch",
    "build_model",
    "make_config",
    "model_class",
]
