"""Shared fixtures: small real subsets of ../shared/data, prepared once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

# one torch thread keeps the suite predictable on a shared two-core machine
torch.set_num_threads(1)


def require_data(name: str) -> Path:
    path = DATA / name
    if not (path / "interactions.csv").exists():
        pytest.skip(f"../shared/data/{name} is not available")
    return path


def write_subset(source: Path, target: Path, users: int) -> Path:
    """The first ``users`` users of a shared dataset, with their items, as CSV files."""
    target.mkdir(parents=True, exist_ok=True)
    inter = pd.read_csv(source / "interactions.csv")
    keep = inter["user_id"].drop_duplicates().head(users)
    inter = inter[inter["user_id"].isin(keep)]
    items = pd.read_csv(source / "items.csv")
    items = items[items["item_id"].isin(inter["item_id"])]
    inter.to_csv(target / "interactions.csv", index=False)
    items.to_csv(target / "items.csv", index=False)
    return target


@pytest.fixture(scope="session")
def ciao_small(tmp_path_factory) -> Path:
    """300 users of Ciao (sparse, 6 intents) as interactions.csv + items.csv."""
    source = require_data("ciao")
    return write_subset(source, tmp_path_factory.mktemp("ciao_small"), 300)


@pytest.fixture(scope="session")
def ml_small(tmp_path_factory) -> Path:
    """60 users of MovieLens-100K (dense, genres as intents, titles as names)."""
    source = require_data("ml-100k")
    return write_subset(source, tmp_path_factory.mktemp("ml_small"), 60)


@pytest.fixture(scope="session")
def ciao_split(ciao_small):
    from engine.data import leave_last_two_out, load_raw, prepare

    dataset = prepare(load_raw(ciao_small))
    return leave_last_two_out(dataset, seed=0)


@pytest.fixture(scope="session")
def ml_split(ml_small):
    from engine.data import leave_last_two_out, load_raw, prepare

    dataset = prepare(load_raw(ml_small))
    return leave_last_two_out(dataset, seed=0)
