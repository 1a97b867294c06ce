"""Looking inside one finished run: one user's recommendations, where a run gains, and
its item embeddings in two dimensions.

Everything here is a plain function over engine objects, so the workbench's inspect,
compare and embedding views, the tests and a notebook share it:

- :func:`load_trained` rebuilds a run's data, split and model from its stored spec and
  loads the checkpoint's weights;
- :func:`inspect_user` scores one user the way the evaluator does and returns the
  history, the top-K with the parts of each score, the held-out item's rank, the
  predicted next-intent distribution and the attention of that one sequence;
- :func:`breakdown` splits per-user results by target-item frequency or history
  length (SPEC section 5: long-tail against head items);
- :func:`frequency_filter` and :func:`project` give the paper's Figure 2c/d: item
  embeddings in 2-D, coloured by intent, for the most or least frequent items.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from engine.batches import last_items
from engine.checkpoint import load_checkpoint
from engine.data.dataset import Dataset
from engine.errors import CheckpointError, DataError
from engine.evaluation import evaluate
from engine.experiment import PreparedRun, RunSpec, build_run

log = logging.getLogger(__name__)

# target seen 0 (cold), 1, 2-5, 6-20 and more than 20 times in training
FREQUENCY_EDGES = (0, 1, 2, 6, 21)
# history lengths 1-2, 3-5, 6-10, 11-20, 21-49 and 50 or more (the default cut n)
LENGTH_EDGES = (1, 3, 6, 11, 21, 50)


# ---- loading a trained run


def load_trained(
    spec: RunSpec | dict[str, Any],
    checkpoint: str | Path,
    dataset: Dataset | None = None,
    device: str | torch.device = "cpu",
) -> PreparedRun:
    """The run's data, split and model with the checkpoint's weights, in eval mode.

    ``dataset`` skips reading the data again when the caller already holds it.
    """
    spec = spec if isinstance(spec, RunSpec) else RunSpec.from_dict(spec)
    run = build_run(spec, dataset)
    saved = load_checkpoint(checkpoint, device)
    try:
        run.model.load_state_dict(saved["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(
            f"{checkpoint}: the weights do not fit a {spec.model} model of this run's "
            f"configuration ({type(exc).__name__}: {exc}). Was the data changed since "
            "the run was trained?"
        ) from exc
    run.model.to(device).eval()
    return run


def user_index(dataset: Dataset, user_id: str) -> int:
    """The dataset index of a user given by its original id (as text); a part of an
    id that only one user's id holds finds that user too."""
    wanted = str(user_id).strip()
    ids = dataset.user_ids.astype(str)
    matches = np.flatnonzero(ids == wanted)
    if len(matches) == 0 and wanted:
        matches = np.flatnonzero(np.char.find(ids.astype(np.str_), wanted) >= 0)
        if len(matches) > 1:
            shown = ", ".join(ids[matches[:5]]) + (", ..." if len(matches) > 5 else "")
            raise DataError(
                f"{len(matches)} users of {dataset.name} have {wanted!r} in their id "
                f"({shown}); type more of it."
            )
    if len(matches) == 0:
        raise DataError(
            f"There is no user {wanted!r} in {dataset.name} "
            f"({dataset.num_users} users, e.g. {', '.join(ids[:3])})."
        )
    return int(matches[0])


# ---- one user


@dataclass
class UserInspection:
    """What a trained model makes of one user's history."""

    user: int  # dataset index
    user_id: str  # original label
    which: str  # "valid", "test", or "next" for a user without held-out items
    history: np.ndarray  # (n,) items before the target, oldest first
    history_intents: np.ndarray  # (n,) intent of each history item
    read_from: int  # index into history of the first item the model reads (cut n)
    target: int  # held-out item, 0 when there is none
    # rank of the target under the run's protocol (0-based) and its candidate count,
    # exactly as the evaluator computed them; -1 when there is no target
    rank: int
    candidates: int
    full_rank: int  # rank of the target among all items, the history excluded
    # rank, item, item_id, name, intent, intent_name, item_prob, intent_prob, score
    top: pd.DataFrame
    # intent, intent_name, probability of the next intent; None when not predicted
    intent_distribution: pd.DataFrame | None
    attention: dict[str, np.ndarray] = field(default_factory=dict)  # (H, n', n')


