"""Avro records in and out of the bridge: SiteCommand -> BridgeCommand, results and telemetry out.

Records are plain dicts in the shape of ``contract/site/*.avsc`` (field names authoritative);
``contract.codec`` encodes them. No Kafka here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from edge.bridge.model import (
    BridgeCommand,
    BridgeInputError,
    Cause,
    Kind,
    Product,
    ReserveParams,
    Status,
)
from edge.hal.points import Fault, Identity, Telemetry

COMMAND = "SiteCommand"
RESULT = "CommandResult"
TELEMETRY = "SiteTelemetry"
FAULT = "SiteFault"
STATUS = "DeviceStatus"


def _aware(value: object, name: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1_000_000, UTC)
    raise BridgeInputError(f"{name}: expected a timestamp, got {type(value).__name__}")


def command_from_record(rec: Mapping[str, Any]) -> BridgeCommand:
    """A decoded SiteCommand record -> BridgeCommand (BridgeInputError on a bad one)."""
    try:
        kind = Kind(rec["kind"])
        reserve = None
        r = rec.get("reserve")
        if r is not None:
            reserve = ReserveParams(
                product=Product(r["product"]),
                capacity_kw=float(r["capacity_kw"]),
                f_start_hz=float(r["f_start_hz"]),
                f_full_hz=float(r["f_full_hz"]),
                deadband_hz=float(r.get("deadband_hz", 0.0)),
                symmetric=bool(r.get("symmetric", False)),
            )
        power = rec.get("power_kw")
        return BridgeCommand(
            command_id=str(rec["command_id"]),
            site_id=str(rec["site_id"]),
            kind=kind,
            event_time=_aware(rec["event_time"], "event_time"),
            valid_until=_aware(rec["valid_until"], "valid_until"),
            power_kw=None if power is None else float(power),
            reserve=reserve,
            event_id=str(rec.get("event_id", "")),
            issued_by=str(rec.get("issued_by", "")),
        )
    except KeyError as exc:
        raise BridgeInputError(f"SiteCommand lacks field {exc.args[0]!r}") from None
    except ValueError as exc:  # bad enum symbol or number
        if isinstance(exc, BridgeInputError):
            raise
        raise BridgeInputError(f"SiteCommand: {exc}") from None


def command_record(cmd: BridgeCommand) -> dict[str, Any]:
    """BridgeCommand -> SiteCommand record (tests, benchmarks and tools produce commands)."""
    reserve = None
    if cmd.reserve is not None:
        p = cmd.reserve
        reserve = {
            "product": p.product.value,
            "capacity_kw": p.capacity_kw,
            "f_start_hz": p.f_start_hz,
            "f_full_hz": p.f_full_hz,
            "deadband_hz": p.deadband_hz,
            "symmetric": p.symmetric,
        }
    return {
        "event_id": cmd.event_id or str(uuid.uuid4()),
        "event_time": cmd.event_time,
        "ingest_time": None,
        "site_id": cmd.site_id,
        "command_id": cmd.command_id,
        "setpoint_id": None,
        "kind": cmd.kind.value,
        "power_kw": cmd.power_kw,
        "reserve": reserve,
        "valid_until": cmd.valid_until,
        "issued_by": cmd.issued_by,
    }


@dataclass(frozen=True)
class Outcome:
    """What the bridge reports about one command."""

    command_id: str
    site_id: str
    status: Status
    requested_kw: float | None = None
    written_kw: float | None = None
    measured_kw: float | None = None
    measured_soc_pct: float | None = None
    cause: Cause | None = None
    reason: str | None = None
    register_writes: int = 0
    latency_ms: float | None = None


def result_record(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": now,
        "ingest_time": None,
        "site_id": outcome.site_id,
        "command_id": outcome.command_id,
        "status": outcome.status.value,
        "requested_kw": outcome.requested_kw,
        "written_kw": outcome.written_kw,
        "measured_kw": outcome.measured_kw,
        "measured_soc_pct": outcome.measured_soc_pct,
        "likely_cause": None if outcome.cause is None else outcome.cause.value,
        "reason": outcome.reason,
        "register_writes": outcome.register_writes,
        "latency_ms": outcome.latency_ms,
    }


@dataclass(frozen=True)
class TelemetryContext:
    """Bridge-side facts that go with a telemetry sample."""

    headroom_up_kw: float
    headroom_down_kw: float
    max_discharge_kw: float
    max_charge_kw: float
    setpoint_kw: float | None
    active_command_id: str | None
    reserve_armed: Product
    faulted: bool


def _num(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def telemetry_record(
    site_id: str, identity: Identity | None, tel: Telemetry, ctx: TelemetryContext, now: datetime
) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": now,
        "ingest_time": None,
        "site_id": site_id,
        "oem": identity.oem if identity else "",
        "model": identity.model if identity else "",
        "battery_power_kw": _num(tel.battery_power_kw),
        "soc_pct": _num(tel.soc_pct),
        "grid_power_kw": _num(tel.grid_power_kw),
        "pv_power_kw": max(0.0, _num(tel.pv_power_kw)),
        "load_kw": max(0.0, _num(tel.load_kw)),
        "frequency_hz": tel.frequency_hz,
        "headroom_up_kw": ctx.headroom_up_kw,
        "headroom_down_kw": ctx.headroom_down_kw,
        "max_discharge_kw": ctx.max_discharge_kw,
        "max_charge_kw": ctx.max_charge_kw,
        "capacity_kwh": tel.capacity_kwh,
        "mode": tel.mode.value,
        "setpoint_kw": ctx.setpoint_kw,
        "active_command_id": ctx.active_command_id,
        "reserve_armed": ctx.reserve_armed.value,
        "faulted": ctx.faulted,
    }


def _fault(f: Fault) -> dict[str, Any]:
    return {"source": f.source.value, "code": f.code, "name": f.name, "severity": f.severity.value}


def fault_record(
    site_id: str, active: Sequence[Fault], previous: Sequence[Fault], now: datetime
) -> dict[str, Any]:
    before = {f.code for f in previous}
    after = {f.code for f in active}
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": now,
        "ingest_time": None,
        "site_id": site_id,
        "active": [_fault(f) for f in active],
        "raised": [_fault(f) for f in active if f.code not in before],
        "cleared": [_fault(f) for f in previous if f.code not in after],
    }


@dataclass(frozen=True)
class LinkStatus:
    state: str  # ONLINE | DEGRADED | OFFLINE | REDISCOVERED
    host: str | None
    port: int | None
    unit_id: int | None
    serial: str | None
    error_count: int
    last_error: str | None
    rtt_ms: float | None
    outbox_depth: int
    outbox_dropped: int

    def changed(self, other: LinkStatus | None) -> bool:
        """A change worth an event now (not the counters that move all the time)."""
        if other is None:
            return True
        return (self.state, self.host, self.port, self.serial) != (
            other.state,
            other.host,
            other.port,
            other.serial,
        )


def status_record(site_id: str, st: LinkStatus, now: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "event_time": now,
        "ingest_time": None,
        "site_id": site_id,
        "state": st.state,
        "host": st.host,
        "port": st.port,
        "unit_id": st.unit_id,
        "serial": st.serial,
        "error_count": st.error_count,
        "last_error": st.last_error,
        "rtt_ms": st.rtt_ms,
        "outbox_depth": st.outbox_depth,
        "outbox_dropped": st.outbox_dropped,
    }
