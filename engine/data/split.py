"""Leave-last-2-out split and the fixed evaluation negatives (SPEC §2, §5).

For each user with at least three interactions the last item is the test target, the one
before it the validation target, and the rest is training. Shorter users train only. The
100 popularity-sampled negatives of each evaluated user are drawn once from a generator
seeded by the dataset hash and the run seed, and are shared by validation and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.dataset import Dataset


@dataclass
class Split:
    """Training sequences and held-out targets; users are indexed as in the dataset."""

    dataset: Dataset
    seed: int
    train_offsets: np.ndarray  # (U+1,) CSR offsets into train_items
    train_items: np.ndarray  # (T,) training items, by user then time
    valid_target: np.ndarray  # (U,) validation item, 0 for train-only users
    test_target: np.ndarray  # (U,) test item, 0 for train-only users
    eval_users: np.ndarray  # (E,) users with a validation and a test item
    negatives: np.ndarray  # (E, N) sampled negatives of each evaluated user, 0 = none

    def train_sequence(self, user: int) -> np.ndarray:
        return self.train_items[self.train_offsets[user] : self.train_offsets[user + 1]]

    def train_counts(self) -> np.ndarray:
        """(V+1,) how often each item occurs in training; index 0 stays 0."""
        return np.bincount(self.train_items, minlength=self.dataset.num_items + 1)


def leave_last_two_out(
    dataset: Dataset, seed: int = 0, num_negatives: int = 100
) -> Split:
    """Split every user's sequence and draw the evaluation negatives."""
    lengths = dataset.lengths()
    evaluated = lengths >= 3
    held_out = np.where(evaluated, 2, 0)

    # training part: everything but the last two items of evaluated users
    train_lengths = lengths - held_out
    train_offsets = np.concatenate([[0], np.cumsum(train_lengths)]).astype(np.int64)
    starts = dataset.offsets[:-1]
    keep = np.repeat(np.arange(len(lengths)), train_lengths)
    positions = np.arange(train_offsets[-1]) - train_offsets[keep] + starts[keep]
    train_items = dataset.items[positions]

    # targets: the last item is test, the one before it validation
    ends = dataset.offsets[1:]
    valid_target = np.where(evaluated, dataset.items[np.maximum(ends - 2, 0)], 0)
    test_target = np.where(evaluated, dataset.items[np.maximum(ends - 1, 0)], 0)
    eval_users = np.flatnonzero(evaluated)
    negatives = popularity_negatives(dataset, eval_users, seed, num_negatives)
    return Split(
        dataset=dataset,
        seed=seed,
        train_offsets=train_offsets,
        train_items=train_items.astype(np.int64),
        valid_target=valid_target.astype(np.int64),
        test_target=test_target.astype(np.int64),
        eval_users=eval_users,
        negatives=negatives,
    )


def negative_rng(dataset_hash: str, seed: int) -> np.random.Generator:
    """A generator determined by the data version and the seed, nothing else."""
    return np.random.default_rng([int(dataset_hash[:16] or "0", 16), seed])


def popularity_negatives(
    dataset: Dataset, users: np.ndarray, seed: int, num_negatives: int = 100
) -> np.ndarray:
    """Per user, ``num_negatives`` items drawn without replacement in proportion to
    popularity.

    Popularity counts every interaction of the prepared data (as the CaFe authors'
    sampler does). Items the user interacted with are never drawn. Drawing with
    replacement and discarding repeats is exactly sampling without replacement
    proportional to weight (successive sampling), and costs O(N log V) per user instead
    of O(V). Where fewer than ``num_negatives`` items are left the row is padded with 0,
    which the evaluator ignores.
    """
    rng = negative_rng(dataset.hash, seed)
    counts = np.bincount(dataset.items, minlength=dataset.num_items + 1).astype(
        np.float64
    )
    cumulative = np.cumsum(counts)
    total = cumulative[-1]
    result = np.zeros((len(users), num_negatives), dtype=np.int64)
    for row, user in enumerate(users):
        seen = np.unique(dataset.sequence(user))
        available = dataset.num_items - len(seen)
        wanted = min(num_negatives, available)
        if wanted <= 0:
            continue
        if available <= 4 * num_negatives:
            # few items left: draw exactly from the remaining popularity mass
            result[row, :wanted] = _draw_from_rest(rng, counts, seen, wanted)
            continue
        chosen: dict[int, None] = {}
        seen_set = set(seen.tolist())
        while len(chosen) < wanted:
            draws = np.searchsorted(
                cumulative, rng.random(2 * wanted) * total, side="right"
            )
            for item in draws.tolist():
                if item not in seen_set and item not in chosen:
                    chosen[item] = None
                    if len(chosen) == wanted:
                        break
        result[row, :wanted] = list(chosen)
    return result


def _draw_from_rest(
    rng, counts: np.ndarray, seen: np.ndarray, wanted: int
) -> np.ndarray:
    weights = counts.copy()
    weights[0] = 0.0
    weights[seen] = 0.0
    candidates = np.flatnonzero(weights > 0)
    wanted = min(wanted, len(candidates))
    p = weights[candidates] / weights[candidates].sum()
    return rng.choice(candidates, size=wanted, replace=False, p=p)
