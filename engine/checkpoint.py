"""Saving and loading checkpoints safely.

Checkpoints hold only tensors and plain Python values and are always loaded with
``weights_only=True``: a crafted file cannot run code. Writes go to a temporary file
first and are renamed into place, so a kill during a save never leaves a half-written
checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch

from engine.errors import CheckpointError


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def load_checkpoint(
    path: str | Path, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found.")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise CheckpointError(
            f"{path}: refused to load the checkpoint ({type(exc).__name__}: {exc}). "
            "It is damaged, or holds objects other than tensors and plain values."
        ) from exc


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
