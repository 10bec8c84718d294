"""Kafka record -> archive row: decoding, JSON conventions, errors kept (pure, no Kafka)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import (
    PayloadEncodingError,
    RawRecord,
    decode_row,
    headers_from_json,
    headers_json,
    payload_json,
    timestamp_micros,
)
from analytics.testing.synthetic import SyntheticLog, synthetic_records


def _raw(value: bytes | None, offset: int = 0) -> RawRecord:
    return RawRecord("site.telemetry", 0, offset, 1_790_000_000_000, b"site-1", value)


def test_a_valid_event_is_decoded_into_columns_and_json() -> None:
    decoder, errors = codec_decoder()
    log = SyntheticLog(sites=1, samples=10)
    records = list(synthetic_records(log))
    late = records[9]  # late_every=10: the 10th sample carries an ingest_time
    row = decode_row(late, decoder, errors)
    assert row.error_type is None
    assert row.event_name == "SiteTelemetry"
    assert row.event_time_us == (log.start_ms + 9 * log.period_ms) * 1000
    assert row.ingest_time_us == row.event_time_us + log.late_ms * 1000
    assert row.payload_json is not None
    payload = json.loads(row.payload_json)
    assert payload["site_id"] == "site-00000"
    assert payload["event_time"] == row.event_time_us
    uuid.UUID(payload["event_id"])
    on_time = decode_row(records[0], decoder, errors)
    assert on_time.ingest_time_us is None


@pytest.mark.parametrize(
    ("value", "error_type"),
    [
        (b"", "TruncatedEventError"),
        (b"\x07garbage", "BadMagicError"),
        (b"\xc3\x01" + b"\x00" * 8 + b"body", "UnknownFingerprintError"),
        (None, "Tombstone"),
    ],
)
def test_undecodable_values_are_archived_with_their_error(
    value: bytes | None, error_type: str
) -> None:
    decoder, errors = codec_decoder()
    row = decode_row(_raw(value), decoder, errors)
    assert row.error_type == error_type
    assert row.error_reason
    assert row.payload_json is None
    assert row.raw.value == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), 1_000_005),
        (datetime(1970, 1, 1, 0, 0, 1), 1_000_000),
        (1_790_000_000_000_000, 1_790_000_000_000_000),
        (None, None),
    ],
)
def test_timestamp_micros(value: object, expected: int | None) -> None:
    assert timestamp_micros(value) == expected


@pytest.mark.parametrize("value", ["2026-01-01", 1.5, True])
def test_timestamp_micros_refuses_non_timestamps(value: object) -> None:
    with pytest.raises(PayloadEncodingError, match="not a timestamp"):
        timestamp_micros(value)


def test_payload_json_conventions() -> None:
    record = {
        "t": datetime(1970, 1, 1, 0, 0, 2, tzinfo=UTC),
        "d": date(1970, 1, 11),
        "u": uuid.UUID(int=1),
        "b": b"\x00\xff",
        "n": None,
        "nested": {"xs": [1, 2.5, "s"]},
    }
    assert json.loads(payload_json(record)) == {
        "t": 2_000_000,
        "d": 10,
        "u": "00000000-0000-0000-0000-000000000001",
        "b": "00ff",
        "n": None,
        "nested": {"xs": [1, 2.5, "s"]},
    }


def test_payload_json_refuses_unknown_types() -> None:
    with pytest.raises(PayloadEncodingError, match="set"):
        payload_json({"x": {1, 2}})


@given(
    st.lists(
        st.tuples(st.text(min_size=1, max_size=20), st.none() | st.binary(max_size=40)),
        max_size=5,
    ).map(tuple)
)
def test_headers_round_trip(headers: tuple[tuple[str, bytes | None], ...]) -> None:
    """A null header value stays null (Kafka tells it from an empty one), an empty one empty."""
    assert headers_from_json(headers_json(headers)) == headers
