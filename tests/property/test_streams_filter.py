"""Hypothesis properties of the setpoint filter over random setpoint streams for one site:
every kind, three armed products and two order products mixed, timer ticks in between."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import CommandKind, Product
from contract.records import ReserveArm, SiteCommand, SiteSetpoint
from streams.steps.setpoint_filter import (
    FilterConfig,
    FilterReason,
    FilterState,
    Lane,
    SiteLimits,
    filter_setpoint,
    lane_of,
    tick,
    tick_with_reasons,
)

S = 1_000_000
T0 = 1_700_000_000 * S
CONFIG = FilterConfig(max_age_s=5.0, threshold_kw=0.5, min_interval_s=10.0, refresh_before_s=15.0)
LIMITS = SiteLimits(max_discharge_kw=8.0, max_charge_kw=6.0)
BANDS = {
    Product.FCR_N: (50.0, 49.9),
    Product.FCR_D_UP: (49.9, 49.5),
    Product.FCR_D_DOWN: (50.1, 50.5),
}
K = CommandKind
DROPS = {
    FilterReason.DUPLICATE,
    FilterReason.STALE,
    FilterReason.OUT_OF_ORDER,
    FilterReason.EXPIRED,
}


@dataclass(frozen=True)
class Step:
    advance_ms: int
    lag_ms: int
    kind: CommandKind
    product: Product
    order_product: Product
    power: float
    capacity: float
    valid_s: int
    reuse_previous_id: bool
    tick_after_ms: int | None


steps = st.lists(
    st.builds(
        Step,
        advance_ms=st.integers(0, 20_000),
        lag_ms=st.integers(-1_000, 8_000),
        kind=st.sampled_from(
            [K.SET_POWER] * 3
            + [K.ARM_RESERVE] * 4
            + [K.ORDER] * 3
            + [K.DISARM_RESERVE, K.STOP, K.SAFE_MODE]
        ),
        product=st.sampled_from(list(BANDS)),
        order_product=st.sampled_from([Product.AFRR, Product.MFRR]),
        power=st.floats(-15.0, 15.0, allow_nan=False) | st.sampled_from([0.0, 0.2, 1.0]),
        capacity=st.sampled_from([0.0, 2.0, 2.3, 4.0, 12.0]),
        valid_s=st.integers(0, 60),
        reuse_previous_id=st.booleans(),
        tick_after_ms=st.none() | st.integers(0, 15_000),
    ),
    max_size=60,
)


@dataclass(frozen=True)
class Entry:
    setpoint: SiteSetpoint | None  # None: a tick
    now: int
    before: FilterState
    commands: tuple[SiteCommand, ...]
    reason: FilterReason | None  # None for a tick


def _setpoint(i: int, step: Step, sp_id: str, event_time: int) -> SiteSetpoint:
    kind = step.kind
    product: Product | None = None
    if kind is K.DISARM_RESERVE:
        product = step.product
    if kind is K.ORDER:
        product = step.order_product
    f_start, f_full = BANDS[step.product]
    return SiteSetpoint(
        event_id=f"00000000-0000-4000-8000-{i:012d}",
        event_time=event_time,
        site_id="site-1",
        setpoint_id=sp_id,
        kind=kind,
        power_kw=step.power if kind in (K.SET_POWER, K.ORDER) else None,
        reserve=ReserveArm(
            step.product, step.capacity, f_start, f_full, 0.0, step.product is Product.FCR_N
        )
        if kind is K.ARM_RESERVE
        else None,
        valid_until=event_time + step.valid_s * S,
        product=product,
    )


def run(stream: list[Step], *, limits: SiteLimits | None = LIMITS) -> list[Entry]:
    """Feed the stream (setpoints, and timer ticks where a step asks for one)."""
    state = FilterState()
    now = T0
    out: list[Entry] = []
    last_id = "sp-0"
    for i, step in enumerate(stream):
        now += step.advance_ms * 1000
        sp_id = last_id if step.reuse_previous_id else f"sp-{i + 1}"
        last_id = sp_id
        setpoint = _setpoint(i, step, sp_id, now - step.lag_ms * 1000)
        before = state
        state, command, reason = filter_setpoint(state, setpoint, now, CONFIG, limits)
        # the state survives the table's serialisation at every step
        assert FilterState.from_dict(state.to_dict()) == state
        out.append(Entry(setpoint, now, before, () if command is None else (command,), reason))
        if step.tick_after_ms is not None:
            now += step.tick_after_ms * 1000
            before = state
            state, commands = tick(state, now, CONFIG)
            assert FilterState.from_dict(state.to_dict()) == state
            out.append(Entry(None, now, before, tuple(commands), None))
    return out


def _lane_key(command: SiteCommand) -> Product | None:
    if command.kind is K.ARM_RESERVE:
        assert command.reserve is not None
        return command.reserve.product
    if command.kind in (K.DISARM_RESERVE, K.ORDER):
        return command.product
    return None


def _lane(state: FilterState, product: Product | None) -> Lane:
    if product is None:
        return Lane(
            Product.NONE,
            state.last_kind,
            state.last_power_kw,
            None,
            state.last_written_at,
            state.last_valid_until,
            state.last_command_id,
            None,
            state.pending,
        )
    return state.lane(product) or Lane(product)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_stop_is_never_dropped_or_delayed(stream: list[Step]) -> None:
    for e in run(stream):
        if e.setpoint is not None and e.setpoint.kind is K.STOP:
            assert e.reason is FilterReason.STOP
            (command,) = e.commands
            assert command.kind is K.STOP
            assert command.event_time == e.now  # emitted in the same step: no delay
            assert command.valid_until > e.now  # and not dead on arrival


@settings(max_examples=200, deadline=None)
@given(steps)
def test_commands_stay_within_site_limits(stream: list[Step]) -> None:
    swing = LIMITS.max_charge_kw + LIMITS.max_discharge_kw
    for e in run(stream):
        for command in e.commands:
            if command.kind is K.SET_POWER:
                assert command.power_kw is not None
                assert -LIMITS.max_charge_kw <= command.power_kw <= LIMITS.max_discharge_kw
            if command.kind is K.ORDER:
                assert command.power_kw is not None
                assert -swing <= command.power_kw <= swing
            if command.reserve is not None:
                cap = command.reserve.capacity_kw
                limit = {
                    Product.FCR_N: min(LIMITS.max_charge_kw, LIMITS.max_discharge_kw),
                    Product.FCR_D_DOWN: LIMITS.max_charge_kw,
                }.get(command.reserve.product, LIMITS.max_discharge_kw)
                assert 0.0 <= cap <= limit


@settings(max_examples=200, deadline=None)
@given(steps)
def test_every_command_names_its_lane(stream: list[Step]) -> None:
    """DISARM and ORDER carry their product, ARM its reserve's; the others none."""
    for e in run(stream):
        for command in e.commands:
            if command.kind in (K.DISARM_RESERVE, K.ORDER):
                assert command.product is not None
            else:
                assert command.product is None
            assert (command.reserve is not None) == (command.kind is K.ARM_RESERVE)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_no_two_consecutive_commands_of_a_lane_are_redundant(stream: list[Step]) -> None:
    previous: dict[Product | None, SiteCommand] = {}
    for e in run(stream):
        for command in e.commands:
            if command.kind in (K.STOP, K.SAFE_MODE):
                previous.clear()  # every lane ends at the edge
            key = _lane_key(command)
            last = previous.get(key)
            if (
                last is not None
                and command.kind is not K.STOP
                and command.kind is last.kind
                and last.valid_until > e.now
                and (command.power_kw, command.reserve) == (last.power_kw, last.reserve)
            ):  # only a refresh may repeat a payload, and it extends validity
                assert e.reason in (FilterReason.REFRESH, None)
                assert command.valid_until > last.valid_until
                assert last.valid_until - e.now <= CONFIG.refresh_before_s * S
            previous[key] = command


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_suppressed_change_is_below_threshold_against_the_lanes_last_write(
    stream: list[Step],
) -> None:
    for e in run(stream, limits=None):
        sp = e.setpoint
        if sp is None:
            continue
        w = _lane(e.before, lane_of(sp))
        if e.reason is FilterReason.SUPPRESSED:
            assert not e.commands
            assert w.written_at is not None
            assert e.now - w.written_at < CONFIG.min_interval_s * S
            if sp.kind is K.ARM_RESERVE:
                assert sp.reserve is not None
                assert w.reserve is not None
                delta = abs(sp.reserve.capacity_kw - w.reserve.capacity_kw)
            else:
                assert sp.power_kw is not None
                assert w.power_kw is not None
                delta = abs(sp.power_kw - w.power_kw)
            assert 0 < delta < CONFIG.threshold_kw
        if (
            sp.kind in (K.SET_POWER, K.ORDER)
            and e.reason not in {FilterReason.STALE, FilterReason.OUT_OF_ORDER}
            and e.reason not in {FilterReason.EXPIRED, FilterReason.DUPLICATE}
            and sp.power_kw is not None
            and w.power_kw is not None
            and w.kind is sp.kind
            and abs(sp.power_kw - w.power_kw) >= CONFIG.threshold_kw
        ):
            assert e.commands  # a real ramp step is never held back


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_held_back_change_is_written_by_the_first_tick_after_min_interval(
    stream: list[Step],
) -> None:
    for e in run(stream):
        if e.setpoint is not None:
            continue
        written = {c.setpoint_id for c in e.commands}
        products: list[Product | None] = [None, *(lane.product for lane in e.before.lanes)]
        for product in products:
            w = _lane(e.before, product)
            pending = w.pending
            if pending is None or pending.valid_until <= e.now:
                continue
            assert w.written_at is not None
            assert w.valid_until is not None
            same = (pending.power_kw, pending.reserve) == (w.power_kw, w.reserve) and (
                pending.kind is w.kind
            )
            due = (
                w.valid_until <= e.now
                or (same and w.valid_until - e.now <= CONFIG.refresh_before_s * S)
                or (not same and e.now - w.written_at >= CONFIG.min_interval_s * S)
            )
            assert (pending.setpoint_id in written) == due


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_lanes_commands_follow_its_setpoints_order(stream: list[Step]) -> None:
    """A newer ARM/ORDER of a product replaces the older: a lane never writes an older
    setpoint after a newer one (deferred writes included)."""
    times: dict[str, int] = {}
    last: dict[Product | None, int] = {}
    for e in run(stream):
        if e.setpoint is not None and e.reason not in DROPS:  # accepted: may be written
            times[e.setpoint.setpoint_id] = e.setpoint.event_time
        for command in e.commands:
            if command.kind in (K.STOP, K.SAFE_MODE):
                continue
            assert command.setpoint_id is not None
            key = _lane_key(command)
            t = times[command.setpoint_id]
            assert t >= last.get(key, t)
            last[key] = t


