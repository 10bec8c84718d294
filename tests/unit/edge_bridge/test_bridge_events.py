"""Records in and out: SiteCommand round trip through the project codec, fault diffs, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.codec import default_codec
from contract.enums import CommandKind, DeviceState, FaultSource, Product, Severity, SiteMode
from contract.enums import CommandStatus as CmdStatus
from contract.records import ReserveArm
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
    unusable,
)
from edge.bridge.model import BridgeCommand, BridgeInputError, Cause
from edge.hal.points import Fault, Identity, Telemetry

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CODEC = default_codec()
A = Fault(FaultSource.INVERTER, "x.a", "A", Severity.MAJOR)
B = Fault(FaultSource.BMS, "x.b", "B", Severity.MINOR)


def roundtrip(cmd: BridgeCommand) -> BridgeCommand:
    return command_from_record(CODEC.decode_as(COMMAND, CODEC.encode(COMMAND, command_record(cmd))))


@given(
    kind=st.sampled_from([CommandKind.SET_POWER, CommandKind.STOP, CommandKind.SAFE_MODE]),
    power=st.floats(-50, 50, allow_nan=False),
    valid_ms=st.integers(-10_000, 10_000_000),
)
def test_command_roundtrip(kind: CommandKind, power: float, valid_ms: int) -> None:
    cmd = BridgeCommand(
        command_id="c-1",
        site_id="s1",
        kind=kind,
        event_time=T0,
        valid_until=T0 + timedelta(milliseconds=valid_ms),
        power_kw=power if kind is CommandKind.SET_POWER else None,
        event_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    )
    assert roundtrip(cmd) == cmd


def test_arm_reserve_roundtrip() -> None:
    cmd = BridgeCommand(
        "c-2",
        "s1",
        CommandKind.ARM_RESERVE,
        T0,
        T0 + timedelta(minutes=5),
        reserve=ReserveArm(Product.FCR_N, 3.0, 50.0, 49.9, 0.01, True),
        event_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    )
    assert roundtrip(cmd) == cmd


@pytest.mark.parametrize(
    ("kind", "product", "power"),
    [
        (CommandKind.DISARM_RESERVE, Product.FCR_D_DOWN, None),
        (CommandKind.ORDER, Product.MFRR, -2.5),
        (CommandKind.ORDER, Product.AFRR, 0.0),
    ],
)
def test_disarm_and_order_roundtrip(
    kind: CommandKind, product: Product, power: float | None
) -> None:
    cmd = BridgeCommand(
        "c-3",
        "s1",
        kind,
        T0,
        T0 + timedelta(minutes=5),
        power_kw=power,
        product=product,
        event_id="0f8fad5b-d9cb-469f-a165-70867728950e",
    )
    assert roundtrip(cmd) == cmd
    assert cmd.concerns is product


def test_an_unusable_record_is_identified_for_its_rejection() -> None:
    rec = {**_good(), "kind": "ORDER", "power_kw": 1.0, "product": "FCR_N"}
    with pytest.raises(BridgeInputError) as err:
        command_from_record(rec)
    bad = unusable(rec, err.value, T0)
    assert bad is not None
    assert (bad.command_id, bad.site_id, bad.valid_until) == ("c", "s", T0)
    assert bad.reason.startswith("invalid command: ORDER needs product")
    nameless = {**rec, "command_id": ""}
    assert unusable(nameless, err.value, T0) is None


def _good() -> dict[str, Any]:
    return command_record(BridgeCommand("c", "s", CommandKind.STOP, T0, T0))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "DANCE"}, "DANCE"),
        ({"kind": "SET_POWER"}, "power_kw: required for SET_POWER"),
        ({"kind": "ORDER", "power_kw": 1.0}, "product: required for ORDER"),
        ({"kind": "ORDER", "power_kw": 1.0, "product": "FCR_N"}, "ORDER needs product one of"),
        ({"kind": "DISARM_RESERVE", "product": "MFRR"}, "DISARM_RESERVE needs product"),
        ({"kind": "SET_POWER", "power_kw": float("nan")}, "power_kw: not finite"),
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
        (
            {
                "kind": "ARM_RESERVE",
                "reserve": {
                    "product": "FCR_N",
                    "capacity_kw": 1.0,
                    "f_start_hz": 50.0,
                    "f_full_hz": 49.9,
                    "symmetric": False,
                },
            },
            "FCR_N responds both ways",
        ),
        (
            {
                "kind": "ARM_RESERVE",
                "reserve": {
                    "product": "FCR_D_UP",
                    "capacity_kw": -1.0,
                    "f_start_hz": 49.9,
                    "f_full_hz": 49.5,
                },
            },
            "capacity_kw: must be >= 0",
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
    tel = Telemetry(1.0, 50.0, -0.5, 2.0, 1.5, 49.98, 5.0, 5.0, 10.0, SiteMode.FORCED)
    ctx = TelemetryContext(
        4.0,
        6.0,
        5.0,
        5.0,
        1.0,
        "c",
        Product.FCR_N,
        False,
        baseline_kw=0.5,
        armed_kw={Product.FCR_N: 1.0, Product.FCR_D_UP: 2.0},
        order_kw={Product.MFRR: -1.5},
    )
    ident = Identity("oem", "model", "sn", "fw")
    rec = telemetry_record("s1", ident, tel, ctx, T0)
    CODEC.validate(TELEMETRY, rec)
    assert (rec["headroom_up_kw"], rec["reserve_armed"], rec["mode"]) == (4.0, "FCR_N", "FORCED")
    stacked = ("baseline_kw", "armed_fcr_n_kw", "armed_fcr_d_up_kw", "armed_fcr_d_down_kw")
    assert [rec[k] for k in stacked] == [0.5, 1.0, 2.0, 0.0]
    assert (rec["armed_ffr_kw"], rec["order_afrr_kw"], rec["order_mfrr_kw"]) == (0.0, 0.0, -1.5)
    empty = Telemetry(None, None, None, None, None, None, None, None, None, SiteMode.UNKNOWN)
    CODEC.validate(TELEMETRY, telemetry_record("s1", None, empty, ctx, T0))
    online, offline = DeviceState.ONLINE, DeviceState.OFFLINE
    st_ = LinkStatus(online, "h", 502, 1, "sn", 0, None, 3.0, 2, 0)
    CODEC.validate(STATUS, status_record("s1", st_, T0))
    assert st_.changed(None)
    assert not st_.changed(LinkStatus(online, "h", 502, 1, "sn", 5, "e", 9.0, 7, 1))
    assert st_.changed(LinkStatus(offline, "h", 502, 1, "sn", 0, None, 3.0, 2, 0))
