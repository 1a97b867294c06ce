"""Turning a split into tensors: padded histories, training batches with sampled
negatives.

Everything random here draws from one ``torch.Generator`` owned by the trainer, so that
a resumed run draws exactly what an uninterrupted one would have.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from engine.data.split import Split
from engine.models.base import EvalBatch, TrainBatch

# resampling rounds before a negative that collides with the history is accepted (only
# possible when a user has touched nearly every item or intent)
_MAX_RESAMPLE = 50


def last_items(
    offsets: np.ndarray, items: np.ndarray, rows: np.ndarray, ends, length: int
):
    """(len(rows), length) the last ``length`` items before ``ends``, left-padded with
    0."""
    starts = offsets[rows]
    index = ends[:, None] - length + np.arange(length)[None, :]  # (R, length)
    valid = index >= starts[:, None]
    out = np.where(valid, items[np.clip(index, 0, max(len(items) - 1, 0))], 0)
    return torch.from_numpy(out.astype(np.int64))


def eval_inputs(
    split: Split, which: str, max_len: int, users: np.ndarray | None = None
):
    """Histories and targets of evaluated users: validation reads the training items,
    test reads them plus the validation item.

    Returns ``(users (E,), seqs (E, L), targets (E,))``.
    """
    if which not in ("valid", "test"):
        raise ValueError(f"which must be 'valid' or 'test', not {which!r}")
    users = split.eval_users if users is None else np.asarray(users)
    ds = split.dataset
    # a full sequence is train + valid + test, so the test history ends one before the
    # end
    ends = ds.offsets[users + 1] - (2 if which == "valid" else 1)
    seqs = last_items(ds.offsets, ds.items, users, ends, max_len)
    target = split.valid_target if which == "valid" else split.test_target
    return users, seqs, target[users]


def history_items(split: Split, which: str, users: np.ndarray) -> list[np.ndarray]:
    """Each user's items before the target (excluded by the full-ranking protocol)."""
    ds = split.dataset
    cut = 2 if which == "valid" else 1
    return [ds.items[ds.offsets[u] : ds.offsets[u + 1] - cut] for u in users]


class TrainSampler:
    """One training sequence per user (the last L+1 training items) and fresh negatives.

    Users with fewer than two training items have no (input, target) pair and are
    skipped.
    """

    def __init__(self, split: Split, max_len: int):
        ds = split.dataset
        lengths = np.diff(split.train_offsets)
        users = np.flatnonzero(lengths >= 2)
        ends = split.train_offsets[users + 1]
        self.users = torch.from_numpy(users.astype(np.int64))
        self.seqs = last_items(
            split.train_offsets, split.train_items, users, ends, max_len + 1
        )
        self.num_items = ds.num_items
        self.num_intents = ds.num_intents
        self.item_intent = torch.from_numpy(ds.item_intent)

        # (user, item) and (user, intent) pairs of the training split, as sorted int64
        # keys
        owner = np.repeat(np.arange(ds.num_users), lengths)
        items = split.train_items
        self.item_keys = torch.from_numpy(np.unique(owner * (ds.num_items + 1) + items))
        intent_keys = np.unique(owner * (ds.num_intents + 1) + ds.item_intent[items])
        self.intent_keys = torch.from_numpy(intent_keys)
        touched = np.bincount(
            intent_keys // (ds.num_intents + 1), minlength=ds.num_users
        )
        self.touched_all = torch.from_numpy(touched >= ds.num_intents)

    def __len__(self) -> int:
        return len(self.users)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def order(self, generator: torch.Generator) -> Tensor:
        return torch.randperm(len(self), generator=generator)

    def batch(self, rows: Tensor, generator: torch.Generator) -> TrainBatch:
        users = self.users[rows]  # (B,)
        seq = self.seqs[rows]  # (B, L+1)
        targets = seq[:, 1:]  # (B, L)
        neg = self._negative_items(users, targets.shape, generator)
        neg_intents = self._negative_intents(
            users, self.item_intent[targets], generator
        )
        padding = targets == 0
        return TrainBatch(
            users, seq, neg.masked_fill(padding, 0), neg_intents.masked_fill(padding, 0)
        )

    def _negative_items(self, users: Tensor, shape, generator) -> Tensor:
        """Uniform items not in the user's training sequence."""
        V1 = self.num_items + 1
        owner = users[:, None].expand(shape)  # (B, L)

        def colliding(drawn: Tensor, where: Tensor | None = None) -> Tensor:
            who = owner if where is None else owner[where]
            return contains(self.item_keys, who * V1 + drawn)

        return _draw_until_clear(V1, shape, colliding, generator)

    def _negative_intents(self, users: Tensor, positive: Tensor, generator) -> Tensor:
        """Uniform intents outside the user's intent sequence; any intent other than the
        positive one when the user has touched every intent."""
        C1 = self.num_intents + 1
        owner = users[:, None].expand(positive.shape)  # (B, L)
        restricted = ~self.touched_all[owner]  # (B, L)

        def colliding(drawn: Tensor, where: Tensor | None = None) -> Tensor:
            who, limit, pos = owner, restricted, positive
            if where is not None:
                who, limit, pos = owner[where], restricted[where], positive[where]
            seen = contains(self.intent_keys, who * C1 + drawn)
            return (seen & limit) | (drawn == pos)

        return _draw_until_clear(C1, positive.shape, colliding, generator)


def _draw_until_clear(high: int, shape, colliding, generator) -> Tensor:
    """Uniform ids in [1, high), redrawing those that collide (a history item, say)
    for up to ``_MAX_RESAMPLE`` rounds.

    ``colliding(drawn, where)`` tests the ids ``drawn`` at the positions ``where``
    (everywhere when None). Only redrawn positions are tested again, and they are
    redrawn in the same order as a whole-tensor test would, so the stream of random
    numbers does not depend on how collisions are found.
    """
    ids = torch.randint(1, high, shape, generator=generator)
    bad = colliding(ids)
    for _ in range(_MAX_RESAMPLE):
        if not bad.any():
            break
        where = bad.clone()
        redraw = torch.randint(1, high, (int(where.sum()),), generator=generator)
        ids[where] = redraw
        bad[where] = colliding(redraw, where)
    return ids


def contains(sorted_keys: Tensor, values: Tensor) -> Tensor:
    """Whether each value occurs in ``sorted_keys`` (ascending, unique).

    A binary search per value: ``torch.isin`` sorts the keys again on every call, and
    with hundreds of thousands of (user, item) keys that took 40% of a training step.
    """
    if len(sorted_keys) == 0:
        return torch.zeros_like(values, dtype=torch.bool)
    index = torch.searchsorted(sorted_keys, values).clamp_(max=len(sorted_keys) - 1)
    return sorted_keys[index] == values


def eval_batches(users: np.ndarray, seqs: Tensor, batch_size: int):
    """Yield ``(slice, EvalBatch)`` over evaluated users in order."""
    for start in range(0, len(users), batch_size):
        part = slice(start, start + batch_size)
        yield (
            part,
            EvalBatch(torch.from_numpy(users[part].astype(np.int64)), seqs[part]),
        )
