"""Setpoint filter: SiteSetpoint -> SiteCommand | None, one small state per site.

``filter_setpoint(state, setpoint, now, config, limits) -> (new_state, command | None, reason)``

A site's commands run in lanes (``steps.filter_state``): the site lane (SET_POWER, STOP,
SAFE_MODE) and one lane per product, since products are independent at the edge: FCR-N,
FCR-D up, FCR-D down and FFR (ARM_RESERVE, DISARM_RESERVE of that product), aFRR and mFRR
(ORDER of that product). An ARM_RESERVE's lane is its ``reserve.product``; a DISARM or ORDER
names its ``product``. A newer ARM or ORDER of a product replaces the older one (the edge
applies commands in their order; the filter gates each against the last one it wrote).

Rules, in order (``now`` is processing time, int microseconds):

1. **STOP bypasses everything**: never dropped (not for staleness, order, expiry or as a
   duplicate), never delayed. Its ``valid_until`` is at least ``now + stop_min_validity_s`` so
   it cannot arrive already expired. It resets every lane (the edge disarms every reserve
   and ends every order): the next setpoint of any lane is written. A re-processed STOP is
   re-emitted with the same ``command_id`` (the bridge applies a command id at most once),
   because losing a stop is worse.
2. **Duplicate**: the same ``setpoint_id`` as the site's last accepted one, or as its
   product lane's -> dropped (a setpoint re-processed after a crash gives no second command).
3. **Stale**: ``now - event_time > max_age_s`` -> dropped. **Out of order**: ``event_time``
   older than the last accepted setpoint of the site -> dropped. **Expired**:
   ``valid_until <= now`` -> dropped.
4. The payload is clamped to the site limits: a SET_POWER's power, an ARM's capacity in its
   product's direction, an ORDER's change to the full swing ``max_charge + max_discharge``.
5. The gate (accepted setpoints only). ``W`` = the lane's last *written* command (not the
   last seen setpoint), ``P`` = the new payload:

   - no previous write in the lane, or it has expired -> write (FIRST / PREVIOUS_EXPIRED);
   - a different kind than ``W`` (e.g. DISARM after ARM, SET_POWER after STOP) -> write
     (KIND_CHANGE); SAFE_MODE while any product lane holds an arm or an order in force ->
     write (KIND_CHANGE: it disarms them);
   - SET_POWER and ORDER: ``d = |P - W.power|``; ARM_RESERVE: ``d = |P - W.capacity|`` (a
     different droop band -> write, CHANGED). ``d >= threshold_kw`` (and ``d > 0``) ->
     write (RAMP_STEP; CHANGED for an arm); else ``d > 0`` and
     ``now - W.written_at >= min_interval_s`` -> write (INTERVAL_ELAPSED); else
     suppressed. Because ``d`` is measured against the last *written* value, a slow ramp
     of small steps cannot accumulate: the unwritten error is always ``< threshold_kw``,
     and the first step that brings it to ``threshold_kw`` is written at once;
   - an ORDER of 0 ending an order in force -> write (ENDED): never gated;
   - DISARM_RESERVE and SAFE_MODE identical to ``W`` are exact duplicates -> suppressed
     (UNCHANGED); a DISARM of a product armed (or never seen) is a write by the rules above;
   - refresh: a setpoint the gate would suppress is still written (REFRESH) when ``W``
     expires within ``refresh_before_s`` and the setpoint's ``valid_until`` is later than
     ``W``'s.

   Two consecutive written commands of the same lane and kind therefore always differ in
   payload or extend validity (REFRESH): no redundant Modbus write.
6. **Deferred**: a SUPPRESSED setpoint is kept as its lane's ``pending`` (a newer accepted
   setpoint of the lane replaces it; a write clears it). So is an UNCHANGED SET_POWER, ARM or
   ORDER that extends the validity of ``W``: a new request with the same share must not let
   the command in force expire early. ``tick(state, now, config)``, called by the agent on a
   timer, writes each lane's pending setpoint once the gate allows it: a change (DEFERRED)
   once ``min_interval_s`` has passed since the lane's last write, an extension (REFRESH)
   once ``W`` expires within ``refresh_before_s``, either as soon as ``W`` has expired;
   unless it expired itself. So a small change is delayed by at most ``min_interval_s``
   plus the tick period, never lost: many sites each holding back less than
   ``threshold_kw`` cannot leave the fleet short for long.

The ``command_id`` is ``uuid5(site_id, setpoint_id)``: a re-processed setpoint yields the same id.
"""

