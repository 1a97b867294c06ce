"""Metrics and protocols against rankings worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.data.dataset import ColumnMapping, Dataset, Filters
from engine.data.split import Split
from engine.evaluation import evaluate, metrics_from_ranks, ranks_against
from engine.models.base import ModelContext, Recommender


def test_rank_counts_ties_against_the_true_item():
    true = torch.tensor([0.5])
    others = torch.tensor([[0.9, 0.5, 0.1]])
    valid = torch.ones(1, 3, dtype=torch.bool)
    # one score above, one tie: the true item is third (rank 2)
    assert ranks_against(true, others, valid).tolist() == [2]


def test_rank_ignores_invalid_candidates_and_nan_ranks_last():
    true = torch.tensor([0.5, float("nan")])
    others = torch.tensor([[0.9, 0.7, 0.1], [0.1, 0.2, 0.3]])
    valid = torch.tensor([[True, False, True], [True, True, True]])
    assert ranks_against(true, others, valid).tolist() == [1, 3]


def test_hand_worked_metrics():
    # ranks 0, 2 and 100 (the last of 101 candidates)
    per_user = metrics_from_ranks(np.array([0, 2, 100]), ks=(1, 5))
    assert per_user["HR@1"].tolist() == [1.0, 0.0, 0.0]
    assert per_user["HR@5"].tolist() == [1.0, 1.0, 0.0]
    assert per_user["NDCG@5"].tolist() == pytest.approx([1.0, 1 / math.log2(4), 0.0])
    assert per_user["MRR"].tolist() == pytest.approx([1.0, 1 / 3, 1 / 101])


class _ScoreById(Recommender):
    """A fake model whose score of item k is k, or a constant when ``constant``."""

    name = "fake"
    trainable = False

    def __init__(self, num_items: int, constant: bool = False):
        context = ModelContext(
            num_items, 1, 1, torch.zeros(num_items + 1), torch.zeros(1)
        )
        super().__init__(None, context)
        self.constant = constant

    @property
    def max_len(self) -> int:
        return 4

    def score_all(self, batch):
        B = batch.seq.shape[0]
        V1 = self.context.num_items + 1
        scores = torch.arange(V1, dtype=torch.float).expand(B, V1).clone()
        if self.constant:
            scores[:] = 1.0
        scores[:, 0] = float("-inf")
        return scores


def _toy_split() -> Split:
    """Two users over items 1..8; user 0: 1 2 3 (valid 2, test 3); user 1: 4 5 6 7."""
    items = np.array([1, 2, 3, 4, 5, 6, 7])
    offsets = np.array([0, 3, 7])
    dataset = Dataset(
        name="toy",
        mapping=ColumnMapping("u", "i"),
        filters=Filters(),
        user_ids=np.array(["a", "b"], dtype=object),
        item_ids=np.array(["<pad>"] + [str(i) for i in range(1, 9)], dtype=object),
        intent_names=np.array(["<pad>", "x"], dtype=object),
        item_intent=np.array([0] + [1] * 8),
        offsets=offsets,
        items=items,
        hash="0" * 64,
    )
    return Split(
        dataset=dataset,
        seed=0,
        train_offsets=np.array([0, 1, 3]),
        train_items=np.array([1, 4, 5]),
        valid_target=np.array([2, 6]),
        test_target=np.array([3, 7]),
        eval_users=np.array([0, 1]),
        # user 0 ranks its target 2 against 8, 7, 4; user 1 ranks 6 against 1, 2, 3
        negatives=np.array([[8, 7, 4], [1, 2, 3]]),
    )


def test_sampled_protocol_by_hand():
    result = evaluate(_ScoreById(8), _toy_split(), "valid", "sampled", ks=(1, 2))
    # user 0: target 2 below 8, 7, 4 -> rank 3; user 1: target 6 above 1, 2, 3 -> rank 0
    assert result.per_user["rank"].tolist() == [3, 0]
    assert result.per_user["candidates"].tolist() == [4, 4]
    assert result.metrics["HR@1"] == pytest.approx(0.5)
    assert result.metrics["MRR"] == pytest.approx((1 / 4 + 1) / 2)


def test_full_protocol_excludes_history_but_not_the_target():
    result = evaluate(_ScoreById(8), _toy_split(), "test", "full", ks=(1, 5))
    # user 0, target 3, history {1, 2}: items 4..8 score higher -> rank 5
    # user 1, target 7, history {4, 5, 6}: only item 8 scores higher -> rank 1
    assert result.per_user["rank"].tolist() == [5, 1]
    assert result.per_user["candidates"].tolist() == [6, 5]
    assert result.metrics["HR@5"] == pytest.approx(0.5)


@pytest.mark.parametrize("protocol", ["sampled", "full"])
def test_constant_model_scores_zero(protocol):
    result = evaluate(
        _ScoreById(8, constant=True), _toy_split(), "valid", protocol, ks=(1,)
    )
    assert result.metrics["HR@1"] == 0.0
    assert result.metrics["NDCG@1"] == 0.0


def test_per_user_means_are_the_reported_metrics(ciao_split):
    from engine.experiment import model_context
    from engine.models import build_model

    model = build_model("intentpop", {}, model_context(ciao_split))
    result = evaluate(model, ciao_split, "test", "sampled")
    for name, value in result.metrics.items():
        assert result.per_user[name].mean() == pytest.approx(value)
    assert (result.per_user["candidates"] == 101).all()
