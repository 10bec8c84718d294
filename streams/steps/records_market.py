"""Market records (contract/market/*.avsc): fleet targets, activations, reserve assignments.

Fleet power is MW; positive = discharging/exporting to the grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from contract import fields as f
from contract.enums import ActivationKind, Product


@dataclass(frozen=True, slots=True)
class FleetSetpoint:
    """Fleet-level battery power target."""

    event_id: str
    event_time: int
    fleet_id: str
    setpoint_id: str
    target_mw: float
    valid_from: int
    valid_until: int
    product: Product = Product.NONE
    source: str = ""
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> FleetSetpoint:
        n = "FleetSetpoint"
        out = cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            fleet_id=f.nonempty_text(rec, n, "fleet_id"),
            setpoint_id=f.nonempty_text(rec, n, "setpoint_id"),
            target_mw=f.number(rec, n, "target_mw"),
            product=f.symbol(rec, n, "product", Product, default=Product.NONE),
            valid_from=f.micros(rec, n, "valid_from"),
            valid_until=f.micros(rec, n, "valid_until"),
            source=f.text(rec, n, "source", default=""),
        )
        f.check_window(n, "valid_from", out.valid_from, "valid_until", out.valid_until)
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "fleet_id": self.fleet_id,
            "setpoint_id": self.setpoint_id,
            "target_mw": self.target_mw,
            "product": self.product.value,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class MarketActivation:
    """An activation order, prequalification test or frequency event with its required response."""

    event_id: str
    event_time: int
    fleet_id: str
    activation_id: str
    product: Product
    kind: ActivationKind
    requested_mw: float
    start_time: int
    end_time: int
    test_name: str | None = None
    baseline_mw: float | None = None
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> MarketActivation:
        n = "MarketActivation"
        out = cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            fleet_id=f.nonempty_text(rec, n, "fleet_id"),
            activation_id=f.nonempty_text(rec, n, "activation_id"),
            product=f.symbol(rec, n, "product", Product),
            kind=f.symbol(rec, n, "kind", ActivationKind),
            requested_mw=f.number(rec, n, "requested_mw"),
            start_time=f.micros(rec, n, "start_time"),
            end_time=f.micros(rec, n, "end_time"),
            test_name=f.opt_text(rec, n, "test_name"),
            baseline_mw=f.opt_number(rec, n, "baseline_mw"),
        )
        f.check_window(n, "start_time", out.start_time, "end_time", out.end_time)
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "fleet_id": self.fleet_id,
            "activation_id": self.activation_id,
            "product": self.product.value,
            "kind": self.kind.value,
            "requested_mw": self.requested_mw,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "test_name": self.test_name,
            "baseline_mw": self.baseline_mw,
        }


@dataclass(frozen=True, slots=True)
class ReserveAssignment:
    """Reserve capacity the fleet must hold for a product over a period (a cleared bid)."""

    event_id: str
    event_time: int
    fleet_id: str
    assignment_id: str
    product: Product
    capacity_mw: float
    valid_from: int
    valid_until: int
    f_start_hz: float
    f_full_hz: float
    deadband_hz: float = 0.0
    ingest_time: int | None = None

    @classmethod
    def from_record(cls, rec: Mapping[str, Any]) -> ReserveAssignment:
        n = "ReserveAssignment"
        out = cls(
            event_id=f.uuid_text(rec, n, "event_id"),
            event_time=f.micros(rec, n, "event_time"),
            ingest_time=f.opt_micros(rec, n, "ingest_time"),
            fleet_id=f.nonempty_text(rec, n, "fleet_id"),
            assignment_id=f.nonempty_text(rec, n, "assignment_id"),
            product=f.symbol(rec, n, "product", Product),
            capacity_mw=f.nonneg(rec, n, "capacity_mw"),
            valid_from=f.micros(rec, n, "valid_from"),
            valid_until=f.micros(rec, n, "valid_until"),
            f_start_hz=f.number(rec, n, "f_start_hz"),
            f_full_hz=f.number(rec, n, "f_full_hz"),
            deadband_hz=f.nonneg(rec, n, "deadband_hz", default=0.0),
        )
        f.check_window(n, "valid_from", out.valid_from, "valid_until", out.valid_until)
        return out

    def to_record(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "ingest_time": self.ingest_time,
            "fleet_id": self.fleet_id,
            "assignment_id": self.assignment_id,
            "product": self.product.value,
            "capacity_mw": self.capacity_mw,
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
            "f_start_hz": self.f_start_hz,
            "f_full_hz": self.f_full_hz,
            "deadband_hz": self.deadband_hz,
        }
