"""BERT4Rec: sequential recommendation with a bidirectional encoder and cloze training.

Sun, Liu, Wu, Pei, Lin, Ou, Jiang, "BERT4Rec: Sequential Recommendation with
Bidirectional Encoder Representations from Transformer", CIKM 2019. Items of the
training sequence are replaced by a mask token with probability rho (the cloze task) and
the encoder, which attends to both sides, predicts them with a softmax over all items.
To recommend, a mask token is appended to the history and its output is scored
(Eq. 7: GELU(h W_P + b_P) E^T + b_O with the input embedding E tied to the output).

The model is also the backbone of LOCKER, BERT-F and LOCKER-F (and NOVA): local heads
come from ``config.local_heads`` when the config has it, and ``fuse_intents`` adds an
intent encoder fused the FDSA way.

Token ids: 0 padding, 1..V items, V+1 the mask token. The mask token and padding are
never scored: score_all returns (B, V+1) with column 0 at -inf.

Departures from the paper and its reference code:
- NOTE: pre-norm encoder blocks (the shared block of this project); BERT4Rec uses
  post-norm.
- NOTE: a training sequence is the user's last L training items, masked anew each
  epoch; the paper instead precomputes several masked copies per sequence (dupe
  factor). A sequence where no item drew a mask has its last item masked, so every
  sequence enters the loss (the paper adds last-item-masked samples for the same
  reason, §3.6).
- NOTE: ``loss="sampled"`` replaces the full softmax by a sampled one: the target
  against ``sampled_negatives`` uniform items shared by the batch (uniform proposals
  need no log-Q correction). ``loss="auto"`` (the default) uses the paper's full
  softmax up to 50,000 items and the sampled one above, where a full softmax over
  every masked position costs too much on a CPU. (On Ciao, 16,861 items, one thread,
  the full softmax made a training epoch about 2.5x slower than the sampled one.)
- NOTE: defaults follow the CaFe paper's shared setting (d=128, n=50, dropout 0.3, 2
  blocks) with BERT4Rec's 2 heads; rho=0.6 is BERT4Rec's value for its sparsest
  dataset (Beauty), which the CaFe datasets resemble.
- NOTE: at evaluation the history loses its oldest item to make room for the mask, so
  the model reads n-1 items.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.models.base import EvalBatch, ModelConfig, Recommender, TrainBatch, param
from engine.models.layers import (
    MASKED,
    Encoder,
    FeatureFusion,
    SequenceEmbedding,
    init_weights,
    record_attention,
)

# ``loss="auto"`` uses the full softmax up to this many items
AUTO_FULL_MAX_ITEMS = 50_000
LOSSES = ("auto", "full", "sampled")


@dataclass
class BERT4RecConfig(ModelConfig):
    max_len: int = param(
        50, "Longest history the model reads (n); older items are cut.", min=2
    )
    hidden: int = param(128, "Hidden size d of embeddings and encoder.", min=4)
    blocks: int = param(2, "Number of self-attention blocks.", min=1)
    heads: int = param(2, "Attention heads per block.", min=1)
    dropout: float = param(
        0.3, "Dropout on embeddings, attention and feed-forward.", min=0.0, max=0.9
    )
    mask_prob: float = param(
        0.6,
        "Cloze task: chance that a training item is replaced by the mask token (rho).",
        min=0.01,
        max=1.0,
    )
    loss: str = param(
        "auto",
        "Cross-entropy over every item (full), over the target and sampled negatives "
        "(sampled), or auto: full up to 50,000 items, sampled above.",
        choices=LOSSES,
    )
    sampled_negatives: int = param(
        256, "Uniform negatives shared by a batch in the sampled softmax.", min=1
    )


def intents_with_mask(context) -> Tensor:
    """(V+2,) intent of every token; the mask token V+1 gets its own intent C+1.

    Giving a masked position its item's true intent would tell the model the answer's
    intent, which it never knows for the appended mask at evaluation.
    """
    mask_intent = torch.tensor([context.num_intents + 1])
    return torch.cat([context.item_intent.long(), mask_intent])


class BERT4Rec(Recommender):
    name = "bert4rec"
    config_class = BERT4RecConfig
    direction = "bidirectional"
    # BERT-F and LOCKER-F: a second, bidirectional intent encoder fused the FDSA way
    fuse_intents: ClassVar[bool] = False
    # NOVA: positions are side information, so the item embedding carries none
    item_positions: ClassVar[bool] = True

    def __init__(self, config: BERT4RecConfig, context):
        super().__init__(config, context)
        c = config
        V, C = context.num_items, context.num_intents
        self.mask_id = V + 1
        self.embed = SequenceEmbedding(
            V + 2, c.max_len, c.hidden, c.dropout, positions=self.item_positions
        )
        self.encoder = self._encoder(c, self.local_heads)
        if self.needs_intents:
            self.register_buffer(
                "item_intent", intents_with_mask(context), persistent=False
            )
        if self.fuse_intents:
            self.intent_embed = SequenceEmbedding(C + 2, c.max_len, c.hidden, c.dropout)
            self.intent_encoder = self._encoder(c, 0)
            self.fusion = FeatureFusion(c.hidden)

        # output layer, paper Eq. 7: GELU(h W_P + b_P) E^T + b_O
        self.head = nn.Sequential(nn.Linear(c.hidden, c.hidden), nn.GELU())
        self.out_bias = nn.Parameter(torch.zeros(V + 1))
        init_weights(self)

    @staticmethod
    def _encoder(c, local_heads: int) -> Encoder:
        return Encoder(
            c.hidden,
            c.blocks,
            c.heads,
            c.dropout,
            c.max_len,
            local_heads=local_heads,
            causal=False,
            activation="gelu",
        )

    @property
    def local_heads(self) -> int:
        return int(getattr(self.config, "local_heads", 0))

    @property
    def full_softmax(self) -> bool:
        loss = self.config.loss
        if loss == "auto":
            return self.context.num_items <= AUTO_FULL_MAX_ITEMS
        return loss == "full"

    def encode(self, seq: Tensor) -> Tensor:
        """(B, L) token ids (mask tokens included) -> (B, L, D); every position sees
        the whole sequence."""
        real = seq > 0
        h = self.encoder(self.embed(seq), real)  # (B, L, D)
        if self.fuse_intents:
            intents = self.item_intent[seq]  # (B, L), the mask token -> C+1
            h_c = self.intent_encoder(self.intent_embed(intents), real)  # (B, L, D)
            h = self.fusion(h, h_c, real.unsqueeze(-1).to(h.dtype))
        return h

    # -- training

    def cloze(self, seq: Tensor) -> tuple[Tensor, Tensor]:
        """Mask each real item with probability rho; return (masked ids, picked).

        Draws from torch's global generator, which the trainer seeds and checkpoints.
        """
        real = seq > 0
        picked = real & (
            torch.rand(seq.shape, device=seq.device) < self.config.mask_prob
        )
        # left padding: the last column is the most recent (always real) item
        picked[:, -1] |= ~picked.any(1)
        return seq.masked_fill(picked, self.mask_id), picked

    def forward(self, batch: TrainBatch) -> dict[str, Tensor]:
        seq = batch.seq[:, 1:]  # (B, L) the last L training items
        masked, picked = self.cloze(seq)
        h = self.head(self.encode(masked)[picked])  # (M, D) at the masked positions
        targets = seq[picked]  # (M,)
        if self.full_softmax:
            loss = self._full_loss(h, targets)
        else:
            loss = self._sampled_loss(h, targets)
        return {"loss": loss}

    def _full_loss(self, h: Tensor, targets: Tensor) -> Tensor:
        # items 1..V only: padding and the mask token are never a class
        # (M, D) x (D, V) -> (M, V)
        logits = h @ self.embed.weight[1 : self.mask_id].T + self.out_bias[1:]
        return F.cross_entropy(logits, targets - 1)

    def _sampled_loss(self, h: Tensor, targets: Tensor) -> Tensor:
        K = self.config.sampled_negatives
        weight = self.embed.weight
        neg = torch.randint(1, self.mask_id, (K,), device=h.device)  # (K,)

        # the target's logit, then the shared negatives': (M, D) x (D, K) -> (M, K)
        pos = (h * weight[targets]).sum(-1) + self.out_bias[targets]  # (M,)
        neg_logits = h @ weight[neg].T + self.out_bias[neg]
        # a negative that happens to be the target is no negative
        neg_logits = neg_logits.masked_fill(neg[None, :] == targets[:, None], MASKED)
        logits = torch.cat([pos[:, None], neg_logits], dim=1)  # (M, 1+K)
        return F.cross_entropy(logits, torch.zeros_like(targets))

    # -- inference

    def eval_input(self, seq: Tensor) -> Tensor:
        """(B, L) history -> (B, L): its last L-1 items followed by the mask token."""
        mask = torch.full_like(seq[:, :1], self.mask_id)  # (B, 1)
        return torch.cat([seq[:, 1:], mask], dim=1)

    def last_state(self, batch: EvalBatch) -> Tensor:
        return self.head(self.encode(self.eval_input(batch.seq))[:, -1])  # (B, D)

    def score_all(self, batch: EvalBatch) -> Tensor:
        h = self.last_state(batch)
        # (B, D) x (D, V+1) -> (B, V+1); the mask token's row V+1 is left out
        scores = h @ self.embed.weight[: self.mask_id].T + self.out_bias
        scores[:, 0] = float("-inf")
        return scores

    def score_candidates(self, batch: EvalBatch, candidates: Tensor) -> Tensor:
        h = self.last_state(batch)  # (B, D)
        # (B, N, D) x (B, D, 1) -> (B, N)
        scores = (self.embed.weight[candidates] @ h.unsqueeze(-1)).squeeze(-1)
        scores = scores + self.out_bias[candidates]
        return scores.masked_fill(candidates == 0, float("-inf"))

    def attention_maps(self, batch: EvalBatch) -> dict[str, Tensor]:
        encoders = {"item": self.encoder}
        if self.fuse_intents:
            encoders["intent"] = self.intent_encoder
        seq = self.eval_input(batch.seq)
        return record_attention(encoders, lambda: self.encode(seq))

    def item_embeddings(self) -> Tensor:
        return self.embed.weight[: self.mask_id].detach()
