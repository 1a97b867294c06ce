"""Data: reading tables, mapping columns, filtering, splitting, statistics."""

from engine.data.dataset import ColumnMapping, Dataset, Filters, guess_mapping, prepare
from engine.data.io import RawData, load_raw, read_table
from engine.data.split import Split, leave_last_two_out

__all__ = [
    "ColumnMapping",
    "Dataset",
    "Filters",
    "RawData",
    "Split",
    "guess_mapping",
    "leave_last_two_out",
    "load_raw",
    "prepare",
    "read_table",
]
