"""Command queue (STOP overtakes, drops older power commands) and the expiry decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.enums import CommandKind
from edge.bridge.model import BridgeCommand
from edge.bridge.scheduler import Action, CommandQueue, SiteState, decide

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def c(cid: str, kind: CommandKind, at_s: float, valid_s: float = 60.0) -> BridgeCommand:
    return BridgeCommand(
        command_id=cid,
        site_id="s1",
        kind=kind,
        event_time=T0 + timedelta(seconds=at_s),
        valid_until=T0 + timedelta(seconds=at_s + valid_s),
        power_kw=1.0 if kind is CommandKind.SET_POWER else None,
    )


P, S, SM = CommandKind.SET_POWER, CommandKind.STOP, CommandKind.SAFE_MODE


@pytest.mark.parametrize(
    ("pushes", "order", "dropped"),
    [
        ([("a", P, 0), ("b", P, 1)], ["a", "b"], []),
        ([("a", P, 0), ("b", P, 1), ("x", S, 2)], ["x"], ["a", "b"]),
        # a set-power issued after the stop (it was delayed) survives, behind the stop
        ([("a", P, 0), ("late", P, 5), ("x", S, 2)], ["x", "late"], ["a"]),
        ([("x", S, 0), ("y", S, 1)], ["x", "y"], []),
        ([("a", P, 0), ("m", SM, 1)], ["m"], ["a"]),
        ([("x", S, 0), ("a", P, 1)], ["x", "a"], []),
    ],
)
def test_queue_table(
    pushes: list[tuple[str, CommandKind, float]], order: list[str], dropped: list[str]
) -> None:
    q = CommandQueue()
    gone: list[str] = []
    for cid, kind, at in pushes:
        gone += [d.command_id for d in q.push(c(cid, kind, at))]
    assert [x.command_id for x in q.snapshot()] == order
    assert gone == dropped
    popped = []
    while (nxt := q.pop()) is not None:
        popped.append(nxt.command_id)
    assert popped == order
    assert len(q) == 0


@given(st.lists(st.tuples(st.sampled_from([P, S, SM]), st.integers(0, 50)), max_size=30))
def test_queue_invariants(items: list[tuple[CommandKind, int]]) -> None:
    q = CommandQueue()
    pushed = [c(str(i), kind, at) for i, (kind, at) in enumerate(items)]
    dropped: list[BridgeCommand] = []
    for cmd in pushed:
        dropped += q.push(cmd)
    snap = q.snapshot()
    # nothing lost or duplicated
    assert sorted(x.command_id for x in [*snap, *dropped]) == sorted(x.command_id for x in pushed)
    # every stop is ahead of every power command, and no queued power command is older
    # than a stop pushed after it
    kinds = [x.kind for x in snap]
    first_power = next((i for i, k in enumerate(kinds) if k not in (S, SM)), len(kinds))
    assert all(k not in (S, SM) for k in kinds[first_power:])
    for d in dropped:
        assert d.kind not in (S, SM)


def test_decide_table() -> None:
    active = c("a", P, 0, valid_s=10)
    assert decide(SiteState(), T0) is Action.NONE
    assert decide(SiteState(active, in_safe_mode=False), T0 + timedelta(seconds=5)) is Action.NONE
    later = T0 + timedelta(seconds=10)
    assert decide(SiteState(active, in_safe_mode=False), later) is Action.REVERT_TO_SAFE_MODE
    assert decide(SiteState(active, in_safe_mode=False), later, queued=1) is Action.NONE
    assert decide(SiteState(active, in_safe_mode=True), later) is Action.NONE


@given(valid_s=st.integers(1, 100), now_s=st.integers(0, 200), queued=st.integers(0, 2))
def test_decide_reverts_exactly_when_expired_without_successor(
    valid_s: int, now_s: int, queued: int
) -> None:
    state = SiteState(c("a", P, 0, valid_s=valid_s), in_safe_mode=False)
    action = decide(state, T0 + timedelta(seconds=now_s), queued)
    assert (action is Action.REVERT_TO_SAFE_MODE) == (now_s >= valid_s and queued == 0)
