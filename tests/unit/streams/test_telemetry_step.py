"""The telemetry batch step (``TelemetryAggregator.add_batch``; the worker runs the same step
per partition, ``steps.site_partition``): SiteTelemetry bytes -> FleetState over 1 s and
10 s windows (each closed window emitted once), the site book, dead letters. The workers on
the real broker: tests/integration/test_streams_workers.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from contract.codec import decode, encode
from contract.records import FleetState
from streams.app import settings_with
from streams.steps.sitebook import SiteBook
from streams.steps.telemetry_step import NAME, BatchOutcome, TelemetryAggregator
from streams.testing.agents import consumed, setpoint_record, telemetry_record

S = 1_000_000
T0 = 1_700_000_000 * S  # a multiple of 10 s: windows start on it
NOW = T0 + 60 * S  # the processing time dead letters are stamped with
POWER = {"site-a": 2.0, "site-b": -1.5, "site-c": 4.25}
OEM = {"site-a": "huawei", "site-b": "saj", "site-c": "huawei"}


class Built:
    """The step and its book, as the tests below address them."""

    def __init__(self, aggregator: TelemetryAggregator) -> None:
        self.aggregator = aggregator
        self.book: SiteBook = aggregator.book


@pytest.fixture(params=["columnar", "record-by-record"])
def built(request: pytest.FixtureRequest) -> Built:
    """The step, taking every batch column-wise, or every batch record by record."""
    settings = settings_with(bootstrap="localhost:9092", app_id="unit-agg")
    columnar_from = 1 if request.param == "columnar" else 10**9
    return Built(TelemetryAggregator(settings, SiteBook(), columnar_from=columnar_from))


def run(
    built: Built, messages: Sequence[tuple[bytes | None, bytes | None]], batch: int = 5
) -> BatchOutcome[FleetState]:
    """The messages as consecutive records of one partition, in batches of ``batch``."""
    records = consumed(messages)
    total: BatchOutcome[FleetState] = BatchOutcome()
    for first in range(0, len(records), batch):
        out = built.aggregator.add_batch(records[first : first + batch], NOW)
        total.states += out.states
        total.dead_letters += out.dead_letters
        total.accepted += out.accepted
    return total


def state_records(out: BatchOutcome[FleetState]) -> list[dict[str, Any]]:
    """The FleetStates as the service sends them (encoded, decoded back)."""
    return [decode(encode("FleetState", s.to_record())).record for s in out.states]


def second(k: int) -> list[tuple[bytes, bytes]]:
    """Telemetry of every site at T0 + k s + 0.2 s."""
    t = T0 + k * S + S // 5
    return [
        (
            site.encode(),
            encode(
                "SiteTelemetry",
                telemetry_record(site, t, oem=OEM[site], battery_power_kw=power + k / 100),
            ),
        )
        for site, power in POWER.items()
    ]


@pytest.mark.parametrize("batch", [1, 4, 36])
def test_telemetry_closes_1s_and_10s_windows_once(built: Built, batch: int) -> None:
    messages = [m for k in range(12) for m in second(k)]
    out = run(built, messages, batch)
    assert out.dead_letters == []
    assert out.accepted == len(messages)
    states = state_records(out)
    assert {s["fleet_id"] for s in states} == {"flowerhub"}
    ones = [s for s in states if s["window_s"] == 1]
    tens = [s for s in states if s["window_s"] == 10]
    # grace 1 s, watermark T0 + 11.2 s: 1 s windows 0..9 and the 10 s window [0, 10) closed
    assert len(ones) == 10
    assert len(tens) == 1
    assert len({s["event_id"] for s in states}) == len(states)
    for k, rec in enumerate(ones):
        expected = math.fsum(p + k / 100 for p in POWER.values()) / 1000
        assert rec["total_power_mw"] == pytest.approx(expected)
        assert rec["sites_online"] == 3
        assert rec["sites_faulted"] == 0
        assert [o["oem"] for o in rec["per_oem"]] == ["huawei", "saj"]
    # the 10 s window holds each site's last sample in it (second 9)
    assert tens[0]["total_power_mw"] == pytest.approx(
        math.fsum(p + 9 / 100 for p in POWER.values()) / 1000
    )
    # the site book saw every site's latest telemetry
    assert set(built.book.telemetry) == set(POWER)
    assert built.book.last_seen["site-a"] == T0 + 11 * S + S // 5


def test_bad_telemetry_is_dead_lettered_and_not_counted(built: Built) -> None:
    bad_soc = telemetry_record("site-x", T0 + S // 5)
    bad_soc["soc_pct"] = 130.0
    messages = [
        *second(0),
        (b"site-x", encode("SiteTelemetry", bad_soc)),
        (b"site-y", b"\xc3\x01short"),
        (b"site-z", None),
        (b"site-w", encode("SiteSetpoint", setpoint_record("site-w", "sp", T0, 1.0, T0 + S))),
        *second(1),
        *second(2),
    ]
    out = run(built, messages)
    letters = out.dead_letters
    assert [d["error_type"] for d in letters] == [
        "InvalidRecordError",
        "TruncatedEventError",
        "InvalidEventError",
        "InvalidEventError",
    ]
    assert [d["offset"] for d in letters] == [3, 4, 5, 6]
    assert [d["original"] for d in letters] == [messages[i][1] or b"" for i in (3, 4, 5, 6)]
    assert all(d["consumer"] == NAME and d["source_topic"] == "site.telemetry" for d in letters)
    assert all(d["event_time"] == NOW for d in letters)  # no broker timestamp: rejection time
    assert out.accepted == len(messages) - 4
    (first,) = [s for s in state_records(out) if s["window_s"] == 1]
    assert first["sites_online"] == 3
    assert "site-x" not in built.book.telemetry


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("soc_pct", -0.5),
        ("soc_pct", float("nan")),
        ("battery_power_kw", float("inf")),
        ("grid_power_kw", float("-inf")),
        ("headroom_up_kw", -1.0),
        ("headroom_down_kw", float("nan")),
        ("pv_power_kw", -0.1),
        ("load_kw", -2.0),
        ("max_discharge_kw", -5.0),
        ("max_charge_kw", float("nan")),
        ("frequency_hz", float("inf")),
        ("capacity_kwh", float("nan")),
        ("setpoint_kw", float("-inf")),
        ("site_id", ""),
    ],
)
def test_semantically_bad_telemetry_is_dead_lettered(
    built: Built, field: str, value: object
) -> None:
    """Avro-valid but not a valid SiteTelemetry: the fast path must not let it through."""
    bad = telemetry_record("site-x", T0 + S // 5) | {field: value}
    messages = [*second(0), (b"site-x", encode("SiteTelemetry", bad)), *second(1), *second(2)]
    out = run(built, messages)
    letters = out.dead_letters
    assert [d["error_type"] for d in letters] == ["InvalidRecordError"]
    assert field in letters[0]["reason"]
    (first,) = [s for s in state_records(out) if s["window_s"] == 1]
    assert first["sites_online"] == 3
    assert "site-x" not in built.book.telemetry
    assert "site-x" not in built.book.last_seen


def test_a_broker_timestamp_is_the_dead_letters_event_time(built: Built) -> None:
    (record,) = consumed([(b"k", b"garbage")], partition=3, first_offset=41, timestamp=1_234)
    out = built.aggregator.add_batch([record], NOW)
    (letter,) = out.dead_letters
    assert (letter["partition"], letter["offset"], letter["key"]) == (3, 41, b"k")
    assert letter["event_time"] == 1_234_000
    assert letter["ingest_time"] == NOW
    assert out.states == []
    assert out.accepted == 0


def test_a_batch_read_again_changes_nothing(built: Built) -> None:
    """At-least-once redelivery (a batch not committed before a restart of the consumer, the
    windows kept): the book keeps the newest, closed windows are not emitted again."""
    messages = [m for k in range(12) for m in second(k)]
    first = run(built, messages, batch=12)
    seen = built.book.last_seen
    again = run(built, messages[-12:], batch=12)
    assert len(first.states) == 11
    assert again.states == []
    assert again.dead_letters == []
    assert again.accepted == 12
    assert built.book.last_seen == seen
