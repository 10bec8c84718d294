"""The setpoint filter's configuration, site limits and per-site state (plain data).

``FilterState`` is what the filter's Faust table stores per site (``to_dict``/``from_dict``
round-trip, JSON values). It has two parts:

- the site lane (``last_*`` fields, ``pending``): the last *written* SET_POWER, STOP or
  SAFE_MODE command, as before stacked products;
- one ``Lane`` per product (``lanes``, sorted by product): the last written ARM_RESERVE /
  DISARM_RESERVE (FCR-N, FCR-D up/down, FFR) or ORDER (aFRR, mFRR) of that product and its
  pending (gated) setpoint. Products are independent at the edge (an ARM replaces that
  product's earlier arm, other products stay armed), so each is gated on its own.

``last_event_time``/``last_setpoint_id`` are the site's last *accepted* setpoint of any kind.

Compatibility: entries written before lanes existed still load. They have no ``lanes``; one
whose last write was an ARM_RESERVE (one product per site then) becomes that product's lane,
and a ``pending`` without ``kind`` is a SET_POWER.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from contract import fields as f
from contract.enums import CommandKind, Product
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.records import ReserveArm, SiteTelemetry

#: kinds of the site lane
SITE_KINDS = frozenset({CommandKind.SET_POWER, CommandKind.STOP, CommandKind.SAFE_MODE})
#: kinds of a product lane
LANE_KINDS = frozenset({CommandKind.ARM_RESERVE, CommandKind.DISARM_RESERVE, CommandKind.ORDER})
#: products armed at the edge (ARM_RESERVE / DISARM_RESERVE)
ARMABLE = frozenset({Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN, Product.FFR})
#: products ordered as changes against the baseline (ORDER)
ORDERABLE = frozenset({Product.AFRR, Product.MFRR})
_PRODUCT_ORDER = {p: i for i, p in enumerate(Product)}


@dataclass(frozen=True, slots=True)
class FilterConfig:
    """Thresholds of the filter (from ``streams.settings.FilterSettings`` in the worker)."""

    max_age_s: float = 5.0
    threshold_kw: float = 0.5
    min_interval_s: float = 10.0
    refresh_before_s: float = 15.0
    stop_min_validity_s: float = 60.0
    issued_by: str = "setpoint-filter"

    def __post_init__(self) -> None:
        for name in (
            "max_age_s",
            "threshold_kw",
            "min_interval_s",
            "refresh_before_s",
            "stop_min_validity_s",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidConfigError(
                    f"FilterConfig.{name} must be finite and >= 0, got {value}"
                )


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """Site limits in kW (>= 0 each): commands are clamped to [-max_charge, +max_discharge]."""

    max_discharge_kw: float
    max_charge_kw: float

    def __post_init__(self) -> None:
        for name in ("max_discharge_kw", "max_charge_kw"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InvalidConfigError(f"SiteLimits.{name} must be finite and >= 0, got {value}")

    @classmethod
    def from_telemetry(cls, telemetry: SiteTelemetry) -> SiteLimits:
        """The limits a site reports (inverter, battery and site config combined)."""
        return cls(telemetry.max_discharge_kw, telemetry.max_charge_kw)

    def clamp_power(self, power_kw: float) -> float:
        return min(max(power_kw, -self.max_charge_kw), self.max_discharge_kw)

    def clamp_change(self, change_kw: float) -> float:
        """An order's change against the baseline: at most from full charge to full
        discharge (or back), whatever the baseline (the edge bounds the total)."""
        swing = self.max_charge_kw + self.max_discharge_kw
        return min(max(change_kw, -swing), swing)

    def clamp_reserve(self, reserve: ReserveArm) -> ReserveArm:
        if reserve.product is Product.FCR_D_DOWN:
            cap = self.max_charge_kw
        elif reserve.product is Product.FCR_N or reserve.symmetric:
            cap = min(self.max_charge_kw, self.max_discharge_kw)
        else:
            cap = self.max_discharge_kw
        if reserve.capacity_kw <= cap:
            return reserve
        return replace(reserve, capacity_kw=cap)


@dataclass(frozen=True, slots=True)
class Pending:
    """A gated setpoint waiting for ``tick`` (payload already clamped). ``kind``: SET_POWER
    (power), ARM_RESERVE (reserve) or ORDER (power, product)."""

    site_id: str
    setpoint_id: str
    power_kw: float | None
    valid_until: int
    kind: CommandKind = CommandKind.SET_POWER
    reserve: ReserveArm | None = None
    product: Product | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "setpoint_id": self.setpoint_id,
            "power_kw": self.power_kw,
            "valid_until": self.valid_until,
            "kind": self.kind.value,
            "reserve": None if self.reserve is None else self.reserve.to_record(),
            "product": None if self.product is None else self.product.value,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        n = "FilterState.pending"
        kind = f.symbol(data, n, "kind", CommandKind, default=CommandKind.SET_POWER)
        reserve = data.get("reserve")
        product = data.get("product")
        out = cls(
            site_id=f.nonempty_text(data, n, "site_id"),
            setpoint_id=f.nonempty_text(data, n, "setpoint_id"),
            power_kw=f.opt_number(data, n, "power_kw"),
            valid_until=f.micros(data, n, "valid_until"),
            kind=kind,
            reserve=None if reserve is None else ReserveArm.from_record(reserve),
            product=None if product is None else f.symbol(data, n, "product", Product),
        )
        if (kind is CommandKind.ARM_RESERVE) != (out.reserve is not None):
            raise InvalidRecordError(n, "reserve", "an ARM_RESERVE, and only one, has a reserve")
        if kind in (CommandKind.SET_POWER, CommandKind.ORDER) and out.power_kw is None:
            raise InvalidRecordError(n, "power_kw", f"required for {kind}")
        return out


@dataclass(frozen=True, slots=True)
class Lane:
    """One product's gate state at a site: its last written command (``kind`` ... ``command_id``;
    all None before the first), its last accepted setpoint and its pending one."""

    product: Product
    kind: CommandKind | None = None
    power_kw: float | None = None
    reserve: ReserveArm | None = None
    written_at: int | None = None
    valid_until: int | None = None
    command_id: str | None = None
    setpoint_id: str | None = None
    pending: Pending | None = None

    def active(self, now: int) -> bool:
        """Whether the last write still holds something at the edge (an unexpired arm or a
        non-zero order)."""
        if self.valid_until is None or self.valid_until <= now:
            return False
        if self.kind is CommandKind.ARM_RESERVE:
            return True
        return self.kind is CommandKind.ORDER and bool(self.power_kw)

    def to_dict(self) -> dict[str, Any]:
        """The lane's fields that are set (a missing one reads as None: the changelog holds
        one entry per site with every lane, so it stays short)."""
        out: dict[str, Any] = {"product": self.product.value}
        if self.kind is not None:
            out["kind"] = self.kind.value
        if self.power_kw is not None:
            out["power_kw"] = self.power_kw
        if self.reserve is not None:
            out["reserve"] = self.reserve.to_record()
        if self.written_at is not None:
            out["written_at"] = self.written_at
        if self.valid_until is not None:
            out["valid_until"] = self.valid_until
        if self.command_id is not None:
            out["command_id"] = self.command_id
        if self.setpoint_id is not None:
            out["setpoint_id"] = self.setpoint_id
        if self.pending is not None:
            out["pending"] = self.pending.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Lane:
        n = "FilterState.lanes"
        if not isinstance(data, Mapping):
            raise InvalidRecordError(n, "<lane>", f"expected a mapping, got {type(data).__name__}")
        kind = data.get("kind")
        reserve = data.get("reserve")
        pending = data.get("pending")
        if pending is not None and not isinstance(pending, Mapping):
            raise InvalidRecordError(n, "pending", "expected a mapping or null")
        lane = cls(
            product=f.symbol(data, n, "product", Product),
            kind=None if kind is None else f.symbol(data, n, "kind", CommandKind),
            power_kw=f.opt_number(data, n, "power_kw"),
            reserve=None if reserve is None else ReserveArm.from_record(reserve),
            written_at=_opt_int(data.get("written_at"), "written_at"),
            valid_until=_opt_int(data.get("valid_until"), "valid_until"),
            command_id=_opt_str(data.get("command_id"), "command_id"),
            setpoint_id=_opt_str(data.get("setpoint_id"), "setpoint_id"),
            pending=None if pending is None else Pending.from_dict(pending),
        )
        if lane.kind is not None and lane.kind not in LANE_KINDS:
            raise InvalidRecordError(n, "kind", f"{lane.kind} is not a product lane's kind")
        return lane


@dataclass(frozen=True, slots=True)
class FilterState:
    """Per-site filter state (see the module doc)."""

    last_event_time: int | None = None
    last_setpoint_id: str | None = None
    last_kind: CommandKind | None = None
    last_power_kw: float | None = None
    last_reserve: ReserveArm | None = None  # only in entries written before lanes
    last_written_at: int | None = None
    last_valid_until: int | None = None
    last_command_id: str | None = None
    pending: Pending | None = None
    lanes: tuple[Lane, ...] = ()

    def lane(self, product: Product) -> Lane | None:
        for lane in self.lanes:
            if lane.product is product:
                return lane
        return None

    def with_lane(self, lane: Lane) -> tuple[Lane, ...]:
        """``lanes`` with ``lane`` in place of the same product's (sorted by product)."""
        lanes = self.lanes
        product = lane.product
        order = _PRODUCT_ORDER[product]
        for i, x in enumerate(lanes):
            if x.product is product:
                return (*lanes[:i], lane, *lanes[i + 1 :])
            if _PRODUCT_ORDER[x.product] > order:
                return (*lanes[:i], lane, *lanes[i:])
        return (*lanes, lane)

    @property
    def has_pending(self) -> bool:
        """Whether any lane holds a pending setpoint."""
        return self.pending is not None or any(x.pending is not None for x in self.lanes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_event_time": self.last_event_time,
            "last_setpoint_id": self.last_setpoint_id,
            "last_kind": None if self.last_kind is None else self.last_kind.value,
            "last_power_kw": self.last_power_kw,
            "last_reserve": None if self.last_reserve is None else self.last_reserve.to_record(),
            "last_written_at": self.last_written_at,
            "last_valid_until": self.last_valid_until,
            "last_command_id": self.last_command_id,
            "pending": None if self.pending is None else self.pending.to_dict(),
            "lanes": [lane.to_dict() for lane in self.lanes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterState:
        n = "FilterState"
        kind = data.get("last_kind")
        reserve = data.get("last_reserve")
        pending = data.get("pending")
        lanes = data.get("lanes", [])
        if pending is not None and not isinstance(pending, Mapping):
            raise InvalidRecordError(n, "pending", "expected a mapping or null")
        if not isinstance(lanes, list):
            raise InvalidRecordError(n, "lanes", "expected a list")
        try:
            state = cls(
                last_event_time=_opt_int(data.get("last_event_time"), "last_event_time"),
                last_setpoint_id=_opt_str(data.get("last_setpoint_id"), "last_setpoint_id"),
                last_kind=None if kind is None else CommandKind(kind),
                last_power_kw=None
                if data.get("last_power_kw") is None
                else float(data["last_power_kw"]),
                last_reserve=None if reserve is None else ReserveArm.from_record(reserve),
                last_written_at=_opt_int(data.get("last_written_at"), "last_written_at"),
                last_valid_until=_opt_int(data.get("last_valid_until"), "last_valid_until"),
                last_command_id=_opt_str(data.get("last_command_id"), "last_command_id"),
                pending=None if pending is None else Pending.from_dict(pending),
                lanes=tuple(Lane.from_dict(lane) for lane in lanes),
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidRecordError):
                raise
            raise InvalidRecordError(n, "<state>", str(exc)) from exc
        if len({lane.product for lane in state.lanes}) != len(state.lanes):
            raise InvalidRecordError(n, "lanes", "two lanes of one product")
        return _migrated(state)


def _migrated(state: FilterState) -> FilterState:
    """An entry from before lanes whose last write was an ARM_RESERVE: that arm becomes its
    product's lane (the site lane then has no write)."""
    if state.last_kind not in LANE_KINDS:
        if state.last_reserve is None:
            return state
        return replace(state, last_reserve=None)
    reserve = state.last_reserve
    if state.last_kind is not CommandKind.ARM_RESERVE or reserve is None:
        raise InvalidRecordError(
            "FilterState", "last_kind", f"{state.last_kind} needs a lane (and a reserve)"
        )
    lane = Lane(
        reserve.product,
        CommandKind.ARM_RESERVE,
        None,
        reserve,
        state.last_written_at,
        state.last_valid_until,
        state.last_command_id,
        state.last_setpoint_id,
    )
    base = replace(
        state,
        last_kind=None,
        last_power_kw=None,
        last_reserve=None,
        last_written_at=None,
        last_valid_until=None,
        last_command_id=None,
    )
    return replace(base, lanes=base.with_lane(lane))


def _opt_str(value: Any, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidRecordError("FilterState", field, f"expected a string, got {value!r}")
    return value


def _opt_int(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRecordError(
            "FilterState", field, f"expected an int, got {type(value).__name__}"
        )
    return value
