"""SSE-PT: sequential recommendation via a personalized transformer.

Wu, Li, Hsieh, Sharpnack, "SSE-PT: Sequential Recommendation Via Personalized
Transformer", RecSys 2020. SASRec with the user's embedding concatenated to every item
embedding of the input, so that attention is personalised; the state at position t
scores item k by a dot product with [E_item[k] ; E_user[u]]. Without regularisation the
user embeddings overfit, so training uses stochastic shared embeddings (SSE, Wu et al.,
NeurIPS 2019): with probability ``sse_user`` the user id is replaced by a random user,
and with probability ``sse_item`` each item id by a random item. Evaluation replaces
nothing.

Departures from the paper and its reference code (wuliwei9278/SSE-PT):
- NOTE: the encoder keeps the shared width d (``hidden``), split into a share
  ``user_share`` of user dimensions and the rest for items (the authors use 50 + 50,
  i.e. one half), so that SSE-PT costs what the other baselines cost at the same d.
- NOTE: SSE on items replaces ids in the user's whole training sequence, so an input
  and the target predicted from the position before it stay the same item; the
  authors' sampler drew the replaced input and its position's target independently.
- NOTE: replacement draws from torch's generator (seeded, checkpointed by the
  trainer) inside ``forward``, not in the data sampler.
- NOTE: defaults follow the CaFe paper's shared setting (d=128, n=50, dropout 0.3, 2
  blocks, 1 head, BCE with one negative); the replacement probabilities are those of
  the authors' published MovieLens-1M command (threshold_user 0.08 and threshold_item
  0.9, i.e. replace users with probability 0.92 and items with 0.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from engine.models.base import EvalBatch, ModelConfig, Recommender, TrainBatch, param
from engine.models.layers import (
    Dropout,
    Encoder,
    bce_pair,
    init_weights,
    pos_neg_logits,
    record_attention,
)


@dataclass
class SSEPTConfig(ModelConfig):
    max_len: int = param(
        50, "Longest history the model reads (n); older items are cut.", min=2
    )
    hidden: int = param(
        128, "Hidden size d of the encoder: user plus item dimensions.", min=4
    )
    user_share: float = param(
        0.5,
        "Share of the hidden size d taken by the user embedding; items get the rest.",
        min=0.01,
        max=0.99,
    )
    blocks: int = param(2, "Number of self-attention blocks.", min=1)
    heads: int = param(1, "Attention heads per block (SSE-PT uses one).", min=1)
    dropout: float = param(
        0.3, "Dropout on embeddings, attention and feed-forward.", min=0.0, max=0.9
    )
    sse_user: float = param(
        0.92,
        "SSE: chance that a training sequence's user is replaced by a random user.",
        min=0.0,
        max=1.0,
    )
    sse_item: float = param(
        0.1,
        "SSE: chance that a training item is replaced by a random item.",
        min=0.0,
        max=1.0,
    )

    @property
    def user_hidden(self) -> int:
        """Du: at least one dimension each for users and items."""
        return min(max(round(self.hidden * self.user_share), 1), self.hidden - 1)


class SSEPT(Recommender):
    name = "ssept"
    config_class = SSEPTConfig

    def __init__(self, config: SSEPTConfig, context):
        super().__init__(config, context)
        c = config
        self.item_dim = c.hidden - c.user_hidden
        self.item_embed = nn.Embedding(
            context.num_items + 1, self.item_dim, padding_idx=0
        )
        self.user_embed = nn.Embedding(max(context.num_users, 1), c.user_hidden)
        self.positions = nn.Embedding(c.max_len, c.hidden)
        self.dropout = Dropout(c.dropout)
        self.scale = math.sqrt(c.hidden)
        self.encoder = Encoder(
            c.hidden, c.blocks, c.heads, c.dropout, c.max_len, causal=True
        )
        init_weights(self)

    def stochastic_shared(self, users: Tensor, seq: Tensor) -> tuple[Tensor, Tensor]:
        """SSE: in training, replace users (B,) and real items of seq (B, L) by random
        ones with probabilities sse_user and sse_item; in evaluation, change nothing."""
        if not self.training:
            return users, seq
        c, device = self.config, seq.device
        swap_user = torch.rand(users.shape, device=device) < c.sse_user
        random_users = torch.randint(
            0, self.user_embed.num_embeddings, users.shape, device=device
        )
        users = torch.where(swap_user, random_users, users)
        swap_item = (seq > 0) & (torch.rand(seq.shape, device=device) < c.sse_item)
        random_items = torch.randint(
            1, self.context.num_items + 1, seq.shape, device=device
        )
        return users, torch.where(swap_item, random_items, seq)

    def encode(self, users: Tensor, seq: Tensor) -> Tensor:
        """(B,) users and (B, L) item ids -> (B, L, D); position t sees items <= t."""
        B, L = seq.shape
        items = self.item_embed(seq)  # (B, L, D - Du)
        user = self.user_embed(users)[:, None, :].expand(B, L, -1)  # (B, L, Du)
        # (B, L, D) personalised input, plus (L, D) positions broadcast over B
        x = torch.cat([items, user], dim=-1) * self.scale
        x = self.dropout(x + self.positions(torch.arange(L, device=seq.device)))
        return self.encoder(x, seq > 0)

    def _user_term(self, h: Tensor, users: Tensor) -> Tensor:
        """User half of the output dot product: (B, ..., Du) . (B, Du) -> (B, ...)."""
        user = self.user_embed(users)  # (B, Du)
        shape = (user.shape[0],) + (1,) * (h.dim() - 2) + (user.shape[1],)
        return (h[..., self.item_dim :] * user.view(shape)).sum(-1)

    def forward(self, batch: TrainBatch) -> dict[str, Tensor]:
        users, seq = self.stochastic_shared(batch.users, batch.seq)
        inputs, targets = seq[:, :-1], seq[:, 1:]  # (B, L) each
        h = self.encode(users, inputs)  # (B, L, D)

        # r = h . [E_item[k] ; E_user[u]] for the next item and one negative
        h_item = h[..., : self.item_dim]
        pos, neg = pos_neg_logits(h_item, self.item_embed.weight, targets, batch.neg)
        user_term = self._user_term(h, users)  # (B, L)
        loss = bce_pair(pos + user_term, neg + user_term, targets > 0)
        return {"loss": loss}

    def _last(self, batch: EvalBatch) -> tuple[Tensor, Tensor]:
        h = self.encode(batch.users, batch.seq)[:, -1]  # (B, D)
        return h[:, : self.item_dim], self._user_term(h, batch.users)  # (B, Di), (B,)

    def score_all(self, batch: EvalBatch) -> Tensor:
        h_item, user_term = self._last(batch)
        # (B, Di) x (Di, V+1) -> (B, V+1), plus the user term of each row
        scores = h_item @ self.item_embed.weight.T + user_term[:, None]
        scores[:, 0] = float("-inf")
        return scores

    def score_candidates(self, batch: EvalBatch, candidates: Tensor) -> Tensor:
        h_item, user_term = self._last(batch)
        # (B, N, Di) x (B, Di, 1) -> (B, N)
        items = self.item_embed.weight[candidates]
        scores = (items @ h_item.unsqueeze(-1)).squeeze(-1) + user_term[:, None]
        return scores.masked_fill(candidates == 0, float("-inf"))

    def explain(self, batch: EvalBatch) -> dict[str, Tensor]:
        # trained with binary cross-entropy: the sigmoid of an item's score is the
        # model's probability that it comes next
        score = self.score_all(batch)
        return {"item_logit": score, "score": score}

    def attention_maps(self, batch: EvalBatch) -> dict[str, Tensor]:
        return record_attention(
            {"item": self.encoder}, lambda: self.encode(batch.users, batch.seq)
        )

    def item_embeddings(self) -> Tensor:
        return self.item_embed.weight.detach()