from __future__ import annotations

import math
from dataclasses import replace
from enum import StrEnum

from contract.enums import CommandKind, Product
from contract.errors import InvalidRecordError
from contract.fields import MICROS_PER_S
from contract.records import ReserveArm, SiteCommand, SiteSetpoint
from streams.steps.filter_state import (
    ARMABLE,
    ORDERABLE,
    FilterConfig,
    FilterState,
    Lane,
    Pending,
    SiteLimits,
)
from streams.steps.ids import command_event_id, command_id_for

__all__ = [
    "FilterConfig",
    "FilterReason",
    "FilterState",
    "Lane",
    "Pending",
    "SiteLimits",
    "filter_setpoint",
    "lane_of",
    "next_due",
    "tick",
    "tick_lane",
    "tick_with_reasons",
]


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
    ENDED = "ENDED"
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

    @property
    def outcome(self) -> str:
        """What became of the setpoint: ``written`` (a command now), ``held`` (held back
        as its lane's pending setpoint: written later as DEFERRED or REFRESH, or EXPIRED),
        ``unchanged`` (nothing new to write) or ``dropped`` (DUPLICATE, STALE,
        OUT_OF_ORDER, EXPIRED)."""
        if self in _WRITTEN:
            return "written"
        if self is FilterReason.SUPPRESSED:
            return "held"
        if self is FilterReason.UNCHANGED:
            return "unchanged"
        return "dropped"


_WRITTEN = frozenset(
    {
        FilterReason.STOP,
        FilterReason.FIRST,
        FilterReason.PREVIOUS_EXPIRED,
        FilterReason.KIND_CHANGE,
        FilterReason.RAMP_STEP,
        FilterReason.INTERVAL_ELAPSED,
        FilterReason.CHANGED,
        FilterReason.ENDED,
        FilterReason.REFRESH,
        FilterReason.DEFERRED,
    }
)
#: kinds whose UNCHANGED setpoint may still extend the validity of the command in force
_EXTENDABLE = frozenset({CommandKind.SET_POWER, CommandKind.ARM_RESERVE, CommandKind.ORDER})
_SITE_LANE = Product.NONE  # the product a site lane is shown under (``lane_of``)


def lane_of(setpoint: SiteSetpoint) -> Product | None:
    """The product lane a valid setpoint belongs to (None: the site lane). Raises
    ``InvalidRecordError`` when its payload does not fit its kind (dead-letter it)."""
    n = "SiteSetpoint"
    kind = setpoint.kind
    if kind is CommandKind.SET_POWER:
        power = setpoint.power_kw
        if power is None:
            raise InvalidRecordError(n, "power_kw", "required for SET_POWER")
        if not math.isfinite(power):
            raise InvalidRecordError(n, "power_kw", f"not finite: {power}")
        return None
    if kind is CommandKind.ARM_RESERVE:
        reserve = setpoint.reserve
        if reserve is None:
            raise InvalidRecordError(n, "reserve", "required for ARM_RESERVE")
        if reserve.product not in ARMABLE:
            raise InvalidRecordError(
                n, "reserve", f"{reserve.product} is not armed at the edge (FCR_N, FCR_D_*, FFR)"
            )
        if setpoint.product is not None and setpoint.product is not reserve.product:
            raise InvalidRecordError(
                n, "product", f"{setpoint.product} differs from the reserve's {reserve.product}"
            )
        return reserve.product
    if kind is CommandKind.DISARM_RESERVE:
        return _named_product(setpoint, ARMABLE, "FCR_N, FCR_D_UP, FCR_D_DOWN, FFR")
    if kind is CommandKind.ORDER:
        product = _named_product(setpoint, ORDERABLE, "AFRR, MFRR")
        power = setpoint.power_kw
        if power is None or not math.isfinite(power):
            raise InvalidRecordError(n, "power_kw", f"ORDER needs a finite change, got {power}")
        return product
    return None  # STOP, SAFE_MODE


def _named_product(setpoint: SiteSetpoint, allowed: frozenset[Product], names: str) -> Product:
    product = setpoint.product
    if product is None or product not in allowed:
        raise InvalidRecordError(
            "SiteSetpoint", "product", f"{setpoint.kind} needs one of {names}, got {product}"
        )
    return product


def _micros(seconds: float) -> int:
    return round(seconds * MICROS_PER_S)


