"""CaFe: coarse-to-fine sparse sequential recommendation.

Li, Zhao, Li, Chan, Faloutsos, Karypis, Pantel, McAuley, "Coarse-to-Fine Sparse
Sequential Recommendation", SIGIR 2022. An intent encoder (causal SASRec) reads the
dense sequence of item intents (categories, sellers, genres) and an item encoder with
learned local heads reads the sparse item sequence; their outputs are summed, R = R_v +
R_c. Items are scored with R, intents with R_c, both trained by binary cross-entropy
with one sampled negative each. Inference ranks an item k by the joint probability
sigma(r_c(intent of k)) * sigma(r_v(k)).

The four switches of the paper's Table 3 ablation:
(1) ``fuse_intent``: run the intent encoder and add its output to the item encoder's
    (FDSA-style fusion of a separate intent encoder);
(2) ``intent_loss``: train the intent encoder explicitly on next-intent prediction;
(3) ``local_heads``: local heads in the item encoder (0 = plain encoder);
(4) ``joint_inference``: rank by item and intent probability rather than item score
    alone.
All off is SASRec. The intent encoder exists whenever (1), (2) or (4) asks for it.

Departures from the paper and the authors' code (JiachengLi1995/CAFE):
- NOTE: at inference every candidate is scored with its own intent. The authors'
  evaluation gave the 100 sampled negatives random intents other than the true item's,
  which leaks the answer through the intent term.
- NOTE: the joint score is log sigma(r_c) + log sigma(r_v) (a product of probabilities,
  as the paper states); the authors' code summed raw logits.
- NOTE: the local bias uses the head's query and key projections and a distance
  embedding (paper Eq. 5-6); the authors' module fed value projections to it and also
  added absolute position embeddings to local queries and keys.
- NOTE: the released script trained with ``local_num_heads 0``; here the default is 1
  global + 3 local heads as in the paper, and ``local_heads=0`` reproduces the script.
- NOTE: with (4) on but (1) and (2) off the intent encoder is never trained; the run is
  valid (every combination is) but its intent term is noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
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
class CaFeConfig(ModelConfig):
    max_len: int = param(
        50, "Longest history the model reads (n); older items are cut.", min=2
    )
    hidden: int = param(128, "Hidden size d of both encoders.", min=4)
    blocks: int = param(2, "Self-attention blocks in each encoder.", min=1)
    heads: int = param(
        1,
        "Global attention heads of the item encoder (and of the intent encoder).",
        min=1,
    )
    local_heads: int = param(
        3, "Local heads of the item encoder, ablation (3); 0 = plain encoder.", min=0
    )
    dropout: float = param(
        0.3, "Dropout on embeddings, attention and feed-forward.", min=0.0, max=0.9
    )
    fuse_intent: bool = param(
        True, "Ablation (1): add the intent encoder's output to the item encoder's."
    )
    intent_loss: bool = param(
        True, "Ablation (2): train the intent encoder on next-intent prediction."
    )
    joint_inference: bool = param(
        True, "Ablation (4): rank by P(item) x P(intent of the item)."
    )


class CaFe(Recommender):
    name = "cafe"
    config_class = CaFeConfig
    needs_intents = True

    def __init__(self, config: CaFeConfig, context):
        super().__init__(config, context)
        c = config
        self.register_buffer(
            "item_intent", context.item_intent.clone().long(), persistent=False
        )
        self.item_embed = SequenceEmbedding(
            context.num_items + 1, c.max_len, c.hidden, c.dropout
        )
        self.item_encoder = Encoder(
            c.hidden, c.blocks, c.heads, c.dropout, c.max_len, local_heads=c.local_heads
        )
        self.has_intent_encoder = c.fuse_intent or c.intent_loss or c.joint_inference
        if self.has_intent_encoder:
            self.intent_embed = SequenceEmbedding(
                context.num_intents + 1, c.max_len, c.hidden, c.dropout
            )
            self.intent_encoder = Encoder(
                c.hidden, c.blocks, c.heads, c.dropout, c.max_len
            )
        init_weights(self)

    def encode(self, seq: Tensor) -> tuple[Tensor, Tensor | None]:
        """(B, L) item ids -> fused R (B, L, D) and intent R_c (B, L, D) or None."""
        real = seq > 0
        r_v = self.item_encoder(self.item_embed(seq), real)  # (B, L, D)
        if not self.has_intent_encoder:
            return r_v, None
        intents = self.item_intent[seq]  # (B, L), padding maps to intent 0
        r_c = self.intent_encoder(self.intent_embed(intents), real)  # (B, L, D)
        fused = r_v + r_c if self.config.fuse_intent else r_v
        return fused, r_c

    def forward(self, batch: TrainBatch) -> dict[str, Tensor]:
        inputs, targets = batch.seq[:, :-1], batch.seq[:, 1:]  # (B, L) each
        real = targets > 0
        r, r_c = self.encode(inputs)

        # item terms: R_t . E_v[k] for the next item and one sampled negative
        pos, neg = pos_neg_logits(r, self.item_embed.weight, targets, batch.neg)
        losses = {"item": bce_pair(pos, neg, real)}

        # intent terms: R_c,t . E_c[j] for the next item's intent and one negative
        # intent
        if self.config.intent_loss:
            pos_intent = self.item_intent[targets]  # (B, L)
            pos, neg = pos_neg_logits(
                r_c, self.intent_embed.weight, pos_intent, batch.neg_intents
            )
            losses["intent"] = bce_pair(pos, neg, real)
        losses["loss"] = sum(losses.values())
        return losses

    def _last(self, batch: EvalBatch) -> tuple[Tensor, Tensor | None]:
        r, r_c = self.encode(batch.seq)
        return r[:, -1], (r_c[:, -1] if r_c is not None else None)  # (B, D) each

    def explain(self, batch: EvalBatch) -> dict[str, Tensor]:
        """Item logit, intent logit of each item's own intent, and the joint score."""
        r, r_c = self._last(batch)
        # (B, D) x (D, V+1) -> (B, V+1)
        item_logit = r @ self.item_embed.weight.T
        parts = {"item_logit": item_logit}
        if r_c is not None:
            # (B, D) x (D, C+1) -> (B, C+1), then each item takes its own intent's logit
            intent_logit = r_c @ self.intent_embed.weight.T
            parts["intent_distribution"] = F.softmax(intent_logit[:, 1:], dim=-1)
            parts["intent_logit"] = intent_logit[:, self.item_intent]  # (B, V+1)
        parts["score"] = self._joint(item_logit, parts.get("intent_logit"))
        return parts

    def _joint(self, item_logit: Tensor, intent_logit: Tensor | None) -> Tensor:
        if self.config.joint_inference and intent_logit is not None:
            # log P(item) + log P(intent of item) = log of the joint probability
            score = F.logsigmoid(item_logit) + F.logsigmoid(intent_logit)
        else:
            score = item_logit.clone()
        return score

    def score_all(self, batch: EvalBatch) -> Tensor:
        r, r_c = self._last(batch)
        item_logit = r @ self.item_embed.weight.T  # (B, V+1)
        intent_logit = None
        if r_c is not None:
            intent_logit = (r_c @ self.intent_embed.weight.T)[:, self.item_intent]
        score = self._joint(item_logit, intent_logit)
        score[:, 0] = float("-inf")
        return score

    def score_candidates(self, batch: EvalBatch, candidates: Tensor) -> Tensor:
        r, r_c = self._last(batch)
        # (B, N, D) x (B, D, 1) -> (B, N)
        item_logit = (self.item_embed.weight[candidates] @ r.unsqueeze(-1)).squeeze(-1)
        intent_logit = None
        if r_c is not None:
            # each candidate's own intent: (B, N) -> (B, N, D) x (B, D, 1) -> (B, N)
            own = self.intent_embed.weight[self.item_intent[candidates]]
            intent_logit = (own @ r_c.unsqueeze(-1)).squeeze(-1)
        score = self._joint(item_logit, intent_logit)
        return score.masked_fill(candidates == 0, float("-inf"))

    def attention_maps(self, batch: EvalBatch) -> dict[str, Tensor]:
        encoders = {"item": self.item_encoder}
        if self.has_intent_encoder:
            encoders["intent"] = self.intent_encoder
        return record_attention(encoders, lambda: self.encode(batch.seq))

    def item_embeddings(self) -> Tensor:
        return self.item_embed.weight.detach()