@torch.no_grad()
def inspect_user(
    run: PreparedRun,
    user: int,
    which: str = "test",
    k: int = 10,
    exclude_history: bool = True,
) -> UserInspection:
    """Score one user from their history before the ``which`` target.

    The top-K leaves out items the user already interacted with before the target
    (the full protocol's candidates) unless ``exclude_history`` is False. A user too
    short to have held-out items is scored from the whole history (``which="next"``).
    """
    model, split, ds = run.model, run.split, run.dataset
    model.eval()
    evaluated = bool(split.test_target[user] > 0)
    which = which if evaluated else "next"
    cut = {"valid": 2, "test": 1, "next": 0}[which]

    # the history the evaluator feeds the model: everything before the target
    history = ds.items[ds.offsets[user] : ds.offsets[user + 1] - cut]
    ends = np.array([ds.offsets[user + 1] - cut])
    seq = last_items(ds.offsets, ds.items, np.array([user]), ends, model.max_len)
    batch = _eval_batch(user, seq, model.device)

    # the named parts of the score, one row each
    parts = {
        name: value[0].float().cpu() for name, value in model.explain(batch).items()
    }
    score = parts["score"]
    masked = score.clone()
    masked[0] = float("-inf")
    if exclude_history and len(history):
        masked[torch.from_numpy(np.unique(history))] = float("-inf")
    k = max(1, min(k, int(torch.isfinite(masked).sum())))
    top_items = torch.topk(masked, k).indices.numpy()
    top = _top_table(ds, parts, top_items)

    # the target's rank under the protocol, as stored, and among all items
    target = int(split.test_target[user] if which == "test" else 0)
    if which == "valid":
        target = int(split.valid_target[user])
    rank = candidates = full_rank = -1
    if target:
        result = evaluate(
            model, split, which, run.train_config.protocol, users=np.array([user])
        )
        rank = int(result.per_user["rank"].iloc[0])
        candidates = int(result.per_user["candidates"].iloc[0])
        others = masked.clone()
        others[target] = float("-inf")
        full_rank = int((others >= score[target]).sum())

    return UserInspection(
        user=user,
        user_id=str(ds.user_ids[user]),
        which=which,
        history=history.astype(np.int64),
        history_intents=ds.item_intent[history].astype(np.int64),
        read_from=max(0, len(history) - model.max_len),
        target=target,
        rank=rank,
        candidates=candidates,
        full_rank=full_rank,
        top=top,
        intent_distribution=_intent_table(ds, parts.get("intent_distribution")),
        attention=_user_attention(model, batch, min(len(history), model.max_len)),
    )


def _eval_batch(user: int, seq: torch.Tensor, device):
    from engine.models.base import EvalBatch

    return EvalBatch(torch.tensor([user], dtype=torch.long), seq).to(device)


def _top_table(ds: Dataset, parts: dict[str, torch.Tensor], items: np.ndarray):
    """The top items with each part of their score as a probability where it is
    one."""
    intents = ds.item_intent[items]
    table = pd.DataFrame(
        {
            "rank": np.arange(1, len(items) + 1),
            "item": items,
            "item_id": ds.item_ids[items].astype(str),
            "name": ds.item_names[items].astype(str)
            if ds.item_names is not None
            else "",
            "intent": intents,
            "intent_name": ds.intent_names[intents].astype(str),
        }
    )
    index = torch.from_numpy(items)
    # logits of binary cross-entropy models are probabilities through the sigmoid
    item_logit = parts.get("item_logit")
    if item_logit is not None:
        table["item_prob"] = torch.sigmoid(item_logit[index]).numpy()
    intent_logit = parts.get("intent_logit")
    distribution = parts.get("intent_distribution")
    if intent_logit is not None:
        table["intent_prob"] = torch.sigmoid(intent_logit[index]).numpy()
    elif distribution is not None:
        # (C,) over intents 1..C: each item takes its own intent's share
        table["intent_prob"] = distribution[torch.from_numpy(intents) - 1].numpy()
    table["score"] = parts["score"][index].numpy()
    return table


def _intent_table(ds: Dataset, distribution: torch.Tensor | None):
    if distribution is None:
        return None
    probs = distribution.numpy()
    intents = np.arange(1, len(probs) + 1)
    table = pd.DataFrame(
        {
            "intent": intents,
            "intent_name": ds.intent_names[intents].astype(str),
            "probability": probs,
        }
    )
    return table.sort_values("probability", ascending=False, ignore_index=True)


def _user_attention(model, batch, real: int) -> dict[str, np.ndarray]:
    """Each layer's (H, n', n') attention over the n' real positions of the input."""
    maps = model.attention_maps(batch)
    if real == 0:
        return {}
    # (1, H, L, L) -> the bottom-right (H, n', n') block: padding sits on the left
    return {
        name: weights[0, :, -real:, -real:].float().cpu().numpy()
        for name, weights in maps.items()
    }


