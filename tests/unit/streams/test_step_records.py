"""Step records against the Avro contract: every ``to_record`` encodes with the real schema
(fastavro) and decodes back through ``from_record`` unchanged; bad input is a typed error."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest

from contract.codec import decode_as, encode
from contract.enums import (
    ActivationKind,
    CommandKind,
    CommandStatus,
    Finding,
    Product,
    SiteMode,
    VerdictStatus,
)
from contract.errors import EventError, InvalidEventError, InvalidRecordError
from contract.records import (
    CommandResult,
    ComplianceVerdict,
    FleetSetpoint,
    FleetState,
    MarketActivation,
    OemState,
    ReserveArm,
    ReserveAssignment,
    SiteCommand,
    SiteSetpoint,
    SiteTelemetry,
)
from streams.steps.deadletter import MAX_REASON_CHARS, build_dead_letter

SCHEMAS = Path(__file__).resolve().parents[3] / "contract"
S = 1_000_000
T0 = 1_700_000_000 * S
UUID = "0a1b2c3d-0000-4000-8000-000000000001"
ARM = ReserveArm(Product.FCR_N, 7.5, 50.0, 49.9, 0.01, symmetric=True)

SAMPLES: list[tuple[str, Any]] = [
    (
        "site/SiteSetpoint.avsc",
        SiteSetpoint(UUID, T0, "site-1", "sp-1", CommandKind.ARM_RESERVE, T0 + S, reserve=ARM),
    ),
    (
        "site/SiteCommand.avsc",
        SiteCommand(
            event_id=UUID, event_time=T0, site_id="site-1", command_id="c-1",
            kind=CommandKind.SET_POWER, valid_until=T0 + S, setpoint_id="sp-1", power_kw=-3.5,
        ),
    ),
    (
        "site/SiteTelemetry.avsc",
        SiteTelemetry(
            event_id=UUID,
            event_time=T0,
            site_id="site-1",
            oem="sungrow",
            model="SH10RT",
            battery_power_kw=2.5,
            soc_pct=55.0,
            grid_power_kw=1.0,
            pv_power_kw=3.0,
            load_kw=0.5,
            headroom_up_kw=4.0,
            headroom_down_kw=6.0,
            max_discharge_kw=10.0,
            max_charge_kw=10.0,
            mode=SiteMode.REMOTE,
            frequency_hz=49.98,
            reserve_armed=Product.FCR_D_UP,
            ingest_time=T0 + 5,
        ),
    ),
    (
        "site/CommandResult.avsc",
        CommandResult(
            event_id=UUID, event_time=T0, site_id="site-1", command_id="c-1",
            status=CommandStatus.CLAMPED, requested_kw=5.0, written_kw=4.0, measured_kw=3.9,
        ),
    ),
    (
        "market/FleetSetpoint.avsc",
        FleetSetpoint(
            event_id=UUID, event_time=T0, fleet_id="fleet", setpoint_id="fs-1", target_mw=12.5,
            valid_from=T0, valid_until=T0 + 60 * S, product=Product.NONE, source="optimiser",
        ),
    ),
    (
        "market/MarketActivation.avsc",
        MarketActivation(
            UUID, T0, "fleet", "a-1", Product.MFRR, ActivationKind.ORDER, -3.0, T0, T0 + S
        ),
    ),
    (
        "market/ReserveAssignment.avsc",
        ReserveAssignment(UUID, T0, "fleet", "r-1", Product.FFR, 2.0, T0, T0 + S, 49.7, 49.7),
    ),
    (
        "fleet/FleetState.avsc",
        FleetState(
            event_id=UUID, event_time=T0, fleet_id="fleet", window_start=T0, window_end=T0 + S,
            window_s=1, total_power_mw=1.5, headroom_up_mw=2.0, headroom_down_mw=3.0,
            sites_online=10, sites_faulted=1, mean_frequency_hz=50.01,
            per_oem=(OemState("huawei", 1.5, 2.0, 3.0, 10, 1),),
        ),
    ),
    (
        "fleet/ComplianceVerdict.avsc",
        ComplianceVerdict(
            event_id=UUID, event_time=T0, fleet_id="fleet", product=Product.FCR_D_UP,
            rule_id="FCRD.REQ2.DP75", rule_version="TR-2025-03-28", status=VerdictStatus.FAIL,
            finding=Finding.SLOW, required_mw=1.0, measured_mw=0.7, threshold=0.86,
            message="slow", activation_id="a-1", site_ids=("s1", "s2"),
        ),
    ),
]  # fmt: skip


def _schema(path: str) -> Any:
    return fastavro.parse_schema(json.loads((SCHEMAS / path).read_text()))


@pytest.mark.parametrize(("path", "record"), SAMPLES, ids=[p for p, _ in SAMPLES])
def test_round_trip_through_the_avro_schema(path: str, record: Any) -> None:
    buf = io.BytesIO()
    schema = _schema(path)
    fastavro.schemaless_writer(buf, schema, record.to_record())
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(decoded, dict)
    assert isinstance(decoded["event_time"], datetime)  # fastavro's logical type
    assert type(record).from_record(decoded) == record


def test_timestamps_as_datetime_are_converted_exactly() -> None:
    record = SAMPLES[1][1].to_record()
    record["event_time"] = datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert SiteCommand.from_record(record).event_time == 1_700_000_000_123_456


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "JUMP"}, "kind"),
        ({"power_kw": None}, "power_kw"),
        ({"power_kw": float("nan")}, "power_kw"),
        ({"power_kw": "5"}, "power_kw"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"event_time": "now"}, "event_time"),
        ({"event_time": datetime(2024, 1, 1)}, "event_time"),  # naive on purpose
        ({"site_id": ""}, "site_id"),
        ({"reserve": [1, 2]}, "reserve"),
    ],
)
def test_bad_site_command_fields(change: dict[str, Any], field: str) -> None:
    record = SAMPLES[1][1].to_record() | change
    with pytest.raises(InvalidRecordError) as info:
        SiteCommand.from_record(record)
    assert info.value.field == field


def test_missing_field_and_non_mapping() -> None:
    record = SAMPLES[0][1].to_record()
    del record["valid_until"]
    with pytest.raises(InvalidRecordError, match=r"SiteSetpoint\.valid_until: missing"):
        SiteSetpoint.from_record(record)
    with pytest.raises(InvalidRecordError, match="expected a mapping"):
        SiteSetpoint.from_record([])


def test_arm_reserve_needs_reserve_and_windows_must_be_ordered() -> None:
    record = SAMPLES[0][1].to_record() | {"reserve": None}
    with pytest.raises(InvalidRecordError, match="reserve"):
        SiteSetpoint.from_record(record)
    record = SAMPLES[4][1].to_record() | {"valid_until": T0 - 1}
    with pytest.raises(InvalidRecordError, match="valid_until"):
        FleetSetpoint.from_record(record)
    record = SAMPLES[2][1].to_record() | {"soc_pct": 120.0}
    with pytest.raises(InvalidRecordError, match="soc_pct"):
        SiteTelemetry.from_record(record)


def test_dead_letter_encodes_with_the_schema() -> None:
    error = InvalidRecordError("SiteTelemetry", "soc_pct", "must be within 0..100, got 120")
    record = build_dead_letter(
        topic="site.telemetry",
        partition=3,
        offset=42,
        key=b"site-1",
        value=b"\xc3\x01garbage",
        error=error,
        consumer="aggregator",
        now=T0,
    )
    assert record["error_type"] == "InvalidRecordError"
    assert record["reason"] == "SiteTelemetry.soc_pct: must be within 0..100, got 120"
    assert record["original"] == b"\xc3\x01garbage"
    buf = io.BytesIO()
    schema = _schema("ops/DeadLetter.avsc")
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, schema, schema)
    assert isinstance(decoded, dict)
    assert decoded["original"] == b"\xc3\x01garbage"
    assert decoded["key"] == b"site-1"
    again = build_dead_letter(
        topic="site.telemetry", partition=3, offset=42, key=b"site-1", value=b"x",
        error=error, consumer="aggregator", now=T0 + S,
    )  # fmt: skip
    assert again["event_id"] == record["event_id"]


def test_dead_letter_long_reason_and_bad_arguments() -> None:
    record = build_dead_letter(
        topic="t", partition=0, offset=0, key=None, value=None,
        error=ValueError("x" * 5000), consumer="c", now=T0, event_time=T0 - S,
    )  # fmt: skip
    assert len(record["reason"]) == MAX_REASON_CHARS
    assert record["original"] == b""
    assert record["ingest_time"] == T0
    assert build_dead_letter(
        topic="t", partition=0, offset=0, key=None, value=b"", error=KeyError(), consumer="c",
        now=T0,
    )["reason"] == "KeyError()"  # fmt: skip
    for kwargs in ({"topic": ""}, {"partition": -1}, {"offset": -2}, {"consumer": ""}):
        args: dict[str, Any] = {
            "topic": "t", "partition": 0, "offset": 0, "key": None, "value": b"",
            "error": ValueError("v"), "consumer": "c", "now": T0,
        } | kwargs  # fmt: skip
        with pytest.raises(InvalidRecordError):
            build_dead_letter(**args)


def test_step_errors_are_codec_event_errors() -> None:
    """One ``except contract.errors.EventError`` in an agent covers decode and step errors."""
    record = SAMPLES[1][1].to_record() | {"kind": "JUMP"}
    with pytest.raises(EventError) as info:
        SiteCommand.from_record(record)
    assert isinstance(info.value, InvalidEventError)


@pytest.mark.parametrize(("path", "record"), SAMPLES, ids=[p for p, _ in SAMPLES])
def test_round_trip_through_the_project_codec(path: str, record: Any) -> None:
    """What an agent does: ``codec.decode_as`` -> ``from_record``; ``to_record`` -> ``encode``."""
    name = path.split("/")[1].removesuffix(".avsc")
    data = encode(name, record.to_record())
    assert type(record).from_record(decode_as(name, data)) == record


def test_dead_letter_encodes_with_the_project_codec() -> None:
    record = build_dead_letter(
        topic="site.setpoints", partition=0, offset=7, key=None, value=b"\x00\x01",
        error=ValueError("bad"), consumer="setpoint-filter", now=T0,
    )  # fmt: skip
    assert decode_as("DeadLetter", encode("DeadLetter", record))["original"] == b"\x00\x01"
