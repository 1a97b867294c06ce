"""The training loop shared by every model (SPEC §4).

:class:`Trainer` is a generator of events: a batch done, an epoch done, a validation,
the end. The command line prints them, the worker writes them to the run store, tests
read them. It checks ``should_stop`` between batches, and between the batches of each
validation and of the final evaluation; on a stop it saves a checkpoint that resumes
mid-epoch, or redoes the interrupted validation or final evaluation.

The test set never chooses anything: the best epoch is picked on validation and only its
checkpoint is evaluated on test.

Started by torchrun, the same trainer trains data-parallel across the processes
(:mod:`engine.distributed`); alone, it trains as one process.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine import distributed
from engine.batches import TrainSampler
from engine.checkpoint import load_checkpoint, save_checkpoint
from engine.data.split import Split
from engine.device import resolve_device
from engine.errors import ConfigError, DivergedError
from engine.evaluation import PROTOCOLS, EvalResult, evaluate, metric_names
from engine.models.base import Recommender, check_bounds, param

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything about how a model is trained and evaluated, stored with the run."""

    epochs: int = param(
        200, "Most epochs to train (one sequence per user each).", min=0
    )
    batch_size: int = param(64, "Training sequences per step.", min=1)
    lr: float = param(1e-3, "Adam learning rate.", min=0.0)
    beta1: float = param(0.9, "Adam beta1.", min=0.0, max=1.0)
    beta2: float = param(0.98, "Adam beta2.", min=0.0, max=1.0)
    weight_decay: float = param(0.0, "Adam L2 weight decay.", min=0.0)
    clip_norm: float = param(5.0, "Gradient-norm clip; 0 turns clipping off.", min=0.0)
    eval_every: int = param(1, "Validate every this many epochs.", min=1)
    patience: int = param(
        20, "Stop after this many validations without improvement.", min=1
    )
    min_epochs: int = param(
        30,
        "Never stop before this epoch: sparse data stays flat for 10-30 epochs.",
        min=0,
    )
    metric: str = param("NDCG@5", "Validation metric that picks the best epoch.")
    protocol: str = param("sampled", "Evaluation protocol.", choices=PROTOCOLS)
    ks: str = param("5,10", "Cut-offs K of HR@K and NDCG@K, comma-separated.")
    num_negatives: int = param(
        100, "Sampled negatives per user (sampled protocol).", min=1
    )
    seed: int = param(0, "Seed of initialisation, sampling and evaluation negatives.")
    device: str = param("auto", "auto, cpu, cuda, cuda:N or mps.")
    eval_batch_size: int = param(256, "Users per evaluation batch.", min=1)
    also_evaluate: str = param(
        "",
        "Also evaluate the best checkpoint under this protocol at the end (reported "
        "beside, never used to choose).",
        choices=("", *PROTOCOLS),
    )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> TrainConfig:
        values = dict(values or {})
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(
                f"Unknown training setting {', '.join(unknown)}; "
                f"known: {', '.join(known)}."
            )
        if isinstance(values.get("ks"), list | tuple):
            values["ks"] = ",".join(str(k) for k in values["ks"])
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def cutoffs(self) -> tuple[int, ...]:
        return tuple(int(k) for k in str(self.ks).split(",") if k.strip())

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            check_bounds("TrainConfig", f, getattr(self, f.name))
        try:
            cutoffs = self.cutoffs
        except ValueError as exc:
            raise ConfigError(
                f"ks must be integers separated by commas, not {self.ks!r}."
            ) from exc
        if not cutoffs or min(cutoffs) < 1:
            raise ConfigError(f"ks must list positive cut-offs, not {self.ks!r}.")
        if self.metric not in metric_names(cutoffs):
            raise ConfigError(
                f"metric {self.metric!r} is not computed; choose one of "
                f"{', '.join(metric_names(cutoffs))}."
            )


# ---- events
# -------------------------------------------------------------------------------


@dataclass
class Started:
    device: str
    start_epoch: int
    epochs: int
    batches_per_epoch: int
    parameters: int


@dataclass
class BatchDone:
    epoch: int  # 1-based epoch being trained
    batch: int  # batches done in this epoch
    batches: int
    loss: float


