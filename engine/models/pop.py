"""PopRec and IntentPop: count-based baselines with no training loop.

PopRec scores an item by how often it occurs in the training split (the usual popularity
baseline, e.g. RecBole's Pop). IntentPop is a sanity baseline of this project, not a
published model: it scores a candidate by how often the candidate's intent occurs in the
user's history, ties broken by item popularity. Under the popularity-sampled protocol
such a category filter is strong, so a learned intent-aware model is only credible above
it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from engine.models.base import EvalBatch, ModelConfig, Recommender, param


@dataclass
class PopConfig(ModelConfig):
    max_len: int = param(50, "History length read (PopRec ignores the history).", min=1)


@dataclass
class IntentPopConfig(ModelConfig):
    max_len: int = param(
        50, "How many recent items count towards the intent frequencies.", min=1
    )


class PopRec(Recommender):
    name = "pop"
    config_class = PopConfig
    trainable = False

    def __init__(self, config: PopConfig, context):
        super().__init__(config, context)
        self.register_buffer("counts", context.item_counts.clone().float())

    def score_all(self, batch: EvalBatch) -> Tensor:
        B = batch.seq.shape[0]
        scores = self.counts.expand(B, -1).clone()  # (B, V+1)
        scores[:, 0] = float("-inf")
        return scores


class IntentPop(Recommender):
    name = "intentpop"
    config_class = IntentPopConfig
    needs_intents = True
    trainable = False

    def __init__(self, config: IntentPopConfig, context):
        super().__init__(config, context)
        self.register_buffer("item_intent", context.item_intent.clone().long())
        counts = context.item_counts.clone().float()
        # popularity squeezed into [0, 1): it only orders items of equal intent
        # frequency
        self.register_buffer("tie_break", counts / (counts.max() + 1.0))

    def intent_frequency(self, batch: EvalBatch) -> Tensor:
        """(B, C+1) how often each intent occurs in each history, padding aside."""
        B = batch.seq.shape[0]
        intents = self.item_intent[batch.seq]  # (B, L)
        freq = torch.zeros(B, self.context.num_intents + 1, device=batch.seq.device)
        freq.scatter_add_(1, intents, (batch.seq > 0).float())
        freq[:, 0] = 0.0
        return freq

    def score_all(self, batch: EvalBatch) -> Tensor:
        # (B, C+1) indexed by each item's intent -> (B, V+1)
        scores = self.intent_frequency(batch)[:, self.item_intent] + self.tie_break
        scores[:, 0] = float("-inf")
        return scores

    def explain(self, batch: EvalBatch) -> dict[str, Tensor]:
        freq = self.intent_frequency(batch)
        total = freq[:, 1:].sum(-1, keepdim=True).clamp(min=1.0)
        return {
            "intent_distribution": freq[:, 1:] / total,
            "score": self.score_all(batch),
        }
