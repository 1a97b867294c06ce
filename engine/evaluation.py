"""Ranking metrics and the two evaluation protocols (SPEC §5).

- ``sampled``: the true item and the user's 100 fixed popularity-sampled negatives; MRR
  over all 101 candidates (the CaFe paper's protocol).
- ``full``: the true item against every item, the user's earlier items excluded.

Ranks are 0-based and ties count against the true item, so a constant model scores zero.
Metrics are means over users; per-user results are kept for breakdowns.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from engine.batches import eval_batches, eval_inputs, history_items
from engine.data.split import Split
from engine.models.base import Recommender

log = logging.getLogger(__name__)

PROTOCOLS = ("sampled", "full")


def metric_names(ks: Sequence[int]) -> list[str]:
    return [f"{m}@{k}" for k in ks for m in ("HR", "NDCG")] + ["MRR"]


@dataclass
class EvalResult:
    """Mean metrics and the per-user table they were averaged from."""

    which: str  # "valid" or "test"
    protocol: str
    metrics: dict[str, float]
    # one row per evaluated user: user, target, rank, candidates, history_len,
    # target_train_freq and every metric
    per_user: pd.DataFrame


def ranks_against(true_scores: Tensor, scores: Tensor, valid: Tensor) -> Tensor:
    """0-based rank of the true item among ``scores`` (B, N) that excludes it.

    Ties count against the true item; a NaN true score ranks last.
    """
    above = ((scores > true_scores[:, None]) & valid).sum(1)
    ties = ((scores == true_scores[:, None]) & valid).sum(1)
    rank = above + ties
    return torch.where(torch.isnan(true_scores), valid.sum(1), rank)


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-user HR@K, NDCG@K (one relevant item, so IDCG = 1) and MRR from 0-based
    ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks < k
        out[f"HR@{k}"] = hit.astype(np.float64)
        out[f"NDCG@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)
    out["MRR"] = 1.0 / (ranks + 1.0)
    return out


@torch.no_grad()
def evaluate(
    model: Recommender,
    split: Split,
    which: str = "valid",
    protocol: str = "sampled",
    ks: Sequence[int] = (5, 10),
    batch_size: int = 256,
    users: np.ndarray | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EvalResult:
    """Rank each evaluated user's held-out item under ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, not {protocol!r}")
    was_training = model.training
    model.eval()
    device = model.device
    users, seqs, targets = eval_inputs(split, which, model.max_len, users)
    row_of = np.full(split.dataset.num_users, -1, dtype=np.int64)
    row_of[split.eval_users] = np.arange(len(split.eval_users))
    ranks = np.zeros(len(users), dtype=np.int64)
    counts = np.zeros(len(users), dtype=np.int64)
    try:
        for part, batch in eval_batches(users, seqs, batch_size):
            if should_stop is not None and should_stop():
                raise InterruptedError("evaluation cancelled")
            batch = batch.to(device)
            target = torch.from_numpy(targets[part]).to(device)
            if protocol == "sampled":
                negatives = split.negatives[row_of[users[part]]]
                rank, count = _rank_sampled(model, batch, target, negatives)
            else:
                history = history_items(split, which, users[part])
                rank, count = _rank_full(model, batch, target, history)
            ranks[part], counts[part] = rank, count
    finally:
        model.train(was_training)
    return _result(split, which, protocol, ks, users, targets, ranks, counts, seqs)


def _rank_sampled(model, batch, target: Tensor, negatives: np.ndarray):
    negatives = torch.from_numpy(negatives).to(target.device)  # (B, N)
    candidates = torch.cat([target[:, None], negatives], dim=1)  # (B, 1+N)
    scores = model.score_candidates(batch, candidates).float()
    scores = torch.nan_to_num(scores, nan=float("-inf"))
    true = scores[:, 0]
    valid = negatives > 0
    rank = ranks_against(true, scores[:, 1:], valid)
    return rank.cpu().numpy(), (valid.sum(1) + 1).cpu().numpy()


def _rank_full(model, batch, target: Tensor, history: list[np.ndarray]):
    scores = model.score_all(batch).float()  # (B, V+1)
    B, V1 = scores.shape
    true = scores.gather(1, target[:, None]).squeeze(1)
    valid = torch.ones(B, V1, dtype=torch.bool, device=scores.device)
    valid[:, 0] = False
    # earlier items of the user are not candidates; the target itself is compared apart
    rows = np.repeat(np.arange(B), [len(h) for h in history])
    cols = np.concatenate(history) if len(rows) else np.zeros(0, dtype=np.int64)
    valid[torch.from_numpy(rows), torch.from_numpy(cols)] = False
    valid[torch.arange(B), target] = False
    rank = ranks_against(true, torch.nan_to_num(scores, nan=float("-inf")), valid)
    return rank.cpu().numpy(), (valid.sum(1) + 1).cpu().numpy()


def _result(
    split, which, protocol, ks, users, targets, ranks, counts, seqs
) -> EvalResult:
    per_metric = metrics_from_ranks(ranks, ks)
    train_counts = split.train_counts()
    per_user = pd.DataFrame(
        {
            "user": users,
            "target": targets,
            "rank": ranks,
            "candidates": counts,
            "history_len": (seqs > 0).sum(1).numpy() if len(users) else [],
            "target_train_freq": train_counts[targets],
            **per_metric,
        }
    )
    metrics = {
        name: float(values.mean()) if len(values) else 0.0
        for name, values in per_metric.items()
    }
    return EvalResult(
        which, protocol, {m: metrics[m] for m in metric_names(ks)}, per_user
    )


@torch.no_grad()
def average_attention(
    model: Recommender,
    split: Split,
    which: str = "test",
    max_users: int = 2000,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """Attention maps averaged over users, (H, L, L) per layer, as in the paper's Figure
    2.

    Entry (i, j) averages only over users whose positions i and j both hold real items,
    so the many short histories of sparse data do not wash the map out with padding.
    """
    was_training = model.training
    model.eval()
    users = split.eval_users[:max_users]
    users, seqs, _ = eval_inputs(split, which, model.max_len, users)
    sums: dict[str, Tensor] = {}
    count = None
    try:
        for _, batch in eval_batches(users, seqs, batch_size):
            batch = batch.to(model.device)
            maps = model.attention_maps(batch)
            if not maps:
                return {}
            real = (batch.seq > 0).float()  # (B, L)
            pair = real[:, :, None] * real[:, None, :]  # (B, L, L)
            count = pair.sum(0) if count is None else count + pair.sum(0)
            for name, weights in maps.items():
                # (B, H, L, L) masked to real pairs, summed over B -> (H, L, L)
                total = (weights * pair[:, None]).sum(0)
                sums[name] = total if name not in sums else sums[name] + total
    finally:
        model.train(was_training)
    if count is None:
        return {}
    denominator = count.clamp(min=1.0)[None]
    return {name: (total / denominator).cpu().numpy() for name, total in sums.items()}
