"""Field readers shared by the ``from_record`` helpers: one typed error for every bad input.

Records come from the Avro codec as dicts. Timestamps (``timestamp-micros``) may arrive as
``int`` microseconds or as timezone-aware ``datetime`` (fastavro's default); uuids as ``str``
or ``uuid.UUID``. Inside the steps every instant is ``int`` microseconds since the epoch (UTC).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from contract.errors import InvalidRecordError

E = TypeVar("E", bound=StrEnum)

MICROS_PER_S = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _get(rec: Mapping[str, Any], name: str, field: str) -> Any:
    if not isinstance(rec, Mapping):
        raise InvalidRecordError(name, "<record>", f"expected a mapping, got {type(rec).__name__}")
    if field not in rec:
        raise InvalidRecordError(name, field, "missing")
    return rec[field]


def micros_value(value: Any, name: str, field: str) -> int:
    """Convert an Avro timestamp-micros value (int or aware datetime) to int microseconds."""
    if isinstance(value, bool):
        raise InvalidRecordError(name, field, "expected a timestamp, got bool")
    if isinstance(value, int):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidRecordError(name, field, "naive datetime (no timezone)")
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * MICROS_PER_S + delta.microseconds
    raise InvalidRecordError(name, field, f"expected a timestamp, got {type(value).__name__}")


def micros(rec: Mapping[str, Any], name: str, field: str) -> int:
    return micros_value(_get(rec, name, field), name, field)


def opt_micros(rec: Mapping[str, Any], name: str, field: str) -> int | None:
    value = rec.get(field)
    return None if value is None else micros_value(value, name, field)


def text(rec: Mapping[str, Any], name: str, field: str, *, default: str | None = None) -> str:
    if default is not None and field not in rec:
        return default
    value = _get(rec, name, field)
    if not isinstance(value, str):
        raise InvalidRecordError(name, field, f"expected a string, got {type(value).__name__}")
    return value


def nonempty_text(rec: Mapping[str, Any], name: str, field: str) -> str:
    value = text(rec, name, field)
    if not value:
        raise InvalidRecordError(name, field, "empty string")
    return value


def opt_text(rec: Mapping[str, Any], name: str, field: str) -> str | None:
    value = rec.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRecordError(
            name, field, f"expected a string or null, got {type(value).__name__}"
        )
    return value


def uuid_text(rec: Mapping[str, Any], name: str, field: str) -> str:
    value = _get(rec, name, field)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise InvalidRecordError(name, field, f"not a uuid: {value!r}") from None
    raise InvalidRecordError(name, field, f"expected a uuid, got {type(value).__name__}")


def number_value(value: Any, name: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRecordError(name, field, f"expected a number, got {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise InvalidRecordError(name, field, f"not finite: {result}")
    return result


def number(rec: Mapping[str, Any], name: str, field: str, *, default: float | None = None) -> float:
    if default is not None and field not in rec:
        return default
    return number_value(_get(rec, name, field), name, field)


def nonneg(rec: Mapping[str, Any], name: str, field: str, *, default: float | None = None) -> float:
    value = number(rec, name, field, default=default)
    if value < 0:
        raise InvalidRecordError(name, field, f"must be >= 0, got {value}")
    return value


def opt_number(rec: Mapping[str, Any], name: str, field: str) -> float | None:
    value = rec.get(field)
    return None if value is None else number_value(value, name, field)


def integer(rec: Mapping[str, Any], name: str, field: str, *, default: int | None = None) -> int:
    if default is not None and field not in rec:
        return default
    value = _get(rec, name, field)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecordError(name, field, f"expected an int, got {type(value).__name__}")
    return value


def boolean(rec: Mapping[str, Any], name: str, field: str, *, default: bool | None = None) -> bool:
    if default is not None and field not in rec:
        return default
    value = _get(rec, name, field)
    if not isinstance(value, bool):
        raise InvalidRecordError(name, field, f"expected a boolean, got {type(value).__name__}")
    return value


def symbol(
    rec: Mapping[str, Any], name: str, field: str, enum: type[E], *, default: E | None = None
) -> E:
    if default is not None and field not in rec:
        return default
    value = _get(rec, name, field)
    if isinstance(value, enum):
        return value
    if not isinstance(value, str):
        raise InvalidRecordError(
            name, field, f"expected an enum symbol, got {type(value).__name__}"
        )
    try:
        return enum(value)
    except ValueError:
        raise InvalidRecordError(name, field, f"unknown {enum.__name__} symbol {value!r}") from None


def check_window(name: str, start_field: str, start: int, end_field: str, end: int) -> None:
    if end <= start:
        raise InvalidRecordError(name, end_field, f"must be after {start_field} ({end} <= {start})")
