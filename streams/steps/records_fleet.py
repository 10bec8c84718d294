"""Fleet records (contract/fleet/*.avsc): the windowed fleet state and compliance verdicts (MW)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from contract import fields as f
from contract.enums import Finding, Product, VerdictStatus
from contract.errors import InvalidRecordError


@dataclass(frozen=True, slots=True)
class OemState:
    """Aggregate of the sites of one inverter family."""

    oem: str
    power_mw: float
    headroom_up_mw: float
    headroom_down_mw: float
    sites_online: int
    sites_faulted: int

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> OemState:
        n = "OemState"
        return cls(
            oem=f.text(rec, n, "oem"),
            power_mw=f.number(rec, n, "power_mw"),
            headroom_up_mw=f.number(rec, n, "headroom_up_mw"),
            headroom_down_mw=f.number(rec, n, "headroom_down_mw"),
            sites_online=f.integer(rec, n, "sites_online"),
            sites_faulted=f.integer(rec, n, "sites_faulted"),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "oem": self.oem,
            "power_mw": self.power_mw,
            "headroom_up_mw": self.headroom_up_mw,
            "headroom_down_mw": self.headroom_down_mw,
            "sites_online": self.sites_online,
            "sites_faulted": self.sites_faulted,
        }


@dataclass(frozen=True, slots=True)
class FleetState:
    """Fleet aggregate over one tumbling window."""

    event_id: str
    event_time: int
    fleet_id: str
    window_start: int
    window_end: int
    window_s: int
    total_power_mw: float
    headroom_up_mw: float
    headroom_down_mw: float
    sites_online: int
    sites_faulted: int
    mean_frequency_hz: float | None = None
    per_oem: tuple[OemState, ...] = ()
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> FleetState:
        n = "FleetState"
        per_oem = rec.get("per_oem", [])
        if not isinstance(per_oem, Sequence) or isinstance(per_oem, str | bytes):
            raise InvalidRecordError(n, "per_oem", "expected an array")
        out = cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            fleet_id=f.nonempty_text(rec, n, "fleet_id"),
            window_start=f.micros(rec, n, "window_start"),
            window_end=f.micros(rec, n, "window_end"),
            window_s=f.integer(rec, n, "window_s"),
            total_power_mw=f.number(rec, n, "total_power_mw"),
            headroom_up_mw=f.number(rec, n, "headroom_up_mw"),
            headroom_down_mw=f.number(rec, n, "headroom_down_mw"),
            sites_online=f.integer(rec, n, "sites_online"),
            sites_faulted=f.integer(rec, n, "sites_faulted"),
            mean_frequency_hz=f.opt_number(rec, n, "mean_frequency_hz"),
            per_oem=tuple(OemState.from_record(o) for o in per_oem),
        )
        f.check_window(n, "window_start", out.window_start, "window_end", out.window_end)
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "fleet_id": self.fleet_id,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "window_s": self.window_s,
            "total_power_mw": self.total_power_mw,
            "headroom_up_mw": self.headroom_up_mw,
            "headroom_down_mw": self.headroom_down_mw,
            "sites_online": self.sites_online,
            "sites_faulted": self.sites_faulted,
            "mean_frequency_hz": self.mean_frequency_hz,
            "per_oem": [o.to_record() for o in self.per_oem],
        }


@dataclass(frozen=True, slots=True)
class ComplianceVerdict:
    """A live judgement of the fleet response against a reserve requirement."""

    event_id: str
    event_time: int
    fleet_id: str
    product: Product
    rule_id: str
    rule_version: str
    status: VerdictStatus
    finding: Finding
    required_mw: float
    measured_mw: float
    threshold: float
    message: str
    activation_id: str | None = None
    site_ids: tuple[str, ...] = field(default=())
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ComplianceVerdict:
        n = "ComplianceVerdict"
        site_ids = rec.get("site_ids", [])
        if not isinstance(site_ids, Sequence) or isinstance(site_ids, str | bytes):
            raise InvalidRecordError(n, "site_ids", "expected an array of strings")
        if not all(isinstance(s, str) for s in site_ids):
            raise InvalidRecordError(n, "site_ids", "expected an array of strings")
        return cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            fleet_id=f.nonempty_text(rec, n, "fleet_id"),
            activation_id=f.opt_text(rec, n, "activation_id"),
            product=f.symbol(rec, n, "product", Product, default=Product.NONE),
            rule_id=f.nonempty_text(rec, n, "rule_id"),
            rule_version=f.nonempty_text(rec, n, "rule_version"),
            status=f.symbol(rec, n, "status", VerdictStatus),
            finding=f.symbol(rec, n, "finding", Finding),
            required_mw=f.number(rec, n, "required_mw"),
            measured_mw=f.number(rec, n, "measured_mw"),
            threshold=f.number(rec, n, "threshold"),
            message=f.text(rec, n, "message"),
            site_ids=tuple(site_ids),
        )

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "fleet_id": self.fleet_id,
            "activation_id": self.activation_id,
            "product": self.product.value,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "status": self.status.value,
            "finding": self.finding.value,
            "required_mw": self.required_mw,
            "measured_mw": self.measured_mw,
            "threshold": self.threshold,
            "message": self.message,
            "site_ids": list(self.site_ids),
        }
