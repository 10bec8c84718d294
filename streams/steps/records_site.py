"""Site records (contract/site/*.avsc): frozen dataclasses with ``from_record``/``to_record``.

Field names match the Avro schemas exactly; instants are int microseconds since the epoch
(UTC); power is kW, positive = discharging/exporting to the grid.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contract import fields as f
from contract.enums import CommandKind, CommandStatus, Product, SiteMode
from contract.errors import InvalidRecordError


@dataclass(frozen=True, slots=True)
class ReserveArm:
    """Droop parameters armed at a site (record ``ReserveArm``)."""

    product: Product
    capacity_kw: float
    f_start_hz: float
    f_full_hz: float
    deadband_hz: float = 0.0
    symmetric: bool = False

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ReserveArm:
        n = "ReserveArm"
        return cls(
            product=f.symbol(rec, n, "product", Product, default=Product.NONE),
            capacity_kw=f.nonneg(rec, n, "capacity_kw"),
            f_start_hz=f.number(rec, n, "f_start_hz"),
            f_full_hz=f.number(rec, n, "f_full_hz"),
            deadband_hz=f.nonneg(rec, n, "deadband_hz", default=0.0),
            symmetric=f.boolean(rec, n, "symmetric", default=False),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "product": self.product.value,
            "capacity_kw": self.capacity_kw,
            "f_start_hz": self.f_start_hz,
            "f_full_hz": self.f_full_hz,
            "deadband_hz": self.deadband_hz,
            "symmetric": self.symmetric,
        }


def _reserve(rec: Mapping[str, Any], name: str) -> ReserveArm | None:
    value = rec.get("reserve")
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRecordError(name, "reserve", f"expected a record, got {type(value).__name__}")
    return ReserveArm.from_record(value)


def _check_kind_payload(
    name: str, kind: CommandKind, power_kw: float | None, reserve: ReserveArm | None
) -> None:
    if kind is CommandKind.SET_POWER and power_kw is None:
        raise InvalidRecordError(name, "power_kw", "required for SET_POWER")
    if kind is CommandKind.ARM_RESERVE and reserve is None:
        raise InvalidRecordError(name, "reserve", "required for ARM_RESERVE")


@dataclass(frozen=True, slots=True)
class SiteSetpoint:
    """Target for one site from the allocator, before the setpoint filter."""

    event_id: str
    event_time: int
    site_id: str
    setpoint_id: str
    kind: CommandKind
    valid_until: int
    power_kw: float | None = None
    reserve: ReserveArm | None = None
    source_id: str | None = None
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> SiteSetpoint:
        n = "SiteSetpoint"
        out = cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            site_id=f.nonempty_text(rec, n, "site_id"),
            setpoint_id=f.nonempty_text(rec, n, "setpoint_id"),
            source_id=f.opt_text(rec, n, "source_id"),
            kind=f.symbol(rec, n, "kind", CommandKind),
            power_kw=f.opt_number(rec, n, "power_kw"),
            reserve=_reserve(rec, n),
            valid_until=f.micros(rec, n, "valid_until"),
        )
        _check_kind_payload(n, out.kind, out.power_kw, out.reserve)
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "site_id": self.site_id,
            "setpoint_id": self.setpoint_id,
            "source_id": self.source_id,
            "kind": self.kind.value,
            "power_kw": self.power_kw,
            "reserve": None if self.reserve is None else self.reserve.to_record(),
            "valid_until": self.valid_until,
        }


_isfinite = math.isfinite
_CANONICAL_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
).fullmatch
_COMMAND_KINDS = {k.value: k for k in CommandKind}


def setpoint_of_plain(rec: Mapping[str, Any]) -> SiteSetpoint:
    """``SiteSetpoint.from_record`` of a record as the raw codec decodes it, without re-checking
    what the Avro types already guarantee (the filter's hot path).

    Taken only when every field has its plain type (int micros, canonical lower-case uuid,
    non-empty ids, a float ``power_kw``, no ``reserve``) and the kind's payload is there; any
    other record, valid or not, goes through ``from_record`` (the same result, or its precise
    ``InvalidRecordError``).
    """
    try:
        kind = _COMMAND_KINDS[rec["kind"]]
        event_id, site_id, setpoint_id = rec["event_id"], rec["site_id"], rec["setpoint_id"]
        event_time, valid_until = rec["event_time"], rec["valid_until"]
        ingest, source, power = rec["ingest_time"], rec["source_id"], rec["power_kw"]
        plain = (
            type(event_time) is int
            and type(valid_until) is int
            and (ingest is None or type(ingest) is int)
            and type(event_id) is str
            and _CANONICAL_UUID(event_id) is not None
            and type(site_id) is str
            and site_id != ""
            and type(setpoint_id) is str
            and setpoint_id != ""
            and (source is None or type(source) is str)
            and rec["reserve"] is None
            and kind is not CommandKind.ARM_RESERVE
            and (
                (power is None and kind is not CommandKind.SET_POWER)
                or (type(power) is float and _isfinite(power))
            )
        )
    except (KeyError, TypeError):
        plain = False
    if not plain:
        return SiteSetpoint.from_record(rec)
    return SiteSetpoint(
        event_id, event_time, site_id, setpoint_id, kind, valid_until, power, None, source, ingest
    )


@dataclass(frozen=True, slots=True)
class SiteCommand:
    """A command for one site's edge bridge, after the setpoint filter."""

    event_id: str
    event_time: int
    site_id: str
    command_id: str
    kind: CommandKind
    valid_until: int
    setpoint_id: str | None = None
    power_kw: float | None = None
    reserve: ReserveArm | None = None
    issued_by: str = ""
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> SiteCommand:
        n = "SiteCommand"
        out = cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            site_id=f.nonempty_text(rec, n, "site_id"),
            command_id=f.nonempty_text(rec, n, "command_id"),
            setpoint_id=f.opt_text(rec, n, "setpoint_id"),
            kind=f.symbol(rec, n, "kind", CommandKind),
            power_kw=f.opt_number(rec, n, "power_kw"),
            reserve=_reserve(rec, n),
            valid_until=f.micros(rec, n, "valid_until"),
            issued_by=f.text(rec, n, "issued_by", default=""),
        )
        _check_kind_payload(n, out.kind, out.power_kw, out.reserve)
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "site_id": self.site_id,
            "command_id": self.command_id,
            "setpoint_id": self.setpoint_id,
            "kind": self.kind.value,
            "power_kw": self.power_kw,
            "reserve": None if self.reserve is None else self.reserve.to_record(),
            "valid_until": self.valid_until,
            "issued_by": self.issued_by,
        }


