"""Exceptions the engine raises for problems a user can fix.

Every message names the file, row or column at fault and says what would fix it, so the
command line and the workbench can show it as it is, without a traceback.
"""


class CafeError(Exception):
    """Base class of every error the engine reports to a user."""


class DataError(CafeError):
    """The input data cannot be read, mapped or prepared as asked."""


class ConfigError(CafeError):
    """A model or training configuration is invalid (unknown key, bad value)."""


class CheckpointError(CafeError):
    """A checkpoint is missing, unreadable, or does not match its run."""


class DivergedError(CafeError):
    """Training produced a loss that is not a finite number."""
