"""Avro records in and out of the bridge: SiteCommand -> BridgeCommand, results and telemetry out.

Incoming commands are checked by the contract's typed record (``SiteCommand.from_record``:
every field, the fields a kind requires) and then by the bridge's own domain checks
(:class:`edge.bridge.model.BridgeCommand`); instants become datetimes here, once. Outgoing
records are built with the generated records' ``to_record()``; ``contract.codec`` encodes
them. No Kafka here.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from contract.enums import CommandStatus, DeviceState, Product
from contract.errors import InvalidRecordError
from contract.fields import micros_value
from contract.records import (
    CommandResult,
    DeviceStatus,
    FaultCode,
    SiteCommand,
    SiteFault,
    SiteTelemetry,
)
from edge.bridge.model import BridgeCommand, BridgeInputError, Cause
from edge.hal.points import Fault, Identity, Telemetry

COMMAND = "SiteCommand"
RESULT = "CommandResult"
TELEMETRY = "SiteTelemetry"
FAULT = "SiteFault"
STATUS = "DeviceStatus"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(micros: int) -> datetime:
    """UTC microseconds since the epoch -> aware datetime (exact, no float rounding)."""
    return _EPOCH + timedelta(microseconds=micros)


def to_micros(t: datetime) -> int:
    """Aware datetime -> UTC microseconds since the epoch."""
    return micros_value(t, "datetime", "value")


def command_from_record(rec: Mapping[str, Any]) -> BridgeCommand:
    """A decoded SiteCommand record -> BridgeCommand (BridgeInputError on a bad one, naming
    the field)."""
    try:
        cmd = SiteCommand.from_record(rec)
    except InvalidRecordError as exc:
        raise BridgeInputError(str(exc)) from None
    return BridgeCommand(
        command_id=cmd.command_id,
        site_id=cmd.site_id,
        kind=cmd.kind,
        event_time=to_datetime(cmd.event_time),
        valid_until=to_datetime(cmd.valid_until),
        power_kw=cmd.power_kw,
        reserve=cmd.reserve,
        event_id=cmd.event_id,
        issued_by=cmd.issued_by,
        product=cmd.product,
    )


@dataclass(frozen=True)
class Unusable:
    """A decoded SiteCommand the bridge cannot act on, identified well enough to answer:
    REJECTED with ``reason`` (a record without a command id or site id cannot be answered)."""

    command_id: str
    site_id: str
    valid_until: datetime
    reason: str


def unusable(rec: Mapping[str, Any], exc: BridgeInputError, now: datetime) -> Unusable | None:
    """The identity of a bad command record to reject, or None when it has none."""
    command_id, site_id = rec.get("command_id"), rec.get("site_id")
    if not isinstance(command_id, str) or not command_id or not isinstance(site_id, str):
        return None
    try:
        valid_until = to_datetime(micros_value(rec.get("valid_until"), COMMAND, "valid_until"))
    except InvalidRecordError:
        valid_until = now  # kept for the idempotency retention from now
    return Unusable(command_id, site_id, valid_until, f"invalid command: {exc}")


def command_record(cmd: BridgeCommand) -> dict[str, Any]:
    """BridgeCommand -> SiteCommand record (tests, benchmarks and tools produce commands)."""
    return SiteCommand(
        event_id=cmd.event_id or str(uuid.uuid4()),
        event_time=to_micros(cmd.event_time),
        site_id=cmd.site_id,
        command_id=cmd.command_id,
        kind=cmd.kind,
        valid_until=to_micros(cmd.valid_until),
        power_kw=cmd.power_kw,
        reserve=cmd.reserve,
        issued_by=cmd.issued_by,
        product=cmd.product,
    ).to_record()


@dataclass(frozen=True)
class Outcome:
    """What the bridge reports about one command."""

    command_id: str
    site_id: str
    status: CommandStatus
    requested_kw: float | None = None
    written_kw: float | None = None
    measured_kw: float | None = None
    measured_soc_pct: float | None = None
    cause: Cause | None = None
    reason: str | None = None
    register_writes: int = 0
    latency_ms: float | None = None


def result_record(outcome: Outcome, now: datetime) -> dict[str, Any]:
    return CommandResult(
        event_id=str(uuid.uuid4()),
        event_time=to_micros(now),
        site_id=outcome.site_id,
        command_id=outcome.command_id,
        status=outcome.status,
        requested_kw=outcome.requested_kw,
        written_kw=outcome.written_kw,
        measured_kw=outcome.measured_kw,
        measured_soc_pct=outcome.measured_soc_pct,
        likely_cause=None if outcome.cause is None else outcome.cause.value,
        reason=outcome.reason,
        register_writes=outcome.register_writes,
        latency_ms=outcome.latency_ms,
    ).to_record()


@dataclass(frozen=True)
class TelemetryContext:
    """Bridge-side facts that go with a telemetry sample: the baseline, what is armed and
    ordered (kW per product), the headroom left beyond all of it, and the limits."""

    headroom_up_kw: float
    headroom_down_kw: float
    max_discharge_kw: float
    max_charge_kw: float
    setpoint_kw: float | None
    active_command_id: str | None
    reserve_armed: Product
    faulted: bool
    baseline_kw: float | None = None
    armed_kw: Mapping[Product, float] | None = None  # FCR_N, FCR_D_UP, FCR_D_DOWN, FFR
    order_kw: Mapping[Product, float] | None = None  # AFRR, MFRR


def _num(value: float | None) -> float:
    return 0.0 if value is None else float(value)


def telemetry_record(
    site_id: str, identity: Identity | None, tel: Telemetry, ctx: TelemetryContext, now: datetime
) -> dict[str, Any]:
    armed = ctx.armed_kw or {}
    orders = ctx.order_kw or {}
    return SiteTelemetry(
        event_id=str(uuid.uuid4()),
        event_time=to_micros(now),
        site_id=site_id,
        oem=identity.oem if identity else "",
        model=identity.model if identity else "",
        battery_power_kw=_num(tel.battery_power_kw),
        soc_pct=_num(tel.soc_pct),
        grid_power_kw=_num(tel.grid_power_kw),
        pv_power_kw=max(0.0, _num(tel.pv_power_kw)),
        load_kw=max(0.0, _num(tel.load_kw)),
        frequency_hz=tel.frequency_hz,
        headroom_up_kw=ctx.headroom_up_kw,
        headroom_down_kw=ctx.headroom_down_kw,
        max_discharge_kw=ctx.max_discharge_kw,
        max_charge_kw=ctx.max_charge_kw,
        capacity_kwh=tel.capacity_kwh,
        mode=tel.mode,
        setpoint_kw=ctx.setpoint_kw,
        active_command_id=ctx.active_command_id,
        reserve_armed=ctx.reserve_armed,
        faulted=ctx.faulted,
        baseline_kw=ctx.baseline_kw,
        armed_fcr_n_kw=armed.get(Product.FCR_N, 0.0),
        armed_fcr_d_up_kw=armed.get(Product.FCR_D_UP, 0.0),
        armed_fcr_d_down_kw=armed.get(Product.FCR_D_DOWN, 0.0),
        armed_ffr_kw=armed.get(Product.FFR, 0.0),
        order_afrr_kw=orders.get(Product.AFRR, 0.0),
        order_mfrr_kw=orders.get(Product.MFRR, 0.0),
    ).to_record()


def _fault(f: Fault) -> FaultCode:
    return FaultCode(source=f.source, code=f.code, name=f.name, severity=f.severity)


def fault_record(
    site_id: str, active: Sequence[Fault], previous: Sequence[Fault], now: datetime
) -> dict[str, Any]:
    before = {f.code for f in previous}
    after = {f.code for f in active}
    return SiteFault(
        event_id=str(uuid.uuid4()),
        event_time=to_micros(now),
        site_id=site_id,
        active=tuple(_fault(f) for f in active),
        raised=tuple(_fault(f) for f in active if f.code not in before),
        cleared=tuple(_fault(f) for f in previous if f.code not in after),
    ).to_record()


@dataclass(frozen=True)
class LinkStatus:
    state: DeviceState
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
    return DeviceStatus(
        event_id=str(uuid.uuid4()),
        event_time=to_micros(now),
        site_id=site_id,
        state=st.state,
        host=st.host,
        port=st.port,
        unit_id=st.unit_id,
        serial=st.serial,
        error_count=st.error_count,
        last_error=st.last_error,
        rtt_ms=st.rtt_ms,
        outbox_depth=st.outbox_depth,
        outbox_dropped=st.outbox_dropped,
    ).to_record()
