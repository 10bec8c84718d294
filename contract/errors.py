"""The one error hierarchy of the event codec.

Everything the codec rejects raises a subclass of :class:`EventError` (a ``ValueError``):

- :class:`EventDecodeError`: bytes that are not a valid event. Any byte string at all either
  decodes to a valid event or raises one of these; agents catch it and dead-letter the
  message with ``type(exc).__name__`` as the error type and ``str(exc)`` as the reason.
- :class:`InvalidEventError`: a record that does not fit its schema (``encode``, ``validate``);
  :class:`InvalidRecordError` names the record, field and reason (typed records'
  ``from_record``).
- :class:`UnknownEventError`: an event name the registry does not know.
- :class:`SchemaDefinitionError`: a ``.avsc`` or history file that cannot be used.

:class:`InvalidConfigError` (a ``ValueError``, not an event error) is an impossible setting
of a step or a product figure.
"""

from __future__ import annotations


class EventError(ValueError):
    """Base of every codec error."""


class EventDecodeError(EventError):
    """Bytes that do not decode to a valid event."""


class BadMagicError(EventDecodeError):
    """Neither single-object (``C3 01``) nor Confluent (``00``) framing."""


class TruncatedEventError(EventDecodeError):
    """The bytes end before the header or the body is complete."""


class UnknownSchemaError(EventDecodeError):
    """The framing names a writer schema the registry does not hold."""


class UnknownFingerprintError(UnknownSchemaError):
    """Single-object framing with a CRC-64-AVRO fingerprint of no known schema version."""


class UnknownSchemaIdError(UnknownSchemaError):
    """Confluent framing with a schema id the resolver does not know (or no resolver)."""


class CorruptEventError(EventDecodeError):
    """The body does not parse with its writer schema (bad UTF-8, enum or union index...)."""


class TrailingBytesError(EventDecodeError):
    """The body parsed but bytes are left over after it."""


class WrongEventTypeError(EventDecodeError):
    """``decode_as`` found a valid event of another type."""


class InvalidEventError(EventError):
    """A record that does not fit its schema: wrong type, missing field, unknown field."""


class UnknownEventError(EventError, LookupError):
    """An event name the registry does not know."""


class SchemaDefinitionError(EventError):
    """A schema or history file that is unreadable, invalid, or unsafe to decode with."""


class InvalidRecordError(InvalidEventError):
    """A decoded record the typed records cannot use: a missing field, a wrong type, an unknown
    enum symbol or an impossible value (``record.field: reason``)."""

    def __init__(self, record: str, field: str, reason: str) -> None:
        super().__init__(f"{record}.{field}: {reason}")
        self.record = record
        self.field = field
        self.reason = reason


class InvalidConfigError(ValueError):
    """A step was configured with an impossible value (negative threshold, empty window...)."""
