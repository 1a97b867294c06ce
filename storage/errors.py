"""Errors the run store reports to a user."""

from engine.errors import CafeError


class StoreError(CafeError):
    """A run or file is not in the store, or not in the state an action needs."""


class UnsafePathError(StoreError):
    """A path read from the database points outside the store's data folder, or the
    file there is not the one recorded."""
