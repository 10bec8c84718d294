"""The setpoint filter agent's batches (``Stream.take_events``) in Faust's test context: events
put without waiting are filtered together, in order, each seeing the state the previous one
left; bad input in the middle of a batch is dead-lettered and the rest of the batch goes on;
the changelog gets each changed site's last state once per batch, on its event's partition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from schemas.codec import encode
from streams.agents.testing import close_app, drain, memory_outputs, setpoint_record
from streams.app import StreamsApp, build, settings_with
from streams.steps.setpoint_filter import FilterState

S = 1_000_000
T0 = 1_700_000_000 * S


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(
        settings_with(bootstrap="localhost:9092", app_id="unit-filter-batch"), clock=lambda: T0
    )
    yield app
    close_app(app)


def sp(site: str, sp_id: str, power: float) -> tuple[bytes, bytes]:
    return site.encode(), encode(
        "SiteSetpoint", setpoint_record(site, sp_id, T0, power, T0 + 60 * S)
    )


async def put_all(
    built: StreamsApp, messages: Sequence[tuple[bytes, bytes]], processed: Callable[[], int]
) -> None:
    """Every message put before any is processed; returns once ``processed()`` counts them
    all (the test context runs the agent only inside the ``async with``)."""
    async with built.app.agents["setpoint-filter"].test_context() as tested:
        for key, value in messages:
            await tested.put(value, key=key, wait=False)
        for _ in range(1000):
            if processed() >= len(messages):
                return
            await asyncio.sleep(0.005)
    raise AssertionError(f"{processed()} of {len(messages)} events processed")


def test_one_batch_filters_in_order_and_saves_each_site_once(
    built: StreamsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = built.setpoint_filter
    sizes: list[int] = []
    saved: list[dict[str, tuple[int, dict[str, Any]]]] = []
    process_batch, save = agent.process_batch, agent.save

    async def spy_batch(events: Sequence[Any]) -> int:
        sizes.append(len(events))
        return await process_batch(events)

    async def spy_save(changes: Any) -> None:
        saved.append(dict(changes))
        await save(changes)

    monkeypatch.setattr(agent, "process_batch", spy_batch)
    monkeypatch.setattr(agent, "save", spy_save)
    out = memory_outputs(built)
    messages = [
        sp("a", "1", 3.0),  # FIRST: written
        sp("b", "1", 2.0),  # FIRST: written
        (b"a", b"\x01\x02garbage"),  # dead letter; the batch goes on
        sp("a", "1", 3.0),  # the same setpoint again in the same batch: DUPLICATE
        sp("a", "2", 3.1),  # a small change right after a write: gated (pending)
        sp("b", "2", 6.0),  # a ramp: written at once
    ]
    asyncio.run(put_all(built, messages, lambda: sum(sizes)))
    assert sum(sizes) == len(messages)
    assert max(sizes) > 1  # events put without waiting were filtered together
    sent = drain(out["site.commands"])
    assert [(s.record["site_id"], s.record["setpoint_id"]) for s in sent] == [
        ("a", "1"),
        ("b", "1"),
        ("b", "2"),
    ]
    letters = drain(out["deadletter"])
    assert [(d.key, d.record["offset"]) for d in letters] == [(b"a", 2)]
    # one changelog entry per changed site per batch: its last state
    final = {site: state for changes in saved for site, (_, state) in changes.items()}
    assert FilterState.from_dict(final["a"]).last_setpoint_id == "2"
    assert FilterState.from_dict(final["a"]).pending is not None
    assert FilterState.from_dict(final["b"]).last_setpoint_id == "2"
    assert all(part == 0 for changes in saved for part, _ in changes.values())
    assert agent.state_of("a") == FilterState.from_dict(final["a"])
