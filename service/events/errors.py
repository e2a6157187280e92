"""The one error of the event record: a record (or callback) that cannot become a valid room event."""

from __future__ import annotations


class RecordError(ValueError):
    """A record (or callback) that cannot become a valid room event."""
