"""The data panel's long work, as plain functions of a task state (no Qt).

Reading goes through :func:`engine.data.io.load_raw` and preparing through
:func:`engine.data.dataset.prepare`, exactly as the worker process will read the same
files later, so the content hash shown here is the one the run is stored under.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.data.dataset import ColumnMapping, Dataset, Filters, guess_mapping, prepare
from engine.data.io import RawData, load_raw
from engine.errors import DataError
from engine.experiment import DataSpec

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """A file or folder as read: the tables and the mapping guessed from their names."""

    path: Path
    items_path: Path | None  # an item table chosen by the user, else found beside
    raw: RawData
    mapping: ColumnMapping | None  # None when no column names could be guessed
    guess_error: str = ""


def load_data(state, path: str | Path, items_path: str | Path | None = None) -> Loaded:
    """Read a dataset (interactions and, when found, items) and guess its columns."""
    path = Path(path)
    items_path = Path(items_path) if items_path else None
    # reading is most of the work: 0.05-0.9 of the bar, by the bytes read; a cancel
    # ends the read within a block of the file
    raw = load_raw(
        path,
        items_path,
        progress=lambda done, text: state.progress(0.05 + 0.85 * done, text),
    )
    state.progress(0.9, "guessing columns")
    try:
        mapping, error = guess_mapping(raw), ""
    except DataError as exc:
        mapping, error = None, str(exc)
    state.progress(1.0, "read")
    return Loaded(path, items_path, raw, mapping, error)


def prepare_data(
    state, raw: RawData, mapping: ColumnMapping, filters: Filters, name: str
) -> Dataset:
    """Map, filter and index the tables; the statistics come with the dataset."""
    state.progress(0.05, "mapping columns")
    dataset = prepare(
        raw,
        mapping,
        filters,
        name=name,
        progress=lambda done, stage: state.progress(0.05 + 0.9 * done, stage),
    )
    state.progress(1.0, "statistics ready")
    return dataset


def data_spec(loaded: Loaded, mapping: ColumnMapping, filters: Filters) -> DataSpec:
    """What the run store keeps so a worker can read the same data again."""
    return DataSpec(
        path=str(loaded.path),
        items_path=str(loaded.items_path) if loaded.items_path else None,
        mapping=mapping.to_dict(),
        filters=filters.to_dict(),
    )
