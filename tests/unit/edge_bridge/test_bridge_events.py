"""Records in and out: SiteCommand round trip through the project codec, fault diffs, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.codec import default_codec
from edge.bridge.events import (
    COMMAND,
    FAULT,
    RESULT,
    STATUS,
    TELEMETRY,
    LinkStatus,
    Outcome,
    TelemetryContext,
    command_from_record,
    command_record,
    fault_record,
    result_record,
    status_record,
    telemetry_record,
)
from edge.bridge.model import BridgeCommand, BridgeInputError, Cause, Kind, Product, ReserveParams
from edge.bridge.model import Status as CmdStatus
from edge.hal.points import Fault, FaultSource, Identity, Mode, Severity, Telemetry

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CODEC = default_codec()
A = Fault(FaultSource.INVERTER, "x.a", "A", Severity.MAJOR)
B = Fault(FaultSource.BMS, "x.b", "B", Severity.MINOR)


def roundtrip(cmd: BridgeCommand) -> BridgeCommand:
    return command_from_record(CODEC.decode_as(COMMAND, CODEC.encode(COMMAND, command_record(cmd))))


@given(
    kind=st.sampled_from([Kind.SET_POWER, Kind.STOP, Kind.SAFE_MODE]),
    power=st.floats(-50, 50, allow_nan=False),
    valid_ms=st.integers(-10_000, 10_000_000),
)
def test_command_roundtrip(kind: Kind, power: float, valid_ms: int) -> None:
    cmd = BridgeCommand(
        command_id="c-1",
        site_id="s1",
        kind=kind,
        event_time=T0,
        valid_until=T0 + timedelta(milliseconds=valid_ms),
        power_kw=power if kind is Kind.SET_POWER else None,
        event_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    )
    assert roundtrip(cmd) == cmd


def test_arm_reserve_roundtrip() -> None:
    cmd = BridgeCommand(
        "c-2",
        "s1",
        Kind.ARM_RESERVE,
        T0,
        T0 + timedelta(minutes=5),
        reserve=ReserveParams(Product.FCR_N, 3.0, 50.0, 49.9, 0.01, True),
        event_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    )
    assert roundtrip(cmd) == cmd


def _good() -> dict[str, Any]:
    return command_record(BridgeCommand("c", "s", Kind.STOP, T0, T0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "DANCE"}, "DANCE"),
        ({"kind": "SET_POWER"}, "needs power_kw"),
        ({"kind": "ARM_RESERVE"}, "reserve"),
        ({"valid_until": "tomorrow"}, "valid_until"),
        ({"command_id": ""}, "command_id"),
        (
            {
                "kind": "ARM_RESERVE",
                "reserve": {
                    "product": "AFRR",
                    "capacity_kw": 1.0,
                    "f_start_hz": 50.0,
                    "f_full_hz": 49.9,
                },
            },
            "not a frequency-responsive",
        ),
    ],
)
def test_bad_command_records(change: dict[str, Any], message: str) -> None:
    rec = {**_good(), **change}
    with pytest.raises(BridgeInputError, match=message):
        command_from_record(rec)


def test_missing_field() -> None:
    rec = _good()
    del rec["site_id"]
    with pytest.raises(BridgeInputError, match="site_id"):
        command_from_record(rec)


@pytest.mark.parametrize(
    ("active", "previous", "raised", "cleared"),
    [
        ([A], [], ["x.a"], []),
        ([A, B], [A], ["x.b"], []),
        ([B], [A], ["x.b"], ["x.a"]),
        ([], [A, B], [], ["x.a", "x.b"]),
    ],
)
def test_fault_diff(
    active: list[Fault], previous: list[Fault], raised: list[str], cleared: list[str]
) -> None:
    rec = fault_record("s1", active, previous, T0)
    CODEC.validate(FAULT, rec)
    assert [f["code"] for f in rec["raised"]] == raised
    assert [f["code"] for f in rec["cleared"]] == cleared
    assert [f["code"] for f in rec["active"]] == [f.code for f in active]


def test_outgoing_records_match_the_schemas() -> None:
    out = Outcome("c", "s1", CmdStatus.CLAMPED, 9.0, 5.0, 4.9, 50.0, Cause.SITE_LIMIT, "r", 4, 12.5)
    CODEC.validate(RESULT, result_record(out, T0))
    tel = Telemetry(1.0, 50.0, -0.5, 2.0, 1.5, 49.98, 5.0, 5.0, 10.0, Mode.FORCED)
    ctx = TelemetryContext(4.0, 6.0, 5.0, 5.0, 1.0, "c", Product.FCR_N, False)
    ident = Identity("oem", "model", "sn", "fw")
    rec = telemetry_record("s1", ident, tel, ctx, T0)
    CODEC.validate(TELEMETRY, rec)
    assert (rec["headroom_up_kw"], rec["reserve_armed"], rec["mode"]) == (4.0, "FCR_N", "FORCED")
    empty = Telemetry(None, None, None, None, None, None, None, None, None, Mode.UNKNOWN)
    CODEC.validate(TELEMETRY, telemetry_record("s1", None, empty, ctx, T0))
    st_ = LinkStatus("ONLINE", "h", 502, 1, "sn", 0, None, 3.0, 2, 0)
    CODEC.validate(STATUS, status_record("s1", st_, T0))
    assert st_.changed(None)
    assert not st_.changed(LinkStatus("ONLINE", "h", 502, 1, "sn", 5, "e", 9.0, 7, 1))
    assert st_.changed(LinkStatus("OFFLINE", "h", 502, 1, "sn", 0, None, 3.0, 2, 0))
