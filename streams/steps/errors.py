"""Typed errors raised by the pure steps.

An agent catches :class:`InvalidEvent` (and its subclasses) and sends the event to
``deadletter`` with ``error_type = type(exc).__name__``; it never dies of bad input.
"""

from __future__ import annotations


class InvalidEvent(ValueError):  # noqa: N818  # the name is the DeadLetter error_type
    """A record is missing a field, has a wrong type, an unknown enum symbol or a bad value."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        super().__init__(f"{record}.{field}: {reason}")
        self.record = record
        self.field = field
        self.reason = reason


class InvalidConfig(ValueError):  # noqa: N818  # named like InvalidEvent
    """A step was configured with an impossible value (negative threshold, empty window...)."""
