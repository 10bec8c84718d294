"""The telemetry agent through Faust's test context: SiteTelemetry -> FleetState over 1 s and
10 s windows (each closed window sent once), the site book, dead letters."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

from schemas.codec import encode
from streams.agents.testing import (
    ManualClock,
    close_app,
    drain,
    feed,
    memory_outputs,
    telemetry_record,
)
from streams.app import StreamsApp, build, settings_with

S = 1_000_000
T0 = 1_700_000_000 * S  # a multiple of 10 s: windows start on it
POWER = {"site-a": 2.0, "site-b": -1.5, "site-c": 4.25}
OEM = {"site-a": "huawei", "site-b": "saj", "site-c": "huawei"}


@pytest.fixture
def built() -> Iterator[StreamsApp]:
    app = build(settings_with(bootstrap="localhost:9092", app_id="unit-agg"), clock=ManualClock(T0))
    yield app
    close_app(app)


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


def test_telemetry_closes_1s_and_10s_windows_once(built: StreamsApp) -> None:
    out = memory_outputs(built)
    messages = [m for k in range(12) for m in second(k)]
    asyncio.run(feed(built, "fleet-aggregator", messages))
    states = drain(out["fleet.state"])
    assert {s.key for s in states} == {b"flowerhub"}
    ones = [s.record for s in states if s.record["window_s"] == 1]
    tens = [s.record for s in states if s.record["window_s"] == 10]
    # grace 1 s, watermark T0 + 11.2 s: 1 s windows 0..9 and the 10 s window [0, 10) closed
    assert len(ones) == 10
    assert len(tens) == 1
    assert len({s.record["event_id"] for s in states}) == len(states)
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


def test_bad_telemetry_is_dead_lettered_and_not_counted(built: StreamsApp) -> None:
    out = memory_outputs(built)
    bad_soc = telemetry_record("site-x", T0 + S // 5)
    bad_soc["soc_pct"] = 130.0
    messages = [
        *second(0),
        (b"site-x", encode("SiteTelemetry", bad_soc)),
        (b"site-y", b"\xc3\x01short"),
        *second(1),
        *second(2),
    ]
    asyncio.run(feed(built, "fleet-aggregator", messages))
    letters = drain(out["deadletter"])
    assert [d.record["error_type"] for d in letters] == [
        "InvalidRecordError",
        "TruncatedEventError",
    ]
    assert all(d.record["consumer"] == "fleet-aggregator" for d in letters)
    (first,) = [s.record for s in drain(out["fleet.state"]) if s.record["window_s"] == 1]
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
    built: StreamsApp, field: str, value: object
) -> None:
    """Avro-valid but not a valid SiteTelemetry: the fast path must not let it through."""
    out = memory_outputs(built)
    bad = telemetry_record("site-x", T0 + S // 5) | {field: value}
    messages = [*second(0), (b"site-x", encode("SiteTelemetry", bad)), *second(1), *second(2)]
    asyncio.run(feed(built, "fleet-aggregator", messages))
    letters = drain(out["deadletter"])
    assert [d.record["error_type"] for d in letters] == ["InvalidRecordError"]
    assert field in letters[0].record["reason"]
    (first,) = [s.record for s in drain(out["fleet.state"]) if s.record["window_s"] == 1]
    assert first["sites_online"] == 3
    assert "site-x" not in built.book.telemetry
    assert "site-x" not in built.book.last_seen
