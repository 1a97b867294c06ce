"""BERT-F: BERT4Rec with intents fused the FDSA way.

The CaFe paper's (Li et al., SIGIR 2022, §4.1) intent-aware variant of BERT4Rec (Sun et
al., CIKM 2019): beside the bidirectional item encoder a second bidirectional encoder
reads the sequence of item intents, and the two outputs are concatenated and projected
back to d, as FDSA fuses item and feature encoders (Zhang et al., IJCAI 2019).

Departures, beyond those of BERT4Rec (see ``engine.models.bert4rec``):
- NOTE: a masked position's intent is a dedicated mask intent, never its item's true
  intent: at evaluation the appended mask's intent is unknown, and in training the true
  one would reveal the answer's intent.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.models.bert4rec import BERT4Rec, BERT4RecConfig


@dataclass
class BERTFConfig(BERT4RecConfig):
    """BERT4Rec's settings; the intent encoder copies the item encoder's shape."""


class BERTF(BERT4Rec):
    name = "bertf"
    config_class = BERTFConfig
    needs_intents = True
    fuse_intents = True
