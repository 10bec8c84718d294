"""Setpoint filter: SiteSetpoint -> SiteCommand | None, one small state per site.

``filter_setpoint(state, setpoint, now, config, limits) -> (new_state, command | None, reason)``

Rules, in order (``now`` is processing time, int microseconds):

1. **STOP bypasses everything**: never dropped (not for staleness, order, expiry or as a
   duplicate), never delayed. Its ``valid_until`` is at least ``now + stop_min_validity_s`` so
   it cannot arrive already expired. It resets the gate: the next non-stop setpoint is a kind
   change and is written. A re-processed STOP is re-emitted with the same ``command_id``
   (the bridge applies a command id at most once), because losing a stop is worse.
2. **Duplicate**: the same ``setpoint_id`` as the last accepted one -> dropped (a setpoint
   re-processed after a crash produces no second command).
3. **Stale**: ``now - event_time > max_age_s`` -> dropped. **Out of order**: ``event_time``
   older than the last accepted setpoint of the site -> dropped. **Expired**:
   ``valid_until <= now`` -> dropped.
4. The gate (accepted setpoints only). ``W`` = the last *written* command (not the last seen
   setpoint), ``P`` = the new power after clamping to the site limits:

   - no previous write, or it has expired -> write (FIRST / PREVIOUS_EXPIRED);
   - a different kind than ``W`` -> write (KIND_CHANGE);
   - SET_POWER: ``d = |P - W.power|``. ``d >= threshold_kw`` (and ``d > 0``) -> write
     (RAMP_STEP); else ``d > 0`` and ``now - W.written_at >= min_interval_s`` -> write
     (INTERVAL_ELAPSED); else suppressed. Because ``d`` is measured against the last
     *written* power, a slow ramp of small steps cannot accumulate: the unwritten error is
     always ``< threshold_kw``, and the first step that brings it to ``threshold_kw`` is
     written at once;
   - ARM_RESERVE: different reserve parameters -> write (CHANGED); SAFE_MODE and an
     identical ARM_RESERVE are exact duplicates -> suppressed (UNCHANGED);
   - refresh: a setpoint the gate would suppress is still written (REFRESH) when ``W``
     expires within ``refresh_before_s`` and the setpoint's ``valid_until`` is later than
     ``W``'s.

   Two consecutive written commands of the same kind therefore always differ in payload or
   extend validity (REFRESH): no redundant Modbus write.
5. **Deferred**: a SUPPRESSED setpoint is kept as ``pending`` (a newer accepted setpoint
   replaces it; an UNCHANGED one or any write clears it). ``tick(state, now, config)``,
   called by the agent on a timer, writes it (DEFERRED) once ``min_interval_s`` has passed
   since the last write (or the last write expired), unless it expired itself. So a small
   change is delayed by at most ``min_interval_s`` plus the tick period, never lost: many
   sites each holding back less than ``threshold_kw`` cannot leave the fleet short for long.

The ``command_id`` is ``uuid5(site_id, setpoint_id)``: a re-processed setpoint yields the same id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from contract import fields as f
from contract.enums import CommandKind, Product
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.fields import MICROS_PER_S
from contract.records import ReserveArm, SiteCommand, SiteSetpoint, SiteTelemetry
from streams.steps.ids import command_event_id, command_id_for


class FilterReason(StrEnum):
    """Why a setpoint was written or dropped."""

    # written
    STOP = "STOP"
    FIRST = "FIRST"
    PREVIOUS_EXPIRED = "PREVIOUS_EXPIRED"
    KIND_CHANGE = "KIND_CHANGE"
    RAMP_STEP = "RAMP_STEP"
    INTERVAL_ELAPSED = "INTERVAL_ELAPSED"
    CHANGED = "CHANGED"
    REFRESH = "REFRESH"
    DEFERRED = "DEFERRED"
    # dropped
    DUPLICATE = "DUPLICATE"
    STALE = "STALE"
    OUT_OF_ORDER = "OUT_OF_ORDER"
    EXPIRED = "EXPIRED"
    SUPPRESSED = "SUPPRESSED"
    UNCHANGED = "UNCHANGED"

    @property
    def written(self) -> bool:
        return self in _WRITTEN


_WRITTEN = frozenset(
    {
        FilterReason.STOP,
        FilterReason.FIRST,
        FilterReason.PREVIOUS_EXPIRED,
        FilterReason.KIND_CHANGE,
        FilterReason.RAMP_STEP,
        FilterReason.INTERVAL_ELAPSED,
        FilterReason.CHANGED,
        FilterReason.REFRESH,
        FilterReason.DEFERRED,
    }
)


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
    """A suppressed SET_POWER setpoint waiting for ``tick`` (power already clamped)."""

    site_id: str
    setpoint_id: str
    power_kw: float
    valid_until: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "site_id": self.site_id,
            "setpoint_id": self.setpoint_id,
            "power_kw": self.power_kw,
            "valid_until": self.valid_until,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pending:
        n = "FilterState.pending"
        return cls(
            site_id=f.nonempty_text(data, n, "site_id"),
            setpoint_id=f.nonempty_text(data, n, "setpoint_id"),
            power_kw=f.number(data, n, "power_kw"),
            valid_until=f.micros(data, n, "valid_until"),
        )


@dataclass(frozen=True, slots=True)
class FilterState:
    """Per-site filter state (stored in a Faust table; ``to_dict``/``from_dict`` round-trip).

    ``last_event_time``/``last_setpoint_id``: the last *accepted* setpoint (written or gated).
    ``last_*`` command fields: the last *written* command.
    """

    last_event_time: int | None = None
    last_setpoint_id: str | None = None
    last_kind: CommandKind | None = None
    last_power_kw: float | None = None
    last_reserve: ReserveArm | None = None
    last_written_at: int | None = None
    last_valid_until: int | None = None
    last_command_id: str | None = None
    pending: Pending | None = None

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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FilterState:
        n = "FilterState"
        kind = data.get("last_kind")
        reserve = data.get("last_reserve")
        pending = data.get("pending")
        if pending is not None and not isinstance(pending, Mapping):
            raise InvalidRecordError(n, "pending", "expected a mapping or null")
        try:
            return cls(
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
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidRecordError):
                raise
            raise InvalidRecordError(n, "<state>", str(exc)) from exc


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


def _check_payload(setpoint: SiteSetpoint) -> None:
    n = "SiteSetpoint"
    if setpoint.kind is CommandKind.SET_POWER:
        if setpoint.power_kw is None:
            raise InvalidRecordError(n, "power_kw", "required for SET_POWER")
        if not math.isfinite(setpoint.power_kw):
            raise InvalidRecordError(n, "power_kw", f"not finite: {setpoint.power_kw}")
    if setpoint.kind is CommandKind.ARM_RESERVE and setpoint.reserve is None:
        raise InvalidRecordError(n, "reserve", "required for ARM_RESERVE")


def _micros(seconds: float) -> int:
    return round(seconds * MICROS_PER_S)


def _command(
    setpoint: SiteSetpoint,
    now: int,
    *,
    config: FilterConfig,
    power_kw: float | None,
    reserve: ReserveArm | None,
    valid_until: int,
) -> SiteCommand:
    command_id = command_id_for(setpoint.site_id, setpoint.setpoint_id)
    return SiteCommand(
        event_id=command_event_id(command_id),
        event_time=now,
        site_id=setpoint.site_id,
        command_id=command_id,
        setpoint_id=setpoint.setpoint_id,
        kind=setpoint.kind,
        power_kw=power_kw,
        reserve=reserve,
        valid_until=valid_until,
        issued_by=config.issued_by,
    )


def _after(
    state: FilterState,
    setpoint: SiteSetpoint,
    event_time: int,
    command: SiteCommand | None,
    now: int,
    *,
    pending: Pending | None = None,
) -> FilterState:
    """The state after an accepted setpoint (built directly: this runs per site per setpoint)."""
    if command is None:
        return FilterState(
            event_time,
            setpoint.setpoint_id,
            state.last_kind,
            state.last_power_kw,
            state.last_reserve,
            state.last_written_at,
            state.last_valid_until,
            state.last_command_id,
            pending,
        )
    return FilterState(
        event_time,
        setpoint.setpoint_id,
        command.kind,
        command.power_kw,
        command.reserve,
        now,
        command.valid_until,
        command.command_id,
        None,
    )


def _gate(  # noqa: PLR0911  # a decision table: one return per rule
    state: FilterState,
    *,
    kind: CommandKind,
    power_kw: float | None,
    reserve: ReserveArm | None,
    valid_until: int,
    now: int,
    config: FilterConfig,
) -> FilterReason:
    if state.last_kind is None or state.last_valid_until is None or state.last_written_at is None:
        return FilterReason.FIRST
    if state.last_valid_until <= now:
        return FilterReason.PREVIOUS_EXPIRED
    if kind is not state.last_kind:
        return FilterReason.KIND_CHANGE
    refresh_due = (
        state.last_valid_until - now <= _micros(config.refresh_before_s)
        and valid_until > state.last_valid_until
    )
    if kind is CommandKind.SET_POWER:
        delta = abs((power_kw or 0.0) - (state.last_power_kw or 0.0))
        if delta > 0 and delta >= config.threshold_kw:
            return FilterReason.RAMP_STEP
        if delta > 0 and now - state.last_written_at >= _micros(config.min_interval_s):
            return FilterReason.INTERVAL_ELAPSED
        if refresh_due:
            return FilterReason.REFRESH
        return FilterReason.SUPPRESSED if delta > 0 else FilterReason.UNCHANGED
    if kind is CommandKind.ARM_RESERVE and reserve != state.last_reserve:
        return FilterReason.CHANGED
    return FilterReason.REFRESH if refresh_due else FilterReason.UNCHANGED


def filter_setpoint(  # noqa: PLR0911  # one return per drop rule, in the documented order
    state: FilterState,
    setpoint: SiteSetpoint,
    now: int,
    config: FilterConfig,
    limits: SiteLimits | None = None,
) -> tuple[FilterState, SiteCommand | None, FilterReason]:
    """Decide whether ``setpoint`` becomes a command now (see the module doc for the rules).

    A setpoint whose payload does not fit its kind raises ``InvalidRecordError`` (dead-letter it).
    """
    _check_payload(setpoint)
    if setpoint.kind is CommandKind.STOP:
        valid_until = max(setpoint.valid_until, now + _micros(config.stop_min_validity_s))
        command = _command(
            setpoint, now, config=config, power_kw=None, reserve=None, valid_until=valid_until
        )
        last = state.last_event_time
        event_time = setpoint.event_time if last is None else max(last, setpoint.event_time)
        return _after(state, setpoint, event_time, command, now), command, FilterReason.STOP
    if setpoint.setpoint_id == state.last_setpoint_id:
        return state, None, FilterReason.DUPLICATE
    if now - setpoint.event_time > _micros(config.max_age_s):
        return state, None, FilterReason.STALE
    if state.last_event_time is not None and setpoint.event_time < state.last_event_time:
        return state, None, FilterReason.OUT_OF_ORDER
    if setpoint.valid_until <= now:
        return state, None, FilterReason.EXPIRED

    power_kw = setpoint.power_kw if setpoint.kind is CommandKind.SET_POWER else None
    reserve = setpoint.reserve if setpoint.kind is CommandKind.ARM_RESERVE else None
    if limits is not None:
        power_kw = None if power_kw is None else limits.clamp_power(power_kw)
        reserve = None if reserve is None else limits.clamp_reserve(reserve)
    reason = _gate(
        state,
        kind=setpoint.kind,
        power_kw=power_kw,
        reserve=reserve,
        valid_until=setpoint.valid_until,
        now=now,
        config=config,
    )
    if not reason.written:
        pending = None
        if reason is FilterReason.SUPPRESSED and power_kw is not None:
            pending = Pending(
                setpoint.site_id, setpoint.setpoint_id, power_kw, setpoint.valid_until
            )
        after = _after(state, setpoint, setpoint.event_time, None, now, pending=pending)
        return after, None, reason
    command = _command(
        setpoint,
        now,
        config=config,
        power_kw=power_kw,
        reserve=reserve,
        valid_until=setpoint.valid_until,
    )
    return _after(state, setpoint, setpoint.event_time, command, now), command, reason


def tick(
    state: FilterState, now: int, config: FilterConfig
) -> tuple[FilterState, SiteCommand | None, FilterReason]:
    """Write the pending (suppressed) setpoint once the gate allows it (rule 5)."""
    pending = state.pending
    if pending is None:
        return state, None, FilterReason.UNCHANGED
    if pending.valid_until <= now:
        return replace(state, pending=None), None, FilterReason.EXPIRED
    due = (
        state.last_written_at is None
        or state.last_valid_until is None
        or state.last_valid_until <= now
        or now - state.last_written_at >= _micros(config.min_interval_s)
    )
    if not due:
        return state, None, FilterReason.SUPPRESSED
    command_id = command_id_for(pending.site_id, pending.setpoint_id)
    command = SiteCommand(
        event_id=command_event_id(command_id),
        event_time=now,
        site_id=pending.site_id,
        command_id=command_id,
        setpoint_id=pending.setpoint_id,
        kind=CommandKind.SET_POWER,
        power_kw=pending.power_kw,
        valid_until=pending.valid_until,
        issued_by=config.issued_by,
    )
    after = FilterState(
        state.last_event_time,
        state.last_setpoint_id,
        CommandKind.SET_POWER,
        pending.power_kw,
        None,
        now,
        pending.valid_until,
        command_id,
        None,
    )
    return after, command, FilterReason.DEFERRED
