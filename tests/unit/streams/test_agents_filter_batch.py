"""The setpoint filter's batches (one ``getmany`` result of its batch consumer): records are
filtered in order, each seeing the state the previous one left; bad input in the middle of a
batch is dead-lettered and the rest of the batch goes on; the changelog gets each changed
site's last state once per batch, on the partition of the record that changed it; the
commands go out before the changelog."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.codec import encode
from streams.agents.batch_consumer import consumer_group
from streams.agents.setpoint_filter import changelog_entry
from streams.app import StreamsApp, build, settings_with
from streams.steps.setpoint_filter import FilterState
from streams.testing.agents import close_app, consumed, drain, memory_outputs, setpoint_record

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


def test_one_batch_filters_in_order_and_saves_each_site_once(
    built: StreamsApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = built.setpoint_filter
    saved: list[dict[str, tuple[int, dict[str, Any]]]] = []
    order: list[str] = []
    save = step.save
    send_many = built.ctx.send_many

    async def spy_save(changes: Any) -> None:
        order.append("changelog")
        saved.append(dict(changes))
        await save(changes)

    async def spy_send_many(name: str, event_name: str, records: Any) -> int:
        order.append(name)
        return await send_many(name, event_name, records)

    monkeypatch.setattr(step, "save", spy_save)
    monkeypatch.setattr(built.ctx, "send_many", spy_send_many)
    out = memory_outputs(built)
    part0 = consumed(
        [
            sp("a", "1", 3.0),  # FIRST: written
            (b"a", b"\x01\x02garbage"),  # dead letter; the batch goes on
            sp("a", "1", 3.0),  # the same setpoint again in the same batch: DUPLICATE
            sp("a", "2", 3.1),  # a small change right after a write: gated (pending)
        ],
        topic="site.setpoints",
        partition=0,
    )
    part1 = consumed(
        [
            sp("b", "1", 2.0),  # FIRST: written
            sp("b", "2", 6.0),  # a ramp: written at once
        ],
        topic="site.setpoints",
        partition=1,
        first_offset=40,
    )
    sent_count = asyncio.run(step.process_batches({"tp0": part0, "tp1": part1}))
    assert sent_count == 3
    assert order == ["site.commands", "changelog"]  # commands acknowledged first
    sent = drain(out["site.commands"])
    assert [(s.record["site_id"], s.record["setpoint_id"]) for s in sent] == [
        ("a", "1"),
        ("b", "1"),
        ("b", "2"),
    ]
    letters = drain(out["deadletter"])
    assert [(d.key, d.record["partition"], d.record["offset"]) for d in letters] == [(b"a", 0, 1)]
    assert letters[0].record["consumer"] == "setpoint-filter"
    # one changelog entry per changed site per batch: its last state, on its record's partition
    assert len(saved) == 1
    final = saved[0]
    assert {site: part for site, (part, _) in final.items()} == {"a": 0, "b": 1}
    assert FilterState.from_dict(final["a"][1]).last_setpoint_id == "2"
    assert FilterState.from_dict(final["a"][1]).pending is not None
    assert FilterState.from_dict(final["b"][1]).last_setpoint_id == "2"
    assert step.state_of("a") == FilterState.from_dict(final["a"][1])


def test_a_batch_of_only_bad_records_sends_nothing_and_saves_nothing(built: StreamsApp) -> None:
    out = memory_outputs(built)
    records = consumed([(b"x", b""), (None, None)], topic="site.setpoints")
    assert asyncio.run(built.setpoint_filter.process_records(records)) == 0
    assert drain(out["site.commands"]) == []
    assert [d.record["error_type"] for d in drain(out["deadletter"])] == [
        "TruncatedEventError",  # no bytes at all
        "InvalidEventError",  # no value (a tombstone)
    ]


def test_the_filter_reads_its_topic_through_a_batch_consumer_service(built: StreamsApp) -> None:
    consumer = built.setpoint_filter.consumer
    assert consumer is not None
    services: list[object] = list(built.app._extra_services)
    assert consumer in services
    assert consumer.topic == "site.setpoints"
    assert consumer_group(consumer.settings, consumer.name) == "unit-filter-batch-setpoints"
    assert consumer.handler == built.setpoint_filter.process_batches
    assert "setpoint-filter" not in built.app.agents  # not a Faust agent (see the module doc)


@settings(max_examples=200, deadline=None)
@given(
    site=st.text(min_size=1, max_size=12),
    power=st.floats(-20.0, 20.0, allow_nan=False),
    kind=st.sampled_from(["SET_POWER", "STOP", "ARM_RESERVE"]),
    gated=st.booleans(),
)
def test_changelog_entries_are_the_bytes_faust_writes(
    site: str, power: float, kind: str, gated: bool
) -> None:
    built = build(
        settings_with(bootstrap="localhost:9092", app_id="unit-changelog"), clock=lambda: T0
    )
    try:
        out = memory_outputs(built)
        first = setpoint_record(site, "1", T0, power, T0 + 60 * S)
        first["kind"] = kind
        if kind == "STOP":
            first["power_kw"] = None
        if kind == "ARM_RESERVE":
            first["power_kw"] = None
            first["reserve"] = {
                "product": "FCR_D_UP",
                "capacity_kw": abs(power),
                "f_start_hz": 49.9,
                "f_full_hz": 49.5,
                "deadband_hz": 0.0,
                "symmetric": False,
            }
        second = setpoint_record(site, "2", T0, power + (0.01 if gated else 5.0), T0 + 60 * S)
        records = consumed(
            [(site.encode(), encode("SiteSetpoint", r)) for r in (first, second)],
            topic="site.setpoints",
        )
        step = built.setpoint_filter
        asyncio.run(step.process_records(records))
        assert drain(out["site.commands"])  # the first setpoint at least became a command
        table = step.table
        topic = table.changelog_topic
        assert list(table.data.keys()) == [site]
        for key, data in table.data.items():
            assert changelog_entry(key, data) == (
                topic.prepare_key(key, table.key_serializer)[0],
                topic.prepare_value(data, table.value_serializer)[0],
            )
    finally:
        close_app(built)
