"""What the allocator splits and what a split is (plain data, table-ready).

- ``AllocationRequest``: a fleet target for one product: SET_POWER (energy dispatch: an
  absolute battery power, product NONE or the FleetSetpoint's), ORDER (aFRR/mFRR: a signed
  change against the fleet's baseline), ARM_RESERVE (FCR-N, FCR-D up/down, FFR: a capacity);
  ``slot`` is what it replaces: a request replaces the earlier one of the same slot (energy
  dispatch is one slot, each reserve and order product its own);
- ``Allocation``: one split of a request: the share per eligible site, exclusions, the
  shortfall, the setpoints to send, and on a re-split the sites that gave up share and why;
- the request of each fleet-level event (``fleet_setpoint_request``, ``activation_request``,
  ``reserve_request``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from contract import fields as f
from contract.enums import CommandKind, Product
from contract.errors import InvalidRecordError
from contract.products import curve_for
from contract.records import (
    FleetSetpoint,
    MarketActivation,
    ReserveArm,
    ReserveAssignment,
    SiteSetpoint,
)
from streams.steps.availability import Exclusion
from streams.steps.filter_state import ARMABLE, ORDERABLE

_KINDS = frozenset({CommandKind.SET_POWER, CommandKind.ARM_RESERVE, CommandKind.ORDER})


@dataclass(frozen=True, slots=True)
class AllocationRequest:
    """What to split, in kW: a signed battery power (SET_POWER), a signed change (ORDER) or a
    capacity >= 0 (ARM_RESERVE, with the reserve's droop parameters)."""

    source_id: str
    fleet_id: str
    kind: CommandKind
    product: Product
    target_kw: float
    valid_until: int
    reserve: ReserveArm | None = None

    def __post_init__(self) -> None:
        n = "AllocationRequest"
        if not math.isfinite(self.target_kw):
            raise InvalidRecordError(n, "target_kw", f"not finite: {self.target_kw}")
        if self.kind not in _KINDS:
            raise InvalidRecordError(
                n, "kind", f"{self.kind} is not allocated (SET_POWER, ARM_RESERVE, ORDER)"
            )
        if self.kind is CommandKind.ARM_RESERVE and (
            self.reserve is None or self.target_kw < 0 or self.product not in ARMABLE
        ):
            raise InvalidRecordError(
                n,
                "reserve",
                "ARM_RESERVE needs an armed product (FCR_N, FCR_D_*, FFR), a reserve and a "
                "capacity >= 0",
            )
        if self.kind is CommandKind.ORDER and self.product not in ORDERABLE:
            raise InvalidRecordError(
                n, "product", f"an ORDER is for AFRR or MFRR, not {self.product}"
            )

    @property
    def slot(self) -> Product:
        """The product whose earlier request this one replaces (NONE: energy dispatch)."""
        return Product.NONE if self.kind is CommandKind.SET_POWER else self.product

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_id": self.source_id,
            "fleet_id": self.fleet_id,
            "kind": self.kind.value,
            "product": self.product.value,
            "target_kw": self.target_kw,
            "valid_until": self.valid_until,
            "reserve": None if self.reserve is None else self.reserve.to_record(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AllocationRequest:
        n = "AllocationRequest"
        reserve = data.get("reserve")
        return cls(
            source_id=f.nonempty_text(data, n, "source_id"),
            fleet_id=f.nonempty_text(data, n, "fleet_id"),
            kind=f.symbol(data, n, "kind", CommandKind),
            product=f.symbol(data, n, "product", Product),
            target_kw=f.number(data, n, "target_kw"),
            valid_until=f.micros(data, n, "valid_until"),
            reserve=None if reserve is None else ReserveArm.from_record(reserve),
        )


@dataclass(frozen=True, slots=True)
class Allocation:
    """Result of one (re)allocation. ``per_site_kw`` covers every eligible site (sorted by
    site_id); ``setpoints`` are those to send (all shares of a new request, or the changed
    ones after a ``reallocate``)."""

    request: AllocationRequest
    revision: int
    allocated_kw: float
    shortfall_kw: float
    per_site_kw: Mapping[str, float]
    excluded: Mapping[str, Exclusion]
    derated: tuple[str, ...]
    setpoints: tuple[SiteSetpoint, ...] = field(default=())
    moved: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def to_dict(self) -> dict[str, Any]:
        """What ``reallocate`` needs later (request, revision, shares), for a Faust table.
        Setpoints are not stored: they have been sent."""
        return {
            "request": self.request.to_dict(),
            "revision": self.revision,
            "allocated_kw": self.allocated_kw,
            "shortfall_kw": self.shortfall_kw,
            "per_site_kw": dict(self.per_site_kw),
            "excluded": {site: reason.value for site, reason in self.excluded.items()},
            "derated": list(self.derated),
            "moved": dict(self.moved),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Allocation:
        n = "Allocation"
        request = data.get("request")
        per_site = data.get("per_site_kw")
        excluded = data.get("excluded", {})
        derated = data.get("derated", [])
        if not isinstance(request, Mapping):
            raise InvalidRecordError(n, "request", "expected a mapping")
        if not isinstance(per_site, Mapping) or not isinstance(excluded, Mapping):
            raise InvalidRecordError(n, "per_site_kw", "expected mappings of site -> value")
        if not isinstance(derated, list):
            raise InvalidRecordError(n, "derated", "expected a list")
        moved = data.get("moved", {})
        if not isinstance(moved, Mapping) or not all(isinstance(v, str) for v in moved.values()):
            raise InvalidRecordError(n, "moved", "expected a mapping of site -> reason")
        return cls(
            request=AllocationRequest.from_dict(request),
            revision=f.integer(data, n, "revision"),
            allocated_kw=f.number(data, n, "allocated_kw"),
            shortfall_kw=f.number(data, n, "shortfall_kw"),
            per_site_kw=MappingProxyType(
                {str(k): f.number_value(v, n, "per_site_kw") for k, v in per_site.items()}
            ),
            excluded=MappingProxyType({str(k): _exclusion(v) for k, v in excluded.items()}),
            derated=tuple(str(d) for d in derated),
            moved=MappingProxyType({str(k): v for k, v in moved.items()}),
        )

    @property
    def shortfall_mw(self) -> float:
        return self.shortfall_kw / 1000.0

    def report(self) -> dict[str, Any]:
        """A plain dict for logs and the dispatcher: what was asked, served and not served."""
        return {
            "source_id": self.request.source_id,
            "fleet_id": self.request.fleet_id,
            "kind": self.request.kind.value,
            "product": self.request.product.value,
            "revision": self.revision,
            "target_mw": self.request.target_kw / 1000.0,
            "allocated_mw": self.allocated_kw / 1000.0,
            "shortfall_mw": self.shortfall_mw,
            "sites_allocated": sum(1 for kw in self.per_site_kw.values() if kw != 0.0),
            "sites_eligible": len(self.per_site_kw),
            "sites_excluded": {reason.value: n for reason, n in _count(self.excluded).items()},
            "sites_derated": len(self.derated),
            "setpoints": len(self.setpoints),
            **({"gave_up_share": dict(self.moved)} if self.moved else {}),
        }


def _exclusion(value: Any) -> Exclusion:
    try:
        return Exclusion(value)
    except ValueError:
        raise InvalidRecordError("Allocation", "excluded", f"unknown exclusion {value!r}") from None


def _count(excluded: Mapping[str, Exclusion]) -> dict[Exclusion, int]:
    out: dict[Exclusion, int] = {}
    for reason in excluded.values():
        out[reason] = out.get(reason, 0) + 1
    return out


def _reserve_arm(product: Product, f_start: float, f_full: float, deadband: float) -> ReserveArm:
    return ReserveArm(
        product=product,
        capacity_kw=0.0,
        f_start_hz=f_start,
        f_full_hz=f_full,
        deadband_hz=deadband,
        symmetric=product is Product.FCR_N,
    )


def fleet_setpoint_request(sp: FleetSetpoint) -> AllocationRequest:
    """Energy dispatch: the fleet's battery power, an absolute SET_POWER per site."""
    return AllocationRequest(
        source_id=sp.setpoint_id,
        fleet_id=sp.fleet_id,
        kind=CommandKind.SET_POWER,
        product=sp.product,
        target_kw=sp.target_mw * 1000.0,
        valid_until=sp.valid_until,
    )


def activation_request(act: MarketActivation, order_margin: float = 0.0) -> AllocationRequest:
    """aFRR/mFRR: an ORDER of ``requested_mw x (1 + order_margin)`` as a change against the
    fleet's baseline (0 ends the order; the margin: ``AllocatorConfig.order_margin``);
    FCR-N/FCR-D/FFR: ARM_RESERVE of ``|requested_mw|`` with the product's
    default droop band (``products.CURVES``); NONE: SET_POWER to ``baseline_mw +
    requested_mw`` (baseline 0 when unknown), energy dispatch as before stacked products."""
    if act.product in ORDERABLE:
        return AllocationRequest(
            source_id=act.activation_id,
            fleet_id=act.fleet_id,
            kind=CommandKind.ORDER,
            product=act.product,
            target_kw=act.requested_mw * 1000.0 * (1.0 + order_margin),
            valid_until=act.end_time,
        )
    if act.product is Product.NONE:
        baseline = 0.0 if act.baseline_mw is None else act.baseline_mw
        return AllocationRequest(
            source_id=act.activation_id,
            fleet_id=act.fleet_id,
            kind=CommandKind.SET_POWER,
            product=act.product,
            target_kw=(baseline + act.requested_mw) * 1000.0,
            valid_until=act.end_time,
        )
    curve = curve_for(act.product)
    assert curve.f_start_hz is not None  # noqa: S101  # FCR/FFR curves are frequency-activated
    assert curve.f_full_hz is not None  # noqa: S101  # idem
    return AllocationRequest(
        source_id=act.activation_id,
        fleet_id=act.fleet_id,
        kind=CommandKind.ARM_RESERVE,
        product=act.product,
        target_kw=abs(act.requested_mw) * 1000.0,
        valid_until=act.end_time,
        reserve=_reserve_arm(act.product, curve.f_start_hz, curve.f_full_hz, 0.0),
    )


def reserve_request(asg: ReserveAssignment) -> AllocationRequest | None:
    """ARM_RESERVE of ``capacity_mw`` with the assignment's droop parameters; None for aFRR,
    mFRR and NONE capacity, which is activation-driven (their orders are split when they
    come)."""
    if asg.product not in ARMABLE:
        return None
    return AllocationRequest(
        source_id=asg.assignment_id,
        fleet_id=asg.fleet_id,
        kind=CommandKind.ARM_RESERVE,
        product=asg.product,
        target_kw=asg.capacity_mw * 1000.0,
        valid_until=asg.valid_until,
        reserve=_reserve_arm(asg.product, asg.f_start_hz, asg.f_full_hz, asg.deadband_hz),
    )