@dataclass
class EpochDone:
    epoch: int
    losses: dict[str, float]  # mean of each loss term over the epoch's batches
    seconds: float


@dataclass
class Validated:
    epoch: int
    metrics: dict[str, float]
    improved: bool
    best_epoch: int
    best_value: float
    seconds: float


@dataclass
class TrainResult:
    best_epoch: int
    epochs_trained: int
    stop_reason: str  # "patience", "epochs", "cancelled", "not trainable"
    seconds: float
    device: str
    processes: int = 1  # data-parallel processes that trained it (torchrun)
    valid: EvalResult | None = None
    test: EvalResult | None = None
    # the best checkpoint under ``also_evaluate``: {"valid": ..., "test": ...}
    extra: dict[str, EvalResult] = field(default_factory=dict)


@dataclass
class Finished:
    result: TrainResult


Event = Started | BatchDone | EpochDone | Validated | Finished


# ---- the loop
# -----------------------------------------------------------------------------


@dataclass
class _State:
    """What a checkpoint must hold, beyond model and optimizer, to resume exactly."""

    epoch: int = 0  # completed epochs
    batch: int = 0  # batches completed in the current (incomplete) epoch
    order: torch.Tensor | None = None  # this epoch's user order, when mid-epoch
    loss_sums: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    best_value: float = -math.inf
    bad_evals: int = 0
    elapsed: float = 0.0
    # the completed epoch's validation is due (a stop interrupted it; resume redoes it)
    unvalidated: bool = False
    # why training ended ("epochs", "patience") once only the final evaluation is left
    ended: str = ""


