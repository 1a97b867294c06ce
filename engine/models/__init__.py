"""Model registry: every model is one file and one line here."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    """A model's validated config: bounds of each field, then the head split."""
    config = model_class(name).config_class.from_dict(values)
    check_heads(name, config)
    return config


def build_model(name: str, config: ModelConfig | dict | None, context: ModelContext):
    """Instantiate a registered model; intent-aware models need two known intents."""
    cls = model_class(name)
    if not isinstance(config, ModelConfig):
        config = cls.config_class.from_dict(config)
    check_heads(name, config)
    check_intents(name, context.num_known_intents)
    return cls(config, context)


def check_heads(name: str, config: ModelConfig) -> None:
    """Refuse a hidden size the attention heads cannot share equally, naming the flags,
    before any layer is built.

    The item encoder splits D over the global plus the local heads. Intent-aware models
    with local heads (CaFe, LOCKER-F) also run a second encoder over the intents with
    the global heads only, so D must split over those too. (CaFe with every intent
    switch off has no such encoder; the rule still holds there, which costs nothing.)
    """
    hidden, heads = getattr(config, "hidden", None), getattr(config, "heads", None)
    if hidden is None or heads is None:
        return
    local = int(getattr(config, "local_heads", 0))
    encoders = [(heads, f"--heads {heads}", "")]
    if local:
        encoders = [(heads + local, f"--heads {heads} + --local-heads {local}", "")]
        if model_class(name).needs_intents:
            encoders = [
                (heads + local, encoders[0][1], "item encoder"),
                (heads, f"--heads {heads}", "intent encoder, with global heads only"),
            ]
    for total, flags, encoder in encoders:
        if hidden % total:
            step = math.lcm(*(t for t, _, _ in encoders))
            fits = (hidden // step + 1) * step
            part = f" of {name}'s {encoder}" if encoder else f" of {name}"
            raise ConfigError(
                f"--hidden {hidden} must be divisible by the {total} attention heads "
                f"({flags}){part}; use --hidden {fits}, or change the heads."
            )


def check_intents(
    models: str | Sequence[str],
    known_intents: int,
    path: str | None = None,
    column: str | None = "",
) -> None:
    """Refuse intent-reading models on data with fewer than two known intents.

    ``path`` and ``column`` name the file and the intent column the data was read
    with, when the caller knows them; ``column=None`` with a path means no intent column
    was chosen at all.
    """
    names = [models] if isinstance(models, str) else list(models)
    needing = [m for m in names if model_class(m).needs_intents]
    if not needing or known_intents >= 2:
        return
    who = f"{', '.join(needing)} {'reads' if len(needing) == 1 else 'read'} intents"
    if path is not None and column is None:
        problem = f"{path}: no intent column is chosen, but {who}"
    elif path is None:
        problem = f"the intent column has fewer than two distinct values, but {who}"
    else:
        found = "no value for any item" if known_intents == 0 else "one value only"
        problem = (
            f"{path}: the intent column {column!r} has {found} (fewer than two "
            f"distinct values), but {who}"
        )
    raise ConfigError(
        f"{problem}. Choose an item column with several values as the intent "
        "(--intent), or train item-only models such as sasrec or pop."
    )


__all__ = [
    "REGISTRY",
    "EvalBatch",
    "ModelConfig",
    "ModelContext",
    "Recommender",
    "TrainBatch",
    "build_model",
    "check_heads",
    "check_intents",
    "make_config",
    "model_class",
]
