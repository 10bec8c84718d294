"""``AgentContext.send_many`` and the app's producer handle, without a broker: to in-memory
outputs the records go one by one, keyed per the topic table, in order; an app whose Faust
producer was never started has no aiokafka producer to batch on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from contract.errors import InvalidEventError
from streams.agents.base import started_kafka_producer
from streams.app import StreamsApp, build, settings_with
from streams.testing.agents import Sent, close_app, drain, memory_outputs, setpoint_record

S = 1_000_000
T0 = 1_700_000_000 * S


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-send-many"))
    yield app
    close_app(app)


async def send_many(built: StreamsApp, records: Iterable[dict[str, Any]]) -> tuple[int, list[Sent]]:
    """``send_many`` to in-memory outputs as an agent calls it (inside Faust's test context);
    (count, what the setpoints output got)."""
    out = memory_outputs(built)
    async with built.app.agents["allocator"].test_context():
        sent = await built.ctx.send_many("site.setpoints", "SiteSetpoint", records)
    assert drain(out["site.commands"]) == []
    return sent, drain(out["site.setpoints"])


@pytest.mark.parametrize("count", [0, 1, 7])
def test_records_reach_an_in_memory_output_keyed_and_in_order(
    built: StreamsApp, count: int
) -> None:
    records = [
        setpoint_record(f"site-{i % 3}", f"sp-{i}", T0 + i, float(i), T0 + 60 * S)
        for i in range(count)
    ]
    sent, got = asyncio.run(send_many(built, iter(records)))
    assert sent == count
    assert [(s.key, s.name, s.record["setpoint_id"]) for s in got] == [
        (r["site_id"].encode(), "SiteSetpoint", r["setpoint_id"]) for r in records
    ]


def test_an_invalid_record_is_refused_before_anything_is_sent(built: StreamsApp) -> None:
    good = setpoint_record("site-1", "sp-1", T0, 1.0, T0 + 60 * S)
    bad = {**good, "power_kw": "lots"}
    with pytest.raises(InvalidEventError, match="SiteSetpoint"):
        asyncio.run(send_many(built, [bad]))


def test_an_app_that_never_started_has_no_kafka_producer(built: StreamsApp) -> None:
    assert started_kafka_producer(built.app) is None
