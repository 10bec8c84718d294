"""Property: no bytes kill an agent. Whatever arrives, each undecodable message ends in
``deadletter`` with its original bytes and key, in order, and the agent still handles the
good event that follows (Faust's test context, no broker). The same for the two batch steps
the worker's batch consumers run: the setpoint filter (``SetpointFilter.process_records``)
and telemetry (``TelemetryAggregator.add_batch``)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.codec import encode
from streams.app import build, settings_with
from streams.testing.agents import (
    ManualClock,
    close_app,
    consumed,
    drain,
    feed,
    memory_outputs,
    setpoint_record,
    telemetry_record,
)

S = 1_000_000
T0 = 1_700_000_000 * S
AGENTS = ("allocator", "command-results", "compliance")

garbage = st.lists(
    st.tuples(
        st.one_of(st.none(), st.binary(min_size=1, max_size=8)),
        st.one_of(
            st.binary(max_size=64),
            st.binary(max_size=40).map(lambda b: b"\xc3\x01" + b),  # our magic, bad body
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=15, deadline=None)
@given(messages=garbage, agent_name=st.sampled_from(AGENTS))
def test_garbage_is_dead_lettered_and_the_agent_goes_on(
    messages: list[tuple[bytes | None, bytes]], agent_name: str
) -> None:
    built = build(
        settings_with(bootstrap="localhost:9092", app_id="unit-dlq"), clock=ManualClock(T0)
    )
    try:
        out = memory_outputs(built)
        asyncio.run(feed(built, agent_name, messages))
        letters = drain(out["deadletter"])
        assert [(d.record["key"], d.record["original"]) for d in letters] == messages
        assert [d.record["offset"] for d in letters] == list(range(len(messages)))
        assert all(d.record["reason"] and d.record["consumer"] == agent_name for d in letters)
    finally:
        close_app(built)


@settings(max_examples=25, deadline=None)
@given(messages=garbage, batch=st.integers(min_value=1, max_value=9))
def test_garbage_is_dead_lettered_and_the_setpoint_filter_goes_on(
    messages: list[tuple[bytes | None, bytes]], batch: int
) -> None:
    built = build(
        settings_with(bootstrap="localhost:9092", app_id="unit-dlq"), clock=ManualClock(T0)
    )
    try:
        out = memory_outputs(built)
        good = encode("SiteSetpoint", setpoint_record("s", "sp-1", T0, 1.0, T0 + 60 * S))
        records = consumed([*messages, (b"s", good)], topic="site.setpoints")
        sent = 0
        for first in range(0, len(records), batch):
            part = records[first : first + batch]
            sent += asyncio.run(built.setpoint_filter.process_records(part))
        letters = drain(out["deadletter"])
        assert [(d.record["key"], d.record["original"]) for d in letters] == messages
        assert [d.record["offset"] for d in letters] == list(range(len(messages)))
        assert all(d.record["consumer"] == "setpoint-filter" for d in letters)
        assert all(d.record["reason"] for d in letters)
        (command,) = drain(out["site.commands"])
        assert command.record["setpoint_id"] == "sp-1"
        assert sent == 1
    finally:
        close_app(built)


@settings(max_examples=25, deadline=None)
@given(messages=garbage, batch=st.integers(min_value=1, max_value=9))
def test_garbage_is_dead_lettered_and_the_telemetry_step_goes_on(
    messages: list[tuple[bytes | None, bytes]], batch: int
) -> None:
    built = build(
        settings_with(bootstrap="localhost:9092", app_id="unit-dlq"), clock=ManualClock(T0)
    )
    try:
        good = encode("SiteTelemetry", telemetry_record("s", T0))
        records = consumed([*messages, (b"s", good)])
        letters = []
        accepted = 0
        for first in range(0, len(records), batch):
            out = built.aggregator.add_batch(records[first : first + batch], T0)
            letters += out.dead_letters
            accepted += out.accepted
        assert [(d["key"], d["original"]) for d in letters] == messages
        assert [d["offset"] for d in letters] == list(range(len(messages)))
        assert all(d["reason"] and d["consumer"] == "fleet-aggregator" for d in letters)
        assert accepted == 1
        assert built.book.last_seen == {"s": T0}
    finally:
        close_app(built)