# ---- where a run gains


def bucket_labels(edges: Sequence[int]) -> list[str]:
    """Readable labels of the buckets [e_i, e_{i+1}) and the open last one."""
    labels = []
    for low, high in zip(edges, list(edges[1:]) + [None]):
        if high is None:
            labels.append(f">{low - 1}" if low > 0 else "all")
        elif high - low == 1:
            labels.append(str(low))
        else:
            labels.append(f"{low}\u2013{high - 1}")
    return labels


def breakdown(
    per_user: pd.DataFrame,
    by: str = "target_train_freq",
    metric: str = "NDCG@5",
    edges: Sequence[int] = FREQUENCY_EDGES,
) -> pd.DataFrame:
    """Mean ``metric`` per bucket of ``by`` (e.g. how often the target was trained on).

    Returns one row per bucket: bucket (label), low, high (inclusive; -1 when open),
    users and mean. The users-weighted mean of the buckets equals the overall mean.
    Values below the first edge fall in the first bucket.
    """
    for column in (by, metric):
        if column not in per_user.columns:
            raise DataError(
                f"The per-user results have no column {column!r} "
                f"(columns: {', '.join(map(str, per_user.columns))})."
            )
    values = per_user[by].to_numpy()
    bucket = np.clip(
        np.searchsorted(np.asarray(edges), values, side="right") - 1, 0, None
    )
    labels = bucket_labels(edges)
    rows = []
    for index, label in enumerate(labels):
        chosen = per_user[metric].to_numpy()[bucket == index]
        high = edges[index + 1] - 1 if index + 1 < len(edges) else -1
        rows.append(
            {
                "bucket": label,
                "low": edges[index],
                "high": high,
                "users": int(len(chosen)),
                "mean": float(chosen.mean()) if len(chosen) else math.nan,
            }
        )
    return pd.DataFrame(rows)


# ---- item embeddings in two dimensions


def frequency_filter(
    item_intent: np.ndarray, counts: np.ndarray, mode: str = "all", share: float = 0.2
) -> np.ndarray:
    """(V+1,) mask of the items to show: all, or per intent the ``share`` most or least
    frequent in training (the paper's Figure 2c/d). Padding is never shown."""
    if mode not in ("all", "frequent", "infrequent"):
        raise ValueError(f"mode must be all, frequent or infrequent, not {mode!r}")
    keep = np.zeros(len(item_intent), dtype=bool)
    if mode == "all":
        keep[1:] = True
        return keep
    for intent in np.unique(item_intent[1:]):
        members = np.flatnonzero(item_intent == intent)
        members = members[members > 0]
        wanted = max(1, int(round(share * len(members))))
        # stable order: ties keep item order, so the choice is reproducible
        order = np.argsort(counts[members], kind="stable")
        chosen = order[-wanted:] if mode == "frequent" else order[:wanted]
        keep[members[chosen]] = True
    return keep


@dataclass
class ProjectionParams:
    """How to project: set before computing, part of the cache key."""

    method: str = "tsne"  # "tsne" or "pca"
    perplexity: float = 30.0
    iterations: int = 1000
    seed: int = 0

    def key(self) -> tuple:
        if self.method == "pca":
            return ("pca", self.seed)
        return ("tsne", self.perplexity, self.iterations, self.seed)


def project(
    embeddings: np.ndarray,
    params: ProjectionParams,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[float], None] | None = None,
) -> np.ndarray:
    """(N, D) embeddings -> (N, 2) by PCA or t-SNE; raises InterruptedError on cancel.

    t-SNE runs in a child process (``engine.tsne``), so a cancel ends it at once.
    Inputs wider than 50 dimensions are first reduced to 50 by PCA, the usual t-SNE
    practice.
    """
    from sklearn.decomposition import PCA

    from engine.tsne import tsne

    stop = should_stop or (lambda: False)
    report = progress or (lambda fraction: None)
    data = np.asarray(embeddings, dtype=np.float64)
    if len(data) < 3:
        raise DataError(f"Projecting needs at least 3 items, not {len(data)}.")
    if params.method == "pca":
        report(1.0)
        return PCA(n_components=2, random_state=params.seed).fit_transform(data)
    if params.method != "tsne":
        raise ValueError(f"method must be tsne or pca, not {params.method!r}")

    if data.shape[1] > 50:
        data = PCA(n_components=50, random_state=params.seed).fit_transform(data)
    perplexity = min(params.perplexity, (len(data) - 1) / 3)
    return tsne(data, perplexity, params.iterations, params.seed, stop, report)
