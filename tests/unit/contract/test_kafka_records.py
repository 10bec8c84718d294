"""The one ConsumerRecord -> RawRecord converter (archive, replay, probes)."""

from __future__ import annotations

from aiokafka.structs import ConsumerRecord  # type: ignore[import-untyped, unused-ignore]

from contract.kafka.records import RawRecord, raw_record


def message(headers: list[tuple[str, bytes | None]], key: bytes | None = b"k") -> object:
    return ConsumerRecord(
        topic="site.telemetry",
        partition=3,
        offset=41,
        timestamp=1_790_000_000_123,
        timestamp_type=1,
        key=key,
        value=b"v",
        checksum=None,
        serialized_key_size=1,
        serialized_value_size=1,
        headers=headers,
    )


def test_every_field_is_kept() -> None:
    got = raw_record(message([("trace", b"abc"), ("empty", b"")]))
    assert got == RawRecord(
        topic="site.telemetry",
        partition=3,
        offset=41,
        timestamp_ms=1_790_000_000_123,
        key=b"k",
        value=b"v",
        headers=(("trace", b"abc"), ("empty", b"")),
        timestamp_type=1,
    )


def test_a_null_header_value_stays_null_and_a_null_key_too() -> None:
    """Where the two old copies differed: the archiver's turned a null header value into
    b"" (a replay then republished a different record), the replay source's raised a
    TypeError on it. Kafka keeps null apart from empty, so the converter does too."""
    got = raw_record(message([("null", None), ("empty", b"")], key=None))
    assert got.headers == (("null", None), ("empty", b""))
    assert got.key is None


def test_memoryview_values_become_bytes() -> None:
    got = raw_record(message([("mv", memoryview(b"xyz"))]))  # type: ignore[list-item]
    assert got.headers == (("mv", b"xyz"),)
    assert type(got.headers[0][1]) is bytes
