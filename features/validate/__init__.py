"""Row validation with quarantine: every row read is accepted, a duplicate, or quarantined.

The checks of a table are data (:class:`RowCheck`: a column, a reason and a failing condition),
evaluated together in one vectorised pass. The first failing check of a row is its reason. Rows
that fail go to a quarantine CSV with their original values, row number and reason, so nothing
is lost; exact repeats of an earlier valid row are counted as duplicates; the counts always add
up: ``rows_read == accepted + duplicates + quarantined``.

Some sources have rows that are invalid by design (Online Retail's cancellations and rows
without a customer). A :class:`~features.presets.Preset` declares those reasons as *expected*:
they are quarantined and counted like any other, but do not count towards the bad-share cap,
which exists to catch a wrong file or a wrong column mapping.

The package is the loaders of the three tables (:mod:`~features.validate.interactions`,
:mod:`~features.validate.keyed_tables`) over one engine that runs the checks, quarantines and
counts (:mod:`~features.validate.quarantine`).
"""

from features.validate.interactions import EVENT_ALIASES, load_interactions
from features.validate.keyed_tables import load_items, load_members
from features.validate.quarantine import (
    DEFAULT_MAX_BAD_SHARE,
    ValidatedTable,
    ValidationReport,
    default_quarantine_path,
)

__all__ = [
    "DEFAULT_MAX_BAD_SHARE",
    "EVENT_ALIASES",
    "ValidatedTable",
    "ValidationReport",
    "default_quarantine_path",
    "load_interactions",
    "load_items",
    "load_members",
]