def _site_lane(state: FilterState) -> Lane:
    """The site lane as a Lane (product NONE; its last accepted id is the site's)."""
    return Lane(
        _SITE_LANE,
        state.last_kind,
        state.last_power_kw,
        None,
        state.last_written_at,
        state.last_valid_until,
        state.last_command_id,
        None,
        state.pending,
    )


def _with(
    state: FilterState,
    product: Product | None,
    lane: Lane,
    accepted: tuple[int, str] | None = None,
) -> FilterState:
    """``state`` with ``lane`` as the site lane (``product`` None) or as a product lane, and
    ``accepted`` = (event time, setpoint id) as the site's last accepted setpoint if given.
    Built directly (this runs per site per setpoint)."""
    event_time, setpoint_id = (
        (state.last_event_time, state.last_setpoint_id) if accepted is None else accepted
    )
    if product is not None:
        return FilterState(
            event_time,
            setpoint_id,
            state.last_kind,
            state.last_power_kw,
            state.last_reserve,
            state.last_written_at,
            state.last_valid_until,
            state.last_command_id,
            state.pending,
            state.with_lane(lane),
        )
    return FilterState(
        event_time,
        setpoint_id,
        lane.kind,
        lane.power_kw,
        state.last_reserve,
        lane.written_at,
        lane.valid_until,
        lane.command_id,
        lane.pending,
        state.lanes,
    )


def _command(
    site_id: str,
    setpoint_id: str,
    now: int,
    *,
    config: FilterConfig,
    kind: CommandKind,
    power_kw: float | None,
    reserve: ReserveArm | None,
    product: Product | None,
    valid_until: int,
) -> SiteCommand:
    command_id = command_id_for(site_id, setpoint_id)
    return SiteCommand(
        event_id=command_event_id(command_id),
        event_time=now,
        site_id=site_id,
        command_id=command_id,
        setpoint_id=setpoint_id,
        kind=kind,
        power_kw=power_kw,
        reserve=reserve,
        valid_until=valid_until,
        issued_by=config.issued_by,
        product=product if kind in (CommandKind.DISARM_RESERVE, CommandKind.ORDER) else None,
    )


def _written(lane: Lane, command: SiteCommand, now: int, setpoint_id: str | None) -> Lane:
    return Lane(
        lane.product,
        command.kind,
        command.power_kw,
        command.reserve,
        now,
        command.valid_until,
        command.command_id,
        setpoint_id,
        None,
    )


def _band(reserve: ReserveArm) -> tuple[float, float, float, bool]:
    return reserve.f_start_hz, reserve.f_full_hz, reserve.deadband_hz, reserve.symmetric


def _gate(  # noqa: PLR0911  # a decision table: one return per rule
    w: Lane,
    *,
    kind: CommandKind,
    power_kw: float | None,
    reserve: ReserveArm | None,
    valid_until: int,
    now: int,
    config: FilterConfig,
    lanes_active: bool,
) -> FilterReason:
    if kind is CommandKind.SAFE_MODE and lanes_active:
        return FilterReason.KIND_CHANGE
    if w.kind is None or w.valid_until is None or w.written_at is None:
        return FilterReason.FIRST
    if w.valid_until <= now:
        return FilterReason.PREVIOUS_EXPIRED
    if kind is not w.kind:
        return FilterReason.KIND_CHANGE
    refresh_due = (
        w.valid_until - now <= _micros(config.refresh_before_s) and valid_until > w.valid_until
    )
    if kind is CommandKind.ARM_RESERVE:
        assert reserve is not None  # noqa: S101  # checked by lane_of
        if w.reserve is None or _band(w.reserve) != _band(reserve):
            return FilterReason.CHANGED
        delta = abs(reserve.capacity_kw - w.reserve.capacity_kw)
        step = FilterReason.CHANGED
    elif kind in (CommandKind.SET_POWER, CommandKind.ORDER):
        power = power_kw or 0.0
        if kind is CommandKind.ORDER and power == 0.0 and w.power_kw:
            return FilterReason.ENDED
        delta = abs(power - (w.power_kw or 0.0))
        step = FilterReason.RAMP_STEP
    else:  # SAFE_MODE, DISARM_RESERVE: no payload to compare
        return FilterReason.REFRESH if refresh_due else FilterReason.UNCHANGED
    if delta > 0 and delta >= config.threshold_kw:
        return step
    if delta > 0 and now - w.written_at >= _micros(config.min_interval_s):
        return FilterReason.INTERVAL_ELAPSED
    if refresh_due:
        return FilterReason.REFRESH
    return FilterReason.SUPPRESSED if delta > 0 else FilterReason.UNCHANGED


