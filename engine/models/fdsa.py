"""FDSA: feature-level deeper self-attention network.

Zhang, Zhao, Liu, Sheng, Xu, Wang, Zhuang, Zhou, "Feature-level Deeper Self-Attention
Network for Sequential Recommendation", IJCAI 2019. Two causal self-attention encoders,
one over the item sequence and one over the sequence of item features (here the
intent), whose outputs are concatenated and projected back to d (Eq. 14,
``layers.FeatureFusion``); the fused state at position t scores the item at t+1 by a
dot product with the item embedding.

Departures from the paper:
- NOTE: one feature, the intent, so FDSA's vanilla attention that pools several
  features per item into one vector is the identity and is left out.
- NOTE: trained like SASRec in the CaFe paper's shared setting: binary cross-entropy
  with one sampled negative per position, pre-norm blocks, d=128, n=50, dropout 0.3.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from engine.models.base import EvalBatch, ModelConfig, param
from engine.models.layers import (
    Encoder,
    FeatureFusion,
    SequenceEmbedding,
    init_weights,
    record_attention,
)
from engine.models.sasrec import SASRec


@dataclass
class FDSAConfig(ModelConfig):
    max_len: int = param(
        50, "Longest history the model reads (n); older items are cut.", min=2
    )
    hidden: int = param(128, "Hidden size d of both encoders.", min=4)
    blocks: int = param(2, "Self-attention blocks in each encoder.", min=1)
    heads: int = param(1, "Attention heads per block of each encoder.", min=1)
    dropout: float = param(
        0.3, "Dropout on embeddings, attention and feed-forward.", min=0.0, max=0.9
    )


class FDSA(SASRec):
    """SASRec's training and scoring over the fused state of two encoders."""

    name = "fdsa"
    config_class = FDSAConfig
    needs_intents = True

    def __init__(self, config: FDSAConfig, context):
        super().__init__(config, context)
        c = config
        self.register_buffer(
            "item_intent", context.item_intent.clone().long(), persistent=False
        )
        self.intent_embed = SequenceEmbedding(
            context.num_intents + 1, c.max_len, c.hidden, c.dropout
        )
        self.intent_encoder = Encoder(
            c.hidden, c.blocks, c.heads, c.dropout, c.max_len, causal=True
        )
        self.fusion = FeatureFusion(c.hidden)
        init_weights(self)

    def encode(self, seq: Tensor) -> Tensor:
        """(B, L) item ids -> (B, L, D) fused states; position t sees items <= t."""
        real = seq > 0
        r_v = self.encoder(self.embed(seq), real)  # (B, L, D)
        intents = self.item_intent[seq]  # (B, L), padding -> intent 0
        r_c = self.intent_encoder(self.intent_embed(intents), real)  # (B, L, D)
        return self.fusion(r_v, r_c, real.unsqueeze(-1).to(r_v.dtype))

    def attention_maps(self, batch: EvalBatch) -> dict[str, Tensor]:
        encoders = {"item": self.encoder, "intent": self.intent_encoder}
        return record_attention(encoders, lambda: self.encode(batch.seq))
