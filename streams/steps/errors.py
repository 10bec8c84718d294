"""Typed errors raised by the pure steps.

:class:`InvalidRecordError` is a :class:`schemas.errors.InvalidEventError` (so an
``EventError``): an agent catches ``schemas.errors.EventError`` around decode + step and
sends the event to ``deadletter`` with ``error_type = type(exc).__name__``; it never dies of
bad input.
"""

from __future__ import annotations

from schemas.errors import InvalidEventError


class InvalidRecordError(InvalidEventError):
    """A decoded record a step cannot use: a missing field, a wrong type, an unknown enum
    symbol or an impossible value (``record.field: reason``)."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        super().__init__(f"{record}.{field}: {reason}")
        self.record = record
        self.field = field
        self.reason = reason


class InvalidConfigError(ValueError):
    """A step was configured with an impossible value (negative threshold, empty window...)."""
