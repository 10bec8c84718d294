"""``plain.branch_encoder`` against the raw codec: the same bytes for every record of every
event (a union of null and a record named by its branch, or not), the same error for a
record the codec refuses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract import Codec, SchemaRegistry
from contract.codec import raw_codec
from contract.errors import InvalidEventError
from contract.testing.strategies import records
from streams.steps.plain import branch_encoder, record_unions

REGISTRY = SchemaRegistry.load()
LOGICAL = Codec(REGISTRY)
RAW = Codec(REGISTRY, logical_types=False)
EVENTS = sorted(REGISTRY.names())


def _outcome(fn: Callable[[], bytes]) -> str:
    try:
        return fn().hex()
    except InvalidEventError as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EVENTS), st.data())
def test_the_same_bytes_as_the_raw_codec(name: str, data: st.DataObject) -> None:
    record = data.draw(records(REGISTRY.current(name).raw))
    plain = RAW.decode(LOGICAL.encode(name, record)).record  # as to_record() gives it
    assert branch_encoder(name)(plain) == raw_codec().encode(name, plain)


def test_reserve_unions_are_named() -> None:
    assert record_unions("SiteCommand") == (("reserve", "flowerhub.ReserveArm"),)
    assert record_unions("SiteSetpoint") == (("reserve", "flowerhub.ReserveArm"),)
    assert record_unions("SiteTelemetry") == ()


@pytest.mark.parametrize(
    "reserve",
    [
        {"product": "FCR_X", "capacity_kw": 1.0, "f_start_hz": 50.0, "f_full_hz": 49.9},
        {"product": "FCR_N", "capacity_kw": "a lot", "f_start_hz": 50.0, "f_full_hz": 49.9},
        {"product": "FCR_N"},
    ],
)
def test_a_refused_record_gets_the_codecs_own_error(reserve: dict[str, Any]) -> None:
    record = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_time": 1,
        "ingest_time": None,
        "site_id": "s",
        "command_id": "c",
        "setpoint_id": None,
        "kind": "ARM_RESERVE",
        "power_kw": None,
        "reserve": reserve,
        "valid_until": 2,
        "issued_by": "x",
        "product": None,
    }
    ours = _outcome(lambda: branch_encoder("SiteCommand")(record))
    assert ours.startswith("InvalidEventError")
    assert ours == _outcome(lambda: raw_codec().encode("SiteCommand", record))
