"""NOVA: non-invasive self-attention for side information fusion.

Liu, Li, Wang, Wang, Zhu, Zhang, Jiang, "Noninvasive Self-attention for Side
Information Fusion in Sequential Recommendation", AAAI 2021 (NOVA-BERT). A BERT4Rec
whose attention takes queries and keys from the item representation fused with side
information, but values from the item representation alone, so side information steers
where the model looks without entering what it carries forward. Here the side
information is each item's intent plus its position (NOVA treats positions as side
information too), and it is fed unchanged to every block (``side`` of
``layers.MultiHeadAttention``).

Departures from the paper, beyond those of BERT4Rec (see ``engine.models.bert4rec``):
- NOTE: fusion by addition (NOVA's "add" fusor); the paper found its gating fusor best.
- NOTE: one kind of side information (the intent); NOVA also fuses several attributes,
  which a single intent column does not have.
- NOTE: the mask token's side information is a dedicated mask intent plus its position,
  so a masked position never reveals its item's intent.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from engine.models.bert4rec import BERT4Rec, BERT4RecConfig
from engine.models.layers import SequenceEmbedding, init_weights


@dataclass
class NOVAConfig(BERT4RecConfig):
    """BERT4Rec's settings; intents and positions enter attention's query and key."""


class NOVA(BERT4Rec):
    name = "nova"
    config_class = NOVAConfig
    needs_intents = True
    item_positions = False

    def __init__(self, config: NOVAConfig, context):
        super().__init__(config, context)
        c = config
        # intent embedding plus position embedding, the side information S
        self.side_embed = SequenceEmbedding(
            context.num_intents + 2, c.max_len, c.hidden, c.dropout
        )
        init_weights(self.side_embed)

    def encode(self, seq: Tensor) -> Tensor:
        """(B, L) token ids -> (B, L, D); side information enters q and k only."""
        side = self.side_embed(self.item_intent[seq])  # (B, L, D)
        return self.encoder(self.embed(seq), seq > 0, side)