@dataclass(frozen=True, slots=True)
class SiteTelemetry:
    """Periodic measurements of one site (kW at the site)."""

    event_id: str
    event_time: int
    site_id: str
    oem: str
    model: str
    battery_power_kw: float
    soc_pct: float
    grid_power_kw: float
    pv_power_kw: float
    load_kw: float
    headroom_up_kw: float
    headroom_down_kw: float
    max_discharge_kw: float
    max_charge_kw: float
    mode: SiteMode = SiteMode.UNKNOWN
    frequency_hz: float | None = None
    capacity_kwh: float | None = None
    setpoint_kw: float | None = None
    active_command_id: str | None = None
    reserve_armed: Product = Product.NONE
    faulted: bool = False
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> SiteTelemetry:
        n = "SiteTelemetry"
        soc = f.number(rec, n, "soc_pct")
        if not 0.0 <= soc <= 100.0:
            raise InvalidRecordError(n, "soc_pct", f"must be within 0..100, got {soc}")
        return cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            site_id=f.nonempty_text(rec, n, "site_id"),
            oem=f.text(rec, n, "oem"),
            model=f.text(rec, n, "model"),
            battery_power_kw=f.number(rec, n, "battery_power_kw"),
            soc_pct=soc,
            grid_power_kw=f.number(rec, n, "grid_power_kw"),
            pv_power_kw=f.nonneg(rec, n, "pv_power_kw"),
            load_kw=f.nonneg(rec, n, "load_kw"),
            frequency_hz=f.opt_number(rec, n, "frequency_hz"),
            headroom_up_kw=f.nonneg(rec, n, "headroom_up_kw"),
            headroom_down_kw=f.nonneg(rec, n, "headroom_down_kw"),
            max_discharge_kw=f.nonneg(rec, n, "max_discharge_kw"),
            max_charge_kw=f.nonneg(rec, n, "max_charge_kw"),
            capacity_kwh=f.opt_number(rec, n, "capacity_kwh"),
            mode=f.symbol(rec, n, "mode", SiteMode, default=SiteMode.UNKNOWN),
            setpoint_kw=f.opt_number(rec, n, "setpoint_kw"),
            active_command_id=f.opt_text(rec, n, "active_command_id"),
            reserve_armed=f.symbol(rec, n, "reserve_armed", Product, default=Product.NONE),
            faulted=f.boolean(rec, n, "faulted", default=False),
        )

    @classmethod
    def from_plain(cls, rec: Mapping[str, Any]) -> SiteTelemetry:
        """A SiteTelemetry from a record :func:`telemetry_plainly_valid` accepted (the caller
        checked it: every field present and Avro-typed, the semantic checks passed): the
        same result as :meth:`from_record` without checking again. The site book builds
        10,000 of these for one allocation; ``from_record`` checks each field anew."""
        return cls(
            event_id=rec["event_id"],
            event_time=rec["event_time"],
            ingest_time=rec["ingest_time"],
            site_id=rec["site_id"],
            oem=rec["oem"],
            model=rec["model"],
            battery_power_kw=float(rec["battery_power_kw"]),
            soc_pct=float(rec["soc_pct"]),
            grid_power_kw=float(rec["grid_power_kw"]),
            pv_power_kw=float(rec["pv_power_kw"]),
            load_kw=float(rec["load_kw"]),
            frequency_hz=_opt_float(rec["frequency_hz"]),
            headroom_up_kw=float(rec["headroom_up_kw"]),
            headroom_down_kw=float(rec["headroom_down_kw"]),
            max_discharge_kw=float(rec["max_discharge_kw"]),
            max_charge_kw=float(rec["max_charge_kw"]),
            capacity_kwh=_opt_float(rec["capacity_kwh"]),
            mode=_MODE_OF[rec["mode"]],
            setpoint_kw=_opt_float(rec["setpoint_kw"]),
            active_command_id=rec["active_command_id"],
            reserve_armed=_PRODUCT_OF[rec["reserve_armed"]],
            faulted=rec["faulted"],
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "site_id": self.site_id,
            "oem": self.oem,
            "model": self.model,
            "battery_power_kw": self.battery_power_kw,
            "soc_pct": self.soc_pct,
            "grid_power_kw": self.grid_power_kw,
            "pv_power_kw": self.pv_power_kw,
            "load_kw": self.load_kw,
            "frequency_hz": self.frequency_hz,
            "headroom_up_kw": self.headroom_up_kw,
            "headroom_down_kw": self.headroom_down_kw,
            "max_discharge_kw": self.max_discharge_kw,
            "max_charge_kw": self.max_charge_kw,
            "capacity_kwh": self.capacity_kwh,
            "mode": self.mode.value,
            "setpoint_kw": self.setpoint_kw,
            "active_command_id": self.active_command_id,
            "reserve_armed": self.reserve_armed.value,
            "faulted": self.faulted,
        }


