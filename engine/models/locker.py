"""LOCKER: locally constrained self-attentive sequential recommendation.

He, Zhao, Lin, Wang, Kale, McAuley, "Locker: Locally Constrained Self-Attentive
Sequential Recommendation", CIKM 2021. BERT4Rec whose attention heads are split into
global heads and local heads; a local head adds a locality bias to its attention logits
so that it favours nearby items.

Of LOCKER's local encoders this is the learned, distance-based one in the form CaFe's
item encoder uses (CaFe paper Eq. 5-6): ``ln theta_ij = (q_i + k_j + d_ij) w + b`` with
a learned embedding d_ij of the distance i - j. It is the same module as CaFe's
(``layers.LocalBias``), so the two models differ only in what the paper compares.

Departures from the paper and its reference code (AaronHeee/LOCKER), beyond those of
BERT4Rec (see ``engine.models.bert4rec``):
- NOTE: only the learned distance-based local encoder is offered; LOCKER's fixed-window,
  Gaussian and convolutional variants are not.
- NOTE: the default split is 1 global + 3 local heads, the CaFe paper's setting at
  d=128, so that LOCKER and CaFe's item encoder match.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.models.base import param
from engine.models.bert4rec import BERT4Rec, BERT4RecConfig


@dataclass
class LOCKERConfig(BERT4RecConfig):
    heads: int = param(1, "Global attention heads per block.", min=1)
    local_heads: int = param(
        3, "Local heads per block with the learned distance bias.", min=0
    )


class LOCKER(BERT4Rec):
    name = "locker"
    config_class = LOCKERConfig