@settings(max_examples=200, deadline=None)
@given(steps)
def test_replay_gives_the_same_commands(stream: list[Step]) -> None:
    first = [e.commands for e in run(stream)]
    second = [e.commands for e in run(stream)]
    assert first == second


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_tick_names_each_pending_setpoint_it_settles(stream: list[Step]) -> None:
    """``tick_with_reasons`` is ``tick`` plus a reason per pending setpoint settled: one
    DEFERRED or REFRESH per command written, one EXPIRED per pending setpoint that expired
    before its gate opened (what the worker's /metrics count); nothing for those still
    waiting."""
    for e in run(stream):
        if e.setpoint is not None:
            continue
        state, commands, reasons = tick_with_reasons(e.before, e.now, CONFIG)
        assert (state, commands) == tick(e.before, e.now, CONFIG)
        assert tuple(commands) == e.commands
        written = [r for r in reasons if r.written]
        assert len(written) == len(commands)
        assert set(written) <= {FilterReason.DEFERRED, FilterReason.REFRESH}
        lanes: list[Product | None] = [None, *(lane.product for lane in e.before.lanes)]
        pendings = [_lane(e.before, product).pending for product in lanes]
        expired = [p for p in pendings if p is not None and p.valid_until <= e.now]
        assert reasons.count(FilterReason.EXPIRED) == len(expired)
        assert len(reasons) == len(written) + len(expired)
