"""The contract every model satisfies, so one trainer, one evaluator and one GUI serve
them all.

A model is an ``nn.Module`` built from a typed config and a :class:`ModelContext`:

- ``forward(batch)`` returns the training losses as a dict whose ``"loss"`` entry is
  optimised (going through ``forward`` lets DistributedDataParallel wrap any model);
- ``score_all(batch)`` scores every item, ``(B, V+1)``, column 0 (padding) is ``-inf``;
- ``score_candidates(batch, candidates)`` scores given items, ``(B, N)``;
- ``attention_maps(batch)`` returns named ``(B, H, L, L)`` attention weights, possibly
  none;
- ``explain(batch)`` returns the named parts of the score (item and intent
  probabilities).

Tensors arrive on the model's device. Models do no I/O and use no NumPy.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from engine.errors import ConfigError


def param(default: Any, help: str, **limits: Any) -> Any:
    """A config field with the documentation and bounds the forms and flags are built
    from."""
    return field(default=default, metadata={"help": help, **limits})


@dataclass
class ModelConfig:
    """Base of all model configs: typed fields, unknown keys refused, bounds checked."""

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> ModelConfig:
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"{cls.__name__} has no setting {', '.join(unknown)}; "
                f"its settings are: {', '.join(known)}."
            )
        config = cls(**{k: _coerce(known[k], v) for k, v in values.items()})
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> None:
        for f in fields(self):
            check_bounds(type(self).__name__, f, getattr(self, f.name))


def check_bounds(owner: str, f: dataclasses.Field, value: Any) -> None:
    """Raise a ConfigError when a value lies outside the field's declared bounds."""
    meta = f.metadata
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(
            f"{owner}.{f.name} must be one of {', '.join(map(str, meta['choices']))}, "
            f"not {value!r}."
        )
    if "min" in meta and value < meta["min"]:
        raise ConfigError(
            f"{owner}.{f.name} must be at least {meta['min']}, not {value!r}."
        )
    if "max" in meta and value > meta["max"]:
        raise ConfigError(
            f"{owner}.{f.name} must be at most {meta['max']}, not {value!r}."
        )


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """Accept the JSON and command-line spellings of a field's type; reject anything
    else."""
    kind = (
        f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    )
    try:
        if kind == "bool":
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                    raise ValueError(value)
                return lowered in ("true", "1", "yes", "on")
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "str":
            return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{f.name} must be a {kind}, not {value!r}.") from exc
    return value


@dataclass
class ModelContext:
    """What a model may know of the data: sizes, each item's intent, training counts."""

    num_items: int  # V; item ids run 1..V, 0 is padding
    num_intents: int  # C; intent ids run 1..C, 0 is padding
    num_users: int
    item_intent: Tensor  # (V+1,) intent id of each item
    item_counts: Tensor  # (V+1,) interactions of each item in the training split
    num_known_intents: int = 0  # intents other than <unknown>


@dataclass
class TrainBatch:
    """One training step's sequences, all left-padded with 0."""

    users: Tensor  # (B,) user index
    seq: Tensor  # (B, L+1) the last L+1 training items of each user
    neg: Tensor  # (B, L) one negative item per target seq[:, 1:], 0 where it is padding
    neg_intents: Tensor  # (B, L) one negative intent per target, 0 where it is padding

    def tensors(self) -> list[Tensor]:
        # not dataclasses.astuple, which deep-copies every tensor
        return [getattr(self, f.name) for f in fields(self)]

    def to(self, device: torch.device) -> TrainBatch:
        return TrainBatch(*(t.to(device, non_blocking=True) for t in self.tensors()))

    def rows(self, index: Tensor) -> TrainBatch:
        """The batch of the sequences at ``index`` (a data-parallel rank's share)."""
        return TrainBatch(*(t[index] for t in self.tensors()))


@dataclass
class EvalBatch:
    """The histories to score from: the most recent item is last, padding (0) on the
    left."""

    users: Tensor  # (B,)
    seq: Tensor  # (B, L)

    def to(self, device: torch.device) -> EvalBatch:
        return EvalBatch(self.users.to(device), self.seq.to(device))


class Recommender(nn.Module):
    """Base class of all models; subclasses set the class attributes and the methods."""

    name: ClassVar[str] = ""
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    # True when the model reads intents and so needs at least two of them
    needs_intents: ClassVar[bool] = False
    # False for count-based models: the trainer evaluates them without a training loop
    trainable: ClassVar[bool] = True
    # "causal" models read left to right; "bidirectional" ones see both sides
    direction: ClassVar[str] = "causal"

    def __init__(self, config: ModelConfig, context: ModelContext):
        super().__init__()
        self.config = config
        self.context = context

    @property
    def max_len(self) -> int:
        return int(getattr(self.config, "max_len", 50))

    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    def forward(self, batch: TrainBatch) -> dict[str, Tensor]:
        raise NotImplementedError(
            f"{type(self).__name__} is not trained by gradient steps"
        )

    def score_all(self, batch: EvalBatch) -> Tensor:
        raise NotImplementedError

    def score_candidates(self, batch: EvalBatch, candidates: Tensor) -> Tensor:
        # (B, V+1) gathered at (B, N) -> (B, N)
        return self.score_all(batch).gather(1, candidates)

    def attention_maps(self, batch: EvalBatch) -> dict[str, Tensor]:
        return {}

    def explain(self, batch: EvalBatch) -> dict[str, Tensor]:
        """Named (B, V+1) parts of the score; the joint ``score`` is always present."""
        return {"score": self.score_all(batch)}

    def item_embeddings(self) -> Tensor | None:
        """(V+1, D) item embeddings, for the embedding view; None for count models."""
        return None


def mask_padding_column(scores: Tensor) -> Tensor:
    """Padding (item 0) is never recommended: its score becomes -inf."""
    scores = scores.clone()
    scores[:, 0] = float("-inf")
    return scores
