"""The event contract (``<domain>/*.avsc``, authoritative) and its codec.

Call ``encode``/``decode``/``decode_as``/``validate``/``new_event`` (default registry over
this package's schemas), or build a :class:`Codec` over another :class:`SchemaRegistry`.
See ``contract/README.md`` for naming, units, framing and the compatibility policy.
"""

from contract.codec import (
    Codec,
    Decoded,
    InMemorySchemaIds,
    SchemaIdResolver,
    decode,
    decode_as,
    decode_raw,
    default_codec,
    encode,
    new_event,
    raw_codec,
    validate,
)
from contract.errors import (
    BadMagicError,
    CorruptEventError,
    EventDecodeError,
    EventError,
    InvalidEventError,
    SchemaDefinitionError,
    TrailingBytesError,
    TruncatedEventError,
    UnknownEventError,
    UnknownFingerprintError,
    UnknownSchemaError,
    UnknownSchemaIdError,
    WrongEventTypeError,
)
from contract.registry import EventSchema, SchemaRegistry

__all__ = [
    "BadMagicError",
    "Codec",
    "CorruptEventError",
    "Decoded",
    "EventDecodeError",
    "EventError",
    "EventSchema",
    "InMemorySchemaIds",
    "InvalidEventError",
    "SchemaDefinitionError",
    "SchemaIdResolver",
    "SchemaRegistry",
    "TrailingBytesError",
    "TruncatedEventError",
    "UnknownEventError",
    "UnknownFingerprintError",
    "UnknownSchemaError",
    "UnknownSchemaIdError",
    "WrongEventTypeError",
    "decode",
    "decode_as",
    "decode_raw",
    "default_codec",
    "encode",
    "new_event",
    "raw_codec",
    "validate",
]
