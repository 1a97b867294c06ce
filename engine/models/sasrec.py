"""SASRec: self-attentive sequential recommendation.

Kang and McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018. A causal
transformer over the item sequence; the output at position t scores the item at t+1 by a
dot product with the (tied) item embedding; binary cross-entropy with one sampled
negative per position.

Departures from the paper and its reference code (pmixer/SASRec.pytorch):
- NOTE: pre-norm blocks with a residual around attention from the un-normalised input
  (the reference adds the residual to the normalised query); the final LayerNorm is
  kept.
- NOTE: defaults follow the CaFe paper's shared setting (d=128, n=50, dropout 0.3), not
  SASRec's (d=50, n=200, dropout 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from engine.models.base import EvalBatch, ModelConfig, Recommender, TrainBatch, param
from engine.models.layers import (
    Encoder,
    SequenceEmbedding,
    bce_pair,
    init_weights,
    pos_neg_logits,
    record_attention,
)


@dataclass
class SASRecConfig(ModelConfig):
    max_len: int = param(
        50, "Longest history the model reads (n); older items are cut.", min=2
    )
    hidden: int = param(128, "Hidden size d of embeddings and encoder.", min=4)
    blocks: int = param(2, "Number of self-attention blocks.", min=1)
    heads: int = param(1, "Attention heads per block (SASRec uses one).", min=1)
    dropout: float = param(
        0.3, "Dropout on embeddings, attention and feed-forward.", min=0.0, max=0.9
    )


class SASRec(Recommender):
    name = "sasrec"
    config_class = SASRecConfig

    def __init__(self, config: SASRecConfig, context):
        super().__init__(config, context)
        c = config
        self.embed = SequenceEmbedding(
            context.num_items + 1, c.max_len, c.hidden, c.dropout
        )
        self.encoder = Encoder(
            c.hidden, c.blocks, c.heads, c.dropout, c.max_len, causal=True
        )
        init_weights(self)

    def encode(self, seq: Tensor) -> Tensor:
        """(B, L) item ids -> (B, L, D) states; position t has seen items <= t only."""
        return self.encoder(self.embed(seq), seq > 0)

    def forward(self, batch: TrainBatch) -> dict[str, Tensor]:
        inputs, targets = batch.seq[:, :-1], batch.seq[:, 1:]  # (B, L) each
        h = self.encode(inputs)  # (B, L, D)
        pos, neg = pos_neg_logits(
            h, self.embed.weight, targets, batch.neg
        )  # (B, L) each
        loss = bce_pair(pos, neg, targets > 0)
        return {"loss": loss}

    def last_state(self, batch: EvalBatch) -> Tensor:
        return self.encode(batch.seq)[:, -1]  # (B, D)

    def score_all(self, batch: EvalBatch) -> Tensor:
        # (B, D) x (D, V+1) -> (B, V+1)
        scores = self.last_state(batch) @ self.embed.weight.T
        scores[:, 0] = float("-inf")
        return scores

    def score_candidates(self, batch: EvalBatch, candidates: Tensor) -> Tensor:
        h = self.last_state(batch)  # (B, D)
        # (B, N, D) x (B, D, 1) -> (B, N)
        scores = (self.embed.weight[candidates] @ h.unsqueeze(-1)).squeeze(-1)
        return scores.masked_fill(candidates == 0, float("-inf"))

    def explain(self, batch: EvalBatch) -> dict[str, Tensor]:
        # trained with binary cross-entropy: the sigmoid of an item's score is the
        # model's probability that it comes next
        score = self.score_all(batch)
        return {"item_logit": score, "score": score}

    def attention_maps(self, batch: EvalBatch) -> dict[str, Tensor]:
        return record_attention({"item": self.encoder}, lambda: self.encode(batch.seq))

    def item_embeddings(self) -> Tensor:
        return self.embed.weight.detach()