def _stop(
    state: FilterState, setpoint: SiteSetpoint, now: int, config: FilterConfig
) -> tuple[FilterState, SiteCommand, FilterReason]:
    valid_until = max(setpoint.valid_until, now + _micros(config.stop_min_validity_s))
    command = _command(
        setpoint.site_id,
        setpoint.setpoint_id,
        now,
        config=config,
        kind=CommandKind.STOP,
        power_kw=None,
        reserve=None,
        product=None,
        valid_until=valid_until,
    )
    last = state.last_event_time
    event_time = setpoint.event_time if last is None else max(last, setpoint.event_time)
    after = FilterState(
        event_time,
        setpoint.setpoint_id,
        CommandKind.STOP,
        None,
        None,
        now,
        valid_until,
        command.command_id,
        None,
        (),  # every arm and order ends at the edge
    )
    return after, command, FilterReason.STOP


def _payload(
    setpoint: SiteSetpoint, limits: SiteLimits | None
) -> tuple[float | None, ReserveArm | None]:
    """(power, reserve) of a setpoint, clamped to the site limits (rule 4)."""
    kind = setpoint.kind
    power_kw = setpoint.power_kw if kind in (CommandKind.SET_POWER, CommandKind.ORDER) else None
    reserve = setpoint.reserve if kind is CommandKind.ARM_RESERVE else None
    if limits is not None:
        if power_kw is not None:
            clamp = limits.clamp_power if kind is CommandKind.SET_POWER else limits.clamp_change
            power_kw = clamp(power_kw)
        reserve = None if reserve is None else limits.clamp_reserve(reserve)
    return power_kw, reserve


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
    product = lane_of(setpoint)
    kind = setpoint.kind
    if kind is CommandKind.STOP:
        return _stop(state, setpoint, now, config)
    setpoint_id = setpoint.setpoint_id
    if setpoint_id == state.last_setpoint_id:
        return state, None, FilterReason.DUPLICATE
    lane = None if product is None else state.lane(product)
    if lane is not None and lane.setpoint_id == setpoint_id:
        return state, None, FilterReason.DUPLICATE
    if now - setpoint.event_time > _micros(config.max_age_s):
        return state, None, FilterReason.STALE
    if state.last_event_time is not None and setpoint.event_time < state.last_event_time:
        return state, None, FilterReason.OUT_OF_ORDER
    if setpoint.valid_until <= now:
        return state, None, FilterReason.EXPIRED

    power_kw, reserve = _payload(setpoint, limits)
    w = _site_lane(state) if product is None else lane or Lane(product)
    lanes_active = kind is CommandKind.SAFE_MODE and any(x.active(now) for x in state.lanes)
    reason = _gate(
        w,
        kind=kind,
        power_kw=power_kw,
        reserve=reserve,
        valid_until=setpoint.valid_until,
        now=now,
        config=config,
        lanes_active=lanes_active,
    )
    accepted = (setpoint.event_time, setpoint_id)
    lane_id = None if product is None else setpoint_id
    if not reason.written:
        pending = None
        extends = (
            reason is FilterReason.UNCHANGED
            and kind in _EXTENDABLE
            and w.valid_until is not None
            and setpoint.valid_until > w.valid_until
        )
        if reason is FilterReason.SUPPRESSED or extends:
            pending = Pending(
                setpoint.site_id,
                setpoint_id,
                power_kw,
                setpoint.valid_until,
                kind,
                reserve,
                product if kind is CommandKind.ORDER else None,
            )
        kept = Lane(
            w.product,
            w.kind,
            w.power_kw,
            w.reserve,
            w.written_at,
            w.valid_until,
            w.command_id,
            lane_id,
            pending,
        )
        return _with(state, product, kept, accepted), None, reason
    command = _command(
        setpoint.site_id,
        setpoint_id,
        now,
        config=config,
        kind=kind,
        power_kw=power_kw,
        reserve=reserve,
        product=product,
        valid_until=setpoint.valid_until,
    )
    after = _with(state, product, _written(w, command, now, lane_id), accepted)
    if kind is CommandKind.SAFE_MODE:
        after = replace(after, lanes=())  # the edge disarms every reserve, ends every order
    return after, command, reason