class Trainer:
    """Train ``model`` on ``split``; iterate :meth:`run` for events.

    ``checkpoint_dir`` receives ``last.pt`` (resumable state) after every epoch and on a
    stop, and ``best.pt`` (model weights) at every improvement. Without it the best
    weights are kept in memory. ``on_checkpoint(kind, path)`` ("last" or "best") is
    called after each file is written, e.g. to record it.
    """

    def __init__(
        self,
        model: Recommender,
        split: Split,
        config: TrainConfig,
        checkpoint_dir: str | Path | None = None,
        should_stop: Callable[[], bool] | None = None,
        on_checkpoint: Callable[[str, Path], None] | None = None,
    ):
        self.model = model
        self.split = split
        self.config = config
        self.on_checkpoint = on_checkpoint or (lambda _kind, _path: None)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
        self.should_stop = should_stop or (lambda: False)
        self.place = distributed.place()
        self.device = resolve_device(config.device)
        if self.place.distributed and self.device.type == "cuda":
            # one GPU per process: torchrun's local rank picks it
            self.device = torch.device("cuda", self.place.local_rank)
        self.model.to(self.device)
        self.state = _State()
        self._best_weights: dict[str, torch.Tensor] | None = None
        self.generator = torch.Generator().manual_seed(config.seed)
        self.optimizer = None
        if model.trainable:
            # the fused kernel updated the 2M-parameter item table 4x faster on the CPU
            fused = self.device.type in ("cpu", "cuda")
            self.optimizer = torch.optim.Adam(
                model.parameters(),
                lr=config.lr,
                betas=(config.beta1, config.beta2),
                weight_decay=config.weight_decay,
                fused=fused or None,
            )
        self.ddp = self._wrap_data_parallel() if model.trainable else None

    def _wrap_data_parallel(self) -> nn.Module | None:
        """DistributedDataParallel around the model when torchrun started this run."""
        if not self.place.distributed:
            return None
        from torch.nn.parallel import DistributedDataParallel

        self._offset_global_rng()
        return DistributedDataParallel(
            self.model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            # switched-off parts (CaFe's ablations) leave parameters without gradients
            find_unused_parameters=True,
            # the models' buffers are constants (the item -> intent map)
            broadcast_buffers=False,
        )

    def _offset_global_rng(self) -> None:
        """Dropout and masking draw from torch's global generator: another stream on
        every rank but the first, so the ranks do not drop the same units of
        different sequences. (Rank 0 keeps the single-process stream.)"""
        if self.place.distributed and not self.place.is_main:
            where = (
                self.config.seed,
                self.place.rank,
                self.state.epoch,
                self.state.batch,
            )
            torch.manual_seed(hash(where) % 2**63)

    # -- resuming

    def resume(self) -> bool:
        """Load ``last.pt`` from the checkpoint folder; False when there is none."""
        if (
            self.checkpoint_dir is None
            or not (self.checkpoint_dir / "last.pt").exists()
        ):
            return False
        saved = load_checkpoint(self.checkpoint_dir / "last.pt", self.device)
        self.model.load_state_dict(saved["model"])
        if self.optimizer is not None and saved.get("optimizer"):
            self.optimizer.load_state_dict(saved["optimizer"])
        self.generator.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if torch.cuda.is_available() and saved.get("cuda_rng"):
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        state = saved["state"]
        self.state = _State(**{**state, "order": saved.get("order")})
        # the checkpoint holds rank 0's stream
        self._offset_global_rng()
        log.info("resumed at epoch %d batch %d", self.state.epoch, self.state.batch)
        return True

    def _save_last(self) -> None:
        if self.checkpoint_dir is None or not self.place.is_main:
            return
        state = dataclasses.asdict(self.state)
        order = state.pop("order")
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else {},
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all()
            if torch.cuda.is_available()
            else [],
            "state": state,
            "order": order,
        }
        save_checkpoint(payload, self.checkpoint_dir / "last.pt")
        self.on_checkpoint("last", self.checkpoint_dir / "last.pt")

    def _save_best(self) -> None:
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._best_weights = weights
        if self.checkpoint_dir is not None and self.place.is_main:
            save_checkpoint({"model": weights}, self.checkpoint_dir / "best.pt")
            self.on_checkpoint("best", self.checkpoint_dir / "best.pt")

    def _load_best(self) -> None:
        if self._best_weights is None and self.checkpoint_dir is not None:
            path = self.checkpoint_dir / "best.pt"
            if path.exists():
                self._best_weights = load_checkpoint(path, self.device)["model"]
        if self._best_weights is not None:
            self.model.load_state_dict(self._best_weights)

    # -- the run

    def run(self) -> Iterator[Event]:
        started = time.perf_counter() - self.state.elapsed
        sampler = TrainSampler(self.split, self.model.max_len)
        batches = sampler.num_batches(self.config.batch_size)
        parameters = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        yield Started(
            str(self.device), self.state.epoch, self.config.epochs, batches, parameters
        )

        if not self.model.trainable:
            yield Finished(self._finish("not trainable", started))
            return
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

        while not self.state.ended:
            if not self.state.unvalidated:
                if self.state.epoch >= self.config.epochs:
                    self.state.ended = "epochs"
                    break
                epoch = self.state.epoch + 1
                epoch_start = time.perf_counter()
                cancelled = yield from self._train_epoch(sampler, epoch, batches)
                if cancelled:
                    yield Finished(self._cancel(started))
                    return
                done = self._end_epoch(epoch, batches, epoch_start)
                yield done
                if not all(math.isfinite(v) for v in done.losses.values()):
                    raise DivergedError(
                        f"the training loss became {done.losses} at epoch {epoch}: "
                        "training diverged. Lower the learning rate (--lr) or clip "
                        "gradients harder (a smaller positive --clip-norm)."
                    )
                self.state.unvalidated = (
                    epoch % self.config.eval_every == 0 or epoch == self.config.epochs
                )

            # a stop during validation leaves it due, for resume to do again
            if self.state.unvalidated:
                try:
                    event = self._validate(self.state.epoch)
                except InterruptedError:
                    yield Finished(self._cancel(started))
                    return
                self.state.unvalidated = False
                yield event
                if self._patience_exhausted(self.state.epoch):
                    self.state.ended = "patience"
            self.state.elapsed = time.perf_counter() - started
            self._save_last()

        # last.pt already holds the last epoch; a stop here leaves it for resume,
        # which goes straight to this final evaluation
        try:
            result = self._finish(self.state.ended, started)
        except InterruptedError:
            result = self._finish("cancelled", started, evaluate_test=False)
        yield Finished(result)

    def _end_epoch(self, epoch: int, batches: int, epoch_start: float) -> EpochDone:
        """Close a fully trained epoch: the mean of each loss term over its batches."""
        losses = {k: v / batches for k, v in self.state.loss_sums.items()}
        self.state.epoch, self.state.batch, self.state.order = epoch, 0, None
        self.state.loss_sums = {}
        return EpochDone(epoch, losses, time.perf_counter() - epoch_start)

    def _cancel(self, started: float) -> TrainResult:
        """Save what a resume needs and end without the final evaluation."""
        self.state.elapsed = time.perf_counter() - started
        self._save_last()
        return self._finish("cancelled", started, evaluate_test=False)

    def _stop_requested(self) -> bool:
        """The stop check, agreed by every rank so that all of them stop together."""
        return distributed.any_rank(self.should_stop(), self.device)

    def _train_epoch(self, sampler: TrainSampler, epoch: int, batches: int):
        """Train the remaining batches of an epoch; return True when stopped early."""
        self.model.train()
        if self.state.order is None:
            self.state.order = sampler.order(self.generator)
        size = self.config.batch_size
        for index in range(self.state.batch, batches):
            if self._stop_requested():
                return True
            rows = self.state.order[index * size : (index + 1) * size]
            # every rank draws the whole batch, keeping the generator in step, and
            # trains its share; a last batch too short to share is left out
            batch = sampler.batch(rows, self.generator)
            if self.place.distributed:
                if len(rows) < self.place.world:
                    self.state.batch = index + 1
                    continue
                batch = batch.rows(
                    distributed.share(torch.arange(len(rows)), self.place)
                )
            losses = self._step(batch.to(self.device))
            for name, value in losses.items():
                self.state.loss_sums[name] = self.state.loss_sums.get(name, 0.0) + value
            self.state.batch = index + 1
            yield BatchDone(epoch, index + 1, batches, losses["loss"])
        return False

    def _step(self, batch) -> dict[str, float]:
        self.optimizer.zero_grad(set_to_none=True)
        losses = (self.ddp if self.ddp is not None else self.model)(batch)
        losses["loss"].backward()
        if self.config.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        self.optimizer.step()
        return {name: float(value.detach()) for name, value in losses.items()}

    def _validate(self, epoch: int) -> Validated:
        began = time.perf_counter()
        result = self._evaluate("valid")
        value = result.metrics[self.config.metric]
        improved = value > self.state.best_value
        if improved:
            self.state.best_epoch, self.state.best_value = epoch, value
            self.state.bad_evals = 0
            self._save_best()
        else:
            self.state.bad_evals += 1
        log.info(
            "epoch %d %s %.4f (best %.4f at %d)",
            epoch,
            self.config.metric,
            value,
            self.state.best_value,
            self.state.best_epoch,
        )
        return Validated(
            epoch,
            result.metrics,
            improved,
            self.state.best_epoch,
            self.state.best_value,
            time.perf_counter() - began,
        )

    def _patience_exhausted(self, epoch: int) -> bool:
        return (
            self.state.bad_evals >= self.config.patience
            and epoch >= self.config.min_epochs
        )

    def _evaluate(self, which: str, protocol: str | None = None) -> EvalResult:
        return evaluate(
            self.model,
            self.split,
            which,
            protocol or self.config.protocol,
            self.config.cutoffs,
            self.config.eval_batch_size,
            should_stop=self._stop_requested,
        )

    def _finish(
        self, reason: str, started: float, evaluate_test: bool = True
    ) -> TrainResult:
        valid = test = None
        extra = {}
        if evaluate_test:
            self._load_best()
            valid = self._evaluate("valid")
            test = self._evaluate("test")
            if self.config.also_evaluate:
                extra = {
                    which: self._evaluate(which, self.config.also_evaluate)
                    for which in ("valid", "test")
                }
        return TrainResult(
            best_epoch=self.state.best_epoch,
            epochs_trained=self.state.epoch,
            stop_reason=reason,
            seconds=time.perf_counter() - started,
            device=str(self.device),
            processes=self.place.world,
            valid=valid,
            test=test,
            extra=extra,
        )


def seed_everything(seed: int) -> None:
    """Seed the global generators that model initialisation and dropout draw from."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
