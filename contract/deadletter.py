"""Dead letters: the DeadLetter record (contract/ops/DeadLetter.avsc) of a message a consumer
could not decode or found invalid, for every layer (the streams worker's agents, the edge
bridge's command consumer). Pure.

``error_type`` is the exception's class name (e.g. ``InvalidRecordError``, or the codec's
``TruncatedEvent``/``UnknownFingerprint``); ``reason`` is its message (never empty, capped at
``MAX_REASON_CHARS``). The original key and value bytes are kept unchanged. The event id is
derived from (topic, partition, offset): a re-processed bad message gives the same dead
letter (uuid5 in the project's namespace, the same as ``streams.steps.ids.derived_id``).
"""

from __future__ import annotations

import uuid
from typing import Any

from contract.errors import InvalidRecordError

MAX_REASON_CHARS = 2000
#: the project's uuid5 namespace (streams.steps.ids.NAMESPACE: fixed forever)
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flowerhub:streams")


def derived_id(*parts: object) -> str:
    """A uuid5 over the parts joined with ``|``."""
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))


def build_dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: BaseException,
    consumer: str,
    now: int,
    event_time: int | None = None,
) -> dict[str, Any]:
    """The DeadLetter record dict. ``now`` (microseconds) is when it was rejected; the event
    time is the original message timestamp when known (``ingest_time`` is then ``now``)."""
    n = "DeadLetter"
    if not topic:
        raise InvalidRecordError(n, "source_topic", "empty topic name")
    if partition < 0:
        raise InvalidRecordError(n, "partition", f"must be >= 0, got {partition}")
    if offset < 0:
        raise InvalidRecordError(n, "offset", f"must be >= 0, got {offset}")
    if not consumer:
        raise InvalidRecordError(n, "consumer", "empty consumer name")
    if key is not None and not isinstance(key, bytes | bytearray | memoryview):
        raise InvalidRecordError(n, "key", f"expected bytes or None, got {type(key).__name__}")
    if value is not None and not isinstance(value, bytes | bytearray | memoryview):
        raise InvalidRecordError(n, "original", f"expected bytes, got {type(value).__name__}")
    reason = str(error) or repr(error)
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return {
        "event_id": derived_id("dead-letter", topic, partition, offset),
        "event_time": now if event_time is None else event_time,
        "ingest_time": None if event_time is None else now,
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "key": None if key is None else bytes(key),
        "original": b"" if value is None else bytes(value),
        "error_type": type(error).__name__,
        "reason": reason,
        "consumer": consumer,
    }
