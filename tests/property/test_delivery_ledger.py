"""The per-record delivery bookkeeping under any sequence of sends, acks and failures.

Whatever happens on the wire, every record added is in exactly one place (waiting, on the
wire, acknowledged or rejected), is acknowledged at most once, and a lane's records are
acknowledged in the order they were added; a failure puts back only the failed batch and
delays only its own lane.
"""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from contract.kafka.ledger import DeliveryLedger, LedgerError

LANES = ("a", "b", "c")


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ledger: DeliveryLedger[str, int] = DeliveryLedger(backoff_s=0.5, max_backoff_s=4.0)
        self.now = 0.0
        self.next_id = 0
        self.added: dict[str, list[int]] = {lane: [] for lane in LANES}
        self.acked: dict[str, list[int]] = {lane: [] for lane in LANES}
        self.rejected: dict[str, list[int]] = {lane: [] for lane in LANES}
        self.finished: dict[str, list[int]] = {lane: [] for lane in LANES}  # acked or rejected
        self.on_wire: dict[str, list[int]] = {}

    @rule(lane=st.sampled_from(LANES), n=st.integers(1, 5))
    def add(self, lane: str, n: int) -> None:
        for _ in range(n):
            self.ledger.add(lane, self.next_id)
            self.added[lane].append(self.next_id)
            self.next_id += 1

    @rule(dt=st.floats(0.0, 5.0))
    def time_passes(self, dt: float) -> None:
        self.now += dt

    @rule(lane=st.sampled_from(LANES), count=st.integers(1, 6))
    def start(self, lane: str, count: int) -> None:
        state = self.ledger.state(lane)
        if not self.ledger.ready(lane, self.now):
            if state.on_wire or state.waiting == 0:
                with pytest.raises(LedgerError):
                    self.ledger.start(lane, max(1, count))
            return
        count = min(count, state.waiting)
        expected = self.ledger.peek(lane, count)
        batch = self.ledger.start(lane, count)
        assert batch == expected
        self.on_wire[lane] = batch

    @precondition(lambda self: bool(self.on_wire))
    @rule(data=st.data())
    def ack(self, data: st.DataObject) -> None:
        lane = data.draw(st.sampled_from(sorted(self.on_wire)))
        done = self.ledger.acked(lane)
        assert done == self.on_wire.pop(lane)
        self.acked[lane].extend(done)
        self.finished[lane].extend(done)
        assert self.ledger.state(lane).failures == 0

    @precondition(lambda self: bool(self.on_wire))
    @rule(data=st.data())
    def fail(self, data: st.DataObject) -> None:
        lane = data.draw(st.sampled_from(sorted(self.on_wire)))
        others = {x: self.ledger.state(x) for x in LANES if x != lane}
        batch = self.on_wire.pop(lane)
        retry_at = self.ledger.failed(lane, self.now)
        assert retry_at > self.now
        assert self.ledger.peek(lane, len(batch)) == batch  # back at the front, in order
        assert not self.ledger.ready(lane, self.now)
        assert {x: self.ledger.state(x) for x in LANES if x != lane} == others

    @rule(lane=st.sampled_from(LANES))
    def reject(self, lane: str) -> None:
        state = self.ledger.state(lane)
        if state.waiting == 0 or state.on_wire:
            with pytest.raises(LedgerError):
                self.ledger.reject(lane)
            return
        item = self.ledger.reject(lane)
        self.rejected[lane].append(item)
        self.finished[lane].append(item)

    @invariant()
    def every_record_in_exactly_one_place(self) -> None:
        out = list(self.ledger.unacked())
        for lane in LANES:
            mine = [item for x, item in out if x == lane]
            places = mine + self.acked[lane] + self.rejected[lane]
            assert sorted(places) == self.added[lane]
        assert self.ledger.pending() == len(out)
        assert self.ledger.acked_count == sum(len(v) for v in self.acked.values())

    @invariant()
    def lane_order_kept(self) -> None:
        for lane in LANES:
            done = self.finished[lane]
            assert done == sorted(done), "a lane acknowledged out of order"
            pending = [item for x, item in self.ledger.unacked() if x == lane]
            assert pending == sorted(pending)
            if done and pending:
                assert max(done) < min(pending)

    @invariant()
    def backoff_bounded(self) -> None:
        for lane in LANES:
            state = self.ledger.state(lane)
            assert state.retry_at <= self.now + 4.0 or state.retry_at == 0.0


TestLedger = LedgerMachine.TestCase
TestLedger.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_bad_backoff_refused() -> None:
    with pytest.raises(LedgerError):
        DeliveryLedger(backoff_s=0.0)
    with pytest.raises(LedgerError):
        DeliveryLedger(backoff_s=2.0, max_backoff_s=1.0)