_SITE_MODES = frozenset(m.value for m in SiteMode)
_PRODUCTS = frozenset(p.value for p in Product)


_MODE_OF = {m.value: m for m in SiteMode}
_PRODUCT_OF = {p.value: p for p in Product}


def telemetry_of_plain_columns(columns: Mapping[str, Sequence[Any]]) -> list[SiteTelemetry]:
    """``SiteTelemetry.from_plain`` of many records given as columns (field name -> the rows'
    raw-codec values, every row one ``telemetry_plainly_valid`` accepted): the same objects
    without building a dict per row (the site book's columnar batches)."""
    c = columns
    floats = [
        [float(v) for v in c[name]]
        for name in (
            "battery_power_kw",
            "soc_pct",
            "grid_power_kw",
            "pv_power_kw",
            "load_kw",
            "headroom_up_kw",
            "headroom_down_kw",
            "max_discharge_kw",
            "max_charge_kw",
        )
    ]
    optional = [
        [None if v is None else float(v) for v in c[name]]
        for name in ("frequency_hz", "capacity_kwh", "setpoint_kw")
    ]
    modes = [_MODE_OF[m] for m in c["mode"]]
    armed = [_PRODUCT_OF[p] for p in c["reserve_armed"]]
    # the columns in SiteTelemetry's field order (checked by the tests against from_plain)
    rows = zip(
        c["event_id"],
        c["event_time"],
        c["site_id"],
        c["oem"],
        c["model"],
        *floats,
        modes,
        *optional,
        c["active_command_id"],
        armed,
        c["faulted"],
        c["ingest_time"],
        strict=True,
    )
    return [SiteTelemetry(*row) for row in rows]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def telemetry_plainly_valid(rec: Mapping[str, Any]) -> bool:
    """True when a SiteTelemetry as decoded by the raw codec (``logical_types=False``: every
    field present, Avro-typed, int micros, canonical str uuid) passes
    :meth:`SiteTelemetry.from_record`'s semantic checks: numbers finite, ``soc_pct`` in
    0..100, non-negative PV/load/headroom/limits, non-empty ``site_id``, known enum symbols.

    The fast path of the telemetry agent: a few comparisons, no allocation. False means
    "not shown valid here" (also for any other spelling: a missing key, a datetime, a sum
    that overflows): the caller then runs ``from_record``, which raises the precise typed
    error, or accepts what this check is too quick to accept.
    """
    try:
        soc = rec["soc_pct"]
        pv, load = rec["pv_power_kw"], rec["load_kw"]
        up, down = rec["headroom_up_kw"], rec["headroom_down_kw"]
        max_out, max_in = rec["max_discharge_kw"], rec["max_charge_kw"]
        optional = rec["frequency_hz"], rec["capacity_kwh"], rec["setpoint_kw"]
        ingest = rec["ingest_time"]
        # one finiteness test for all: NaN or an infinity anywhere makes the sum non-finite
        total = rec["battery_power_kw"] + rec["grid_power_kw"] + soc + pv + load + up + down
        total += max_out + max_in + (optional[0] or 0.0) + (optional[1] or 0.0)
        return (
            _isfinite(total + (optional[2] or 0.0))
            and 0.0 <= soc <= 100.0
            and pv >= 0.0
            and load >= 0.0
            and up >= 0.0
            and down >= 0.0
            and max_out >= 0.0
            and max_in >= 0.0
            and type(rec["event_time"]) is int
            and (ingest is None or type(ingest) is int)
            and type(rec["event_id"]) is str
            and rec["site_id"] != ""
            and rec["mode"] in _SITE_MODES
            and rec["reserve_armed"] in _PRODUCTS
        )
    except (KeyError, TypeError):
        return False


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What happened when a command was applied (only the fields the allocator reads are typed
    strictly; the rest are carried through ``to_record``)."""

    event_id: str
    event_time: int
    site_id: str
    command_id: str
    status: CommandStatus
    requested_kw: float | None = None
    written_kw: float | None = None
    measured_kw: float | None = None
    measured_soc_pct: float | None = None
    likely_cause: str | None = None
    reason: str | None = None
    register_writes: int = 0
    latency_ms: float | None = None
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> CommandResult:
        n = "CommandResult"
        return cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            site_id=f.nonempty_text(rec, n, "site_id"),
            command_id=f.nonempty_text(rec, n, "command_id"),
            status=f.symbol(rec, n, "status", CommandStatus),
            requested_kw=f.opt_number(rec, n, "requested_kw"),
            written_kw=f.opt_number(rec, n, "written_kw"),
            measured_kw=f.opt_number(rec, n, "measured_kw"),
            measured_soc_pct=f.opt_number(rec, n, "measured_soc_pct"),
            likely_cause=f.opt_text(rec, n, "likely_cause"),
            reason=f.opt_text(rec, n, "reason"),
            register_writes=f.integer(rec, n, "register_writes", default=0),
            latency_ms=f.opt_number(rec, n, "latency_ms"),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "site_id": self.site_id,
            "command_id": self.command_id,
            "status": self.status.value,
            "requested_kw": self.requested_kw,
            "written_kw": self.written_kw,
            "measured_kw": self.measured_kw,
            "measured_soc_pct": self.measured_soc_pct,
            "likely_cause": self.likely_cause,
            "reason": self.reason,
            "register_writes": self.register_writes,
            "latency_ms": self.latency_ms,
        }
