"""Hypothesis properties of the setpoint filter over random setpoint streams for one site."""

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
    SiteLimits,
    filter_setpoint,
    tick,
)

S = 1_000_000
T0 = 1_700_000_000 * S
CONFIG = FilterConfig(max_age_s=5.0, threshold_kw=0.5, min_interval_s=10.0, refresh_before_s=15.0)
LIMITS = SiteLimits(max_discharge_kw=8.0, max_charge_kw=6.0)


@dataclass(frozen=True)
class Step:
    advance_ms: int
    lag_ms: int
    kind: CommandKind
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
            [CommandKind.SET_POWER] * 5
            + [CommandKind.STOP, CommandKind.SAFE_MODE, CommandKind.ARM_RESERVE]
        ),
        power=st.floats(-15.0, 15.0, allow_nan=False),
        capacity=st.sampled_from([2.0, 4.0, 12.0]),
        valid_s=st.integers(0, 60),
        reuse_previous_id=st.booleans(),
        tick_after_ms=st.none() | st.integers(0, 15_000),
    ),
    max_size=60,
)


Entry = tuple[SiteSetpoint | None, int, FilterState, SiteCommand | None, FilterReason]


def run(stream: list[Step], *, limits: SiteLimits | None = LIMITS) -> list[Entry]:
    """Feed the stream (setpoints, and timer ticks where a step asks for one); return
    (setpoint or None for a tick, now, state before, command, reason) per call."""
    state = FilterState()
    now = T0
    out: list[Entry] = []
    last_id = "sp-0"
    for i, step in enumerate(stream):
        now += step.advance_ms * 1000
        sp_id = last_id if step.reuse_previous_id else f"sp-{i + 1}"
        last_id = sp_id
        event_time = now - step.lag_ms * 1000
        setpoint = SiteSetpoint(
            event_id="00000000-0000-4000-8000-000000000000",
            event_time=event_time,
            site_id="site-1",
            setpoint_id=sp_id,
            kind=step.kind,
            power_kw=step.power if step.kind is CommandKind.SET_POWER else None,
            reserve=ReserveArm(Product.FCR_D_UP, step.capacity, 49.9, 49.5)
            if step.kind is CommandKind.ARM_RESERVE
            else None,
            valid_until=event_time + step.valid_s * S,
        )
        before = state
        state, command, reason = filter_setpoint(state, setpoint, now, CONFIG, limits)
        # the state survives the table's serialisation at every step
        assert FilterState.from_dict(state.to_dict()) == state
        out.append((setpoint, now, before, command, reason))
        if step.tick_after_ms is not None:
            now += step.tick_after_ms * 1000
            before = state
            state, command, reason = tick(state, now, CONFIG)
            assert FilterState.from_dict(state.to_dict()) == state
            out.append((None, now, before, command, reason))
    return out


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_stop_is_never_dropped_or_delayed(stream: list[Step]) -> None:
    for setpoint, now, _, command, reason in run(stream):
        if setpoint is not None and setpoint.kind is CommandKind.STOP:
            assert reason is FilterReason.STOP
            assert command is not None
            assert command.kind is CommandKind.STOP
            assert command.event_time == now  # emitted in the same step: no delay
            assert command.valid_until > now  # and not dead on arrival


@settings(max_examples=200, deadline=None)
@given(steps)
def test_commands_stay_within_site_limits(stream: list[Step]) -> None:
    for _, _, _, command, _ in run(stream):
        if command is None:
            continue
        if command.power_kw is not None:
            assert -LIMITS.max_charge_kw <= command.power_kw <= LIMITS.max_discharge_kw
        if command.reserve is not None:
            assert 0.0 <= command.reserve.capacity_kw <= LIMITS.max_discharge_kw


@settings(max_examples=200, deadline=None)
@given(steps)
def test_no_two_consecutive_commands_are_redundant(stream: list[Step]) -> None:
    previous: SiteCommand | None = None
    for _, now, _, command, reason in run(stream):
        if command is None:
            continue
        if (
            previous is not None
            and command.kind is not CommandKind.STOP
            and command.kind is previous.kind
            and previous.valid_until > now
        ):
            same_payload = (command.power_kw, command.reserve) == (
                previous.power_kw,
                previous.reserve,
            )
            if same_payload:  # only a refresh may repeat a payload, and it extends validity
                assert reason is FilterReason.REFRESH
                assert command.valid_until > previous.valid_until
                assert previous.valid_until - now <= CONFIG.refresh_before_s * S
        previous = command


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_suppressed_change_is_below_threshold_against_the_last_write(stream: list[Step]) -> None:
    for setpoint, now, before, command, reason in run(stream, limits=None):
        if setpoint is None:
            continue
        if reason is FilterReason.SUPPRESSED:
            assert command is None
            assert setpoint.power_kw is not None
            assert before.last_power_kw is not None
            assert before.last_written_at is not None
            assert abs(setpoint.power_kw - before.last_power_kw) < CONFIG.threshold_kw
            assert now - before.last_written_at < CONFIG.min_interval_s * S
        if (
            setpoint.kind is CommandKind.SET_POWER
            and reason not in {FilterReason.STALE, FilterReason.OUT_OF_ORDER}
            and reason not in {FilterReason.EXPIRED, FilterReason.DUPLICATE}
            and setpoint.power_kw is not None
            and before.last_power_kw is not None
            and before.last_kind is CommandKind.SET_POWER
            and abs(setpoint.power_kw - before.last_power_kw) >= CONFIG.threshold_kw
        ):
            assert command is not None  # a real ramp step is never held back


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_held_back_change_is_written_by_the_first_tick_after_min_interval(
    stream: list[Step],
) -> None:
    for setpoint, now, before, command, reason in run(stream):
        if setpoint is not None or before.pending is None:
            continue
        pending = before.pending
        assert before.last_written_at is not None
        if pending.valid_until > now and now - before.last_written_at >= CONFIG.min_interval_s * S:
            assert reason is FilterReason.DEFERRED
            assert command is not None
            assert command.power_kw == pending.power_kw
            assert command.setpoint_id == pending.setpoint_id


@settings(max_examples=200, deadline=None)
@given(steps)
def test_replay_gives_the_same_commands(stream: list[Step]) -> None:
    first = [c for *_, c, _ in run(stream)]
    second = [c for *_, c, _ in run(stream)]
    assert first == second
