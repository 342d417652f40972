"""Errors that member-recsys raises on purpose.

Every error a user can cause is a :class:`RecsysError`; the CLI prints its message and exits
non-zero, without a traceback. The message says what happened and what to do about it.

    RecsysError
    ├── DataError               a data file cannot be used as given
    │   ├── MissingColumnError  a required column is absent (names the file and the column)
    │   └── TooManyBadRowsError the share of invalid rows is above the cap
    └── ConfigError             an option or configuration value is invalid
"""

from __future__ import annotations


class RecsysError(Exception):
    """Base class of every error that carries a message meant for the user."""


class DataError(RecsysError):
    """A data file cannot be used as given."""


class MissingColumnError(DataError):
    """A required column is absent from a data file."""


class TooManyBadRowsError(DataError):
    """More rows failed validation than the configured cap allows.

    ``report`` is the load's full validation report (a dict), so that a caller asking for JSON
    still gets the counts of a load that was refused.
    """

    def __init__(self, message: str, report: dict[str, object]) -> None:
        super().__init__(message)
        self.report = report


class ConfigError(RecsysError):
    """An option or configuration value is invalid."""
