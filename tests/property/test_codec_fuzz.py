"""Any bytes at all decode to a valid event or raise EventDecodeError, nothing else.

Over 10,000 inputs per run: hypothesis ``binary()`` (raw and behind a valid header), and
deterministic mutations of a valid encoding of every event type: every truncation, every
single-bit flip, appended bytes and random splices.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contract import (
    Codec,
    Decoded,
    EventDecodeError,
    InMemorySchemaIds,
    SchemaRegistry,
    TrailingBytesError,
    TruncatedEventError,
)
from contract.testing.strategies import records

REGISTRY = SchemaRegistry.load()
CODEC = Codec(REGISTRY, InMemorySchemaIds.for_registry(REGISTRY))
EVENTS = REGISTRY.names()


def _decode_or_typed_error(data: bytes) -> Decoded | EventDecodeError:
    """The outcome, asserting that a decoded event is a valid one (strict validation)."""
    error: EventDecodeError | None
    try:
        decoded = CODEC.decode(data)
    except EventDecodeError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert str(error)  # every error says what is wrong
        return error
    CODEC.validate(decoded.name, decoded.record)
    # a valid event re-encodes, and its canonical encoding is a fixpoint
    again = CODEC.encode(decoded.name, decoded.record)
    assert CODEC.encode(decoded.name, CODEC.decode(again).record) == again
    return decoded


def _mutations(valid: bytes, rng: random.Random) -> Iterator[bytes]:
    for cut in range(len(valid)):
        yield valid[:cut]
    for bit in range(len(valid) * 8):
        flipped = bytearray(valid)
        flipped[bit // 8] ^= 1 << (bit % 8)
        yield bytes(flipped)
    for extra in (b"\x00", b"\xff", b"\x00" * 8, rng.randbytes(16)):
        yield valid + extra
    for _ in range(50):
        start = rng.randrange(10, len(valid))
        yield valid[:start] + rng.randbytes(rng.randrange(1, 12)) + valid[start:]
        yield valid[:start] + valid[rng.randrange(start, len(valid)) :]


@pytest.mark.parametrize("name", EVENTS)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_data=st.data())
def test_mutated_encodings_decode_or_raise_typed_error(
    name: str, record_data: st.DataObject
) -> None:
    record = record_data.draw(records(REGISTRY.current(name).raw))
    valid = CODEC.encode(name, record)
    rng = random.Random(f"{name}-{len(valid)}")
    outcomes = [_decode_or_typed_error(data) for data in _mutations(valid, rng)]
    assert len(outcomes) > 100
    truncations = outcomes[: len(valid)]
    assert all(isinstance(o, EventDecodeError) for o in truncations)
    appended = outcomes[len(valid) * 9 : len(valid) * 9 + 4]
    assert all(isinstance(o, TrailingBytesError) for o in appended)


@settings(max_examples=2500, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    _decode_or_typed_error(data)


@settings(max_examples=2500, deadline=None)
@given(st.sampled_from(EVENTS), st.binary(max_size=200))
def test_arbitrary_body_behind_a_valid_header(name: str, body: bytes) -> None:
    header = b"\xc3\x01" + REGISTRY.current(name).fingerprint
    outcome = _decode_or_typed_error(header + body)
    if isinstance(outcome, Decoded):
        assert outcome.name == name


@pytest.mark.parametrize(
    ("name", "body"),
    [
        # a string length of 2**62 after the uuid's length byte: no giant allocation
        ("SiteTelemetry", b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"),
        # SiteFault: uuid, time, null ingest, site id, then an array claiming 2**62 items
        (
            "SiteFault",
            b"\x48" + b"0" * 36 + b"\x02\x00\x02s" + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f",
        ),
        # a negative array block count with a byte size, then nothing
        ("FleetState", b"\x48" + b"0" * 36 + b"\x02\x00\x02f\x02\x02\x02" + b"\x03\x80\x01"),
    ],
)
def test_huge_claimed_lengths_are_truncation_not_allocation(name: str, body: bytes) -> None:
    header = b"\xc3\x01" + REGISTRY.current(name).fingerprint
    with pytest.raises(EventDecodeError):
        CODEC.decode(header + body)


@settings(max_examples=20, deadline=None)
@given(records(REGISTRY.current("SiteTelemetry").raw), st.integers(0, 9))
def test_a_cut_header_is_truncation(record: dict[str, Any], cut: int) -> None:
    valid = CODEC.encode("SiteTelemetry", record)
    if cut > 0:
        with pytest.raises(TruncatedEventError):
            CODEC.decode(valid[:cut])
    else:
        assert CODEC.decode(valid).name == "SiteTelemetry"