def _same_payload(pending: Pending, w: Lane) -> bool:
    if pending.kind is not w.kind:
        return False
    if pending.kind is CommandKind.ARM_RESERVE:
        return pending.reserve == w.reserve
    return pending.power_kw == w.power_kw


def tick_lane(
    state: FilterState, product: Product | None, now: int, config: FilterConfig
) -> tuple[FilterState, SiteCommand | None, FilterReason]:
    """Write the pending setpoint of one lane (``product`` None: the site lane) once the gate
    allows it (rule 6)."""
    if product is None:
        w = _site_lane(state)
    else:
        found = state.lane(product)
        if found is None:
            return state, None, FilterReason.UNCHANGED
        w = found
    pending = w.pending
    if pending is None:
        return state, None, FilterReason.UNCHANGED
    if pending.valid_until <= now:
        return _with(state, product, replace(w, pending=None)), None, FilterReason.EXPIRED
    expired = w.written_at is None or w.valid_until is None or w.valid_until <= now
    same = not expired and _same_payload(pending, w)
    if expired:
        reason = FilterReason.DEFERRED
    elif same:
        assert w.valid_until is not None  # noqa: S101  # not expired
        due = w.valid_until - now <= _micros(config.refresh_before_s)
        if not due:
            return state, None, FilterReason.UNCHANGED  # an extension, not due yet
        reason = FilterReason.REFRESH
    else:
        assert w.written_at is not None  # noqa: S101  # not expired
        if now - w.written_at < _micros(config.min_interval_s):
            return state, None, FilterReason.SUPPRESSED
        reason = FilterReason.DEFERRED
    command = _command(
        pending.site_id,
        pending.setpoint_id,
        now,
        config=config,
        kind=pending.kind,
        power_kw=pending.power_kw,
        reserve=pending.reserve,
        product=product,
        valid_until=pending.valid_until,
    )
    return _with(state, product, _written(w, command, now, w.setpoint_id)), command, reason


def tick(
    state: FilterState, now: int, config: FilterConfig
) -> tuple[FilterState, list[SiteCommand]]:
    """``tick_lane`` of every lane holding a pending setpoint: the new state and the
    commands written (site lane first, then the product lanes in product order)."""
    state, commands, _ = tick_with_reasons(state, now, config)
    return state, commands


def tick_with_reasons(
    state: FilterState, now: int, config: FilterConfig
) -> tuple[FilterState, list[SiteCommand], list[FilterReason]]:
    """:func:`tick`, and the reason of each pending setpoint this tick settled: written
    (DEFERRED, REFRESH) or dropped because it expired first (EXPIRED); a pending setpoint
    still waiting gives none."""
    commands: list[SiteCommand] = []
    settled: list[FilterReason] = []
    lanes: list[Product | None] = [None] if state.pending is not None else []
    lanes += [lane.product for lane in state.lanes if lane.pending is not None]
    for product in lanes:
        state, command, reason = tick_lane(state, product, now, config)
        if command is not None:
            commands.append(command)
            settled.append(reason)
        elif reason is FilterReason.EXPIRED:
            settled.append(reason)
    return state, commands, settled


def _lane_due(w: Lane, config: FilterConfig) -> int | None:
    """When ``tick_lane`` first changes lane ``w`` (module doc, rule 6; None: it never
    does, nothing pending): the pending setpoint expires, the lane's last write expires,
    or the gate opens (an extension ``refresh_before_s`` before the write expires, a
    change ``min_interval_s`` after the write)."""
    pending = w.pending
    if pending is None:
        return None
    if w.written_at is None or w.valid_until is None:
        return 0  # nothing written yet: at once
    if _same_payload(pending, w):
        gate = w.valid_until - _micros(config.refresh_before_s)
    else:
        gate = w.written_at + _micros(config.min_interval_s)
    return min(pending.valid_until, w.valid_until, gate)


def next_due(state: FilterState, config: FilterConfig) -> int | None:
    """The earliest instant at which ``tick`` writes or drops something for this site
    (None: nothing pending). Ticking exactly at it changes the state; ticking earlier does
    not: an event-time scheduler ticks each site at its due instants only."""
    dues = [_lane_due(_site_lane(state), config)] if state.pending is not None else []
    dues += [_lane_due(lane, config) for lane in state.lanes if lane.pending is not None]
    found = [d for d in dues if d is not None]
    return min(found) if found else None
