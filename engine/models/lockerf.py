"""LOCKER-F: LOCKER with intents fused the FDSA way.

The CaFe paper's (Li et al., SIGIR 2022, §4.1) intent-aware variant of LOCKER (He et
al., CIKM 2021): LOCKER's item encoder with local heads, beside a second bidirectional
encoder over the sequence of item intents (global heads only); the two outputs are
concatenated and projected back to d, as FDSA fuses item and feature encoders (Zhang et
al., IJCAI 2019).

Departures, beyond those of LOCKER and BERT4Rec (see ``engine.models.locker``):
- NOTE: a masked position's intent is a dedicated mask intent, never its item's true
  intent, which would reveal the answer's intent.
- NOTE: local heads only in the item encoder, as in CaFe, whose intent encoder is a
  plain one.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.models.locker import LOCKER, LOCKERConfig


@dataclass
class LOCKERFConfig(LOCKERConfig):
    """LOCKER's settings; the intent encoder copies the item encoder's global heads."""


class LOCKERF(LOCKER):
    name = "lockerf"
    config_class = LOCKERFConfig
    needs_intents = True
    fuse_intents = True
