"""The UI's view model (flowerhub.ui.model): what each event does to the views, table by table."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from flowerhub.testing.ui import (
    T0,
    S,
    activation,
    command_result,
    device_status,
    fault_code,
    fleet_state,
    site_fault,
    telemetry,
    verdict,
)
from flowerhub.ui.model import ViewModel
from flowerhub.ui.views import (
    VIEWS,
    Cursor,
    TimeRange,
    activations_view,
    fleet_view,
    site_view,
    sites_view,
)


def model(*events: tuple[str, dict[str, Any]], clock: int | None = None) -> ViewModel:
    m = ViewModel(window_s=900, clock=None if clock is None else (lambda: clock))
    for name, record in events:
        m.apply(name, record)
    return m


def row(m: ViewModel, site: str = "site-1") -> dict[str, Any]:
    return m.sites[site].row()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        # today's SiteTelemetry: no baseline -> 0, flagged, delivered = power
        (
            {"battery_power_kw": 2.5},
            {"power_kw": 2.5, "baseline_kw": 0.0, "baseline_reported": False, "delivered_kw": 2.5},
        ),
        # issue 14's baseline field, when present, is shown as is
        (
            {"battery_power_kw": 2.5, "baseline_kw": 1.0},
            {"baseline_kw": 1.0, "baseline_reported": True, "delivered_kw": 1.5},
        ),
        ({"battery_power_kw": -1.0, "baseline_kw": -3.0}, {"delivered_kw": 2.0}),
        # non-finite values are missing, never NaN in the page's JSON
        (
            {"battery_power_kw": math.nan, "soc_pct": math.inf},
            {"power_kw": None, "soc_pct": None, "delivered_kw": None},
        ),
        ({"setpoint_kw": 4.0, "reserve_armed": "FCR_N"}, {"setpoint_kw": 4.0, "armed": "FCR_N"}),
        (
            {"reserve_armed": "NONE", "mode": "SELF_CONSUMPTION"},
            {"armed": None, "mode": "SELF_CONSUMPTION"},
        ),
        ({"faulted": True}, {"faulted": True, "faults": 0}),
        ({"oem": "saj", "model": "H2-5K"}, {"oem": "saj", "model": "H2-5K", "last_seen": T0}),
    ],
)
def test_telemetry_row(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    got = row(model(("SiteTelemetry", telemetry(**fields))))
    assert {k: got[k] for k in expected} == expected
    json.dumps(got, allow_nan=False)


def test_older_telemetry_is_ignored_and_counted() -> None:
    m = model(
        ("SiteTelemetry", telemetry(t=T0 + S, battery_power_kw=2.0)),
        ("SiteTelemetry", telemetry(t=T0, battery_power_kw=9.0)),
    )
    assert row(m)["power_kw"] == 2.0
    assert m.stats.skipped == 1
    assert len(m.sites["site-1"].history or ()) == 1


def test_records_without_key_or_time_are_skipped() -> None:
    m = model(
        ("SiteTelemetry", telemetry(site="")),
        ("CommandResult", command_result(event_time=None)),
        ("FleetState", fleet_state(window_s=0)),
        ("MarketActivation", activation(activation_id="")),
    )
    assert m.sites == {}
    assert not m.fleet
    assert not m.acts.by_id
    assert m.stats.skipped == 4


def test_command_results_newest_wins_and_land_on_the_timeline() -> None:
    m = model(
        ("CommandResult", command_result(t=T0 + S, status="CLAMPED", measured=3.0)),
        ("CommandResult", command_result(t=T0, status="APPLIED", measured=6.0)),  # late, older
    )
    r = row(m)
    assert (r["result"], r["result_kw"], r["result_cause"]) == ("CLAMPED", 3.0, "RATED_LIMIT")
    texts = [e.text for e in m.sites["site-1"].timeline]
    assert texts[0].startswith("CLAMPED: requested +6.00 kW, written +6.00 kW, measured +3.00 kW")
    assert len(texts) == 2


def test_faults_active_set_worst_severity_and_changes() -> None:
    minor, major = fault_code("a.minor", "MINOR"), fault_code("b.major", "MAJOR")
    m = model(
        ("SiteFault", site_fault(active=[minor, major], raised=[minor, major])),
        ("SiteTelemetry", telemetry(t=T0 + S)),
    )
    r = row(m)
    assert (r["faults"], r["fault_severity"], r["faulted"]) == (2, "MAJOR", True)
    assert m.sites["site-1"].history is not None
    assert m.sites["site-1"].history.since(None)["faults"] == [2.0]
    m.apply("SiteFault", site_fault(t=T0 + 2 * S, active=[], cleared=[minor, major]))
    r = row(m)
    assert (r["faults"], r["fault_severity"], r["faulted"]) == (0, None, False)
    kinds = [(e.kind, e.status) for e in m.sites["site-1"].timeline]
    assert kinds == [
        ("fault", "MINOR"),
        ("fault", "MAJOR"),
        ("fault", "CLEARED"),
        ("fault", "CLEARED"),
    ]


def test_link_changes_only_make_timeline_lines() -> None:
    m = model(
        ("DeviceStatus", device_status(state="ONLINE")),
        ("DeviceStatus", device_status(t=T0 + S, state="ONLINE", rtt_ms=20.0)),
        ("DeviceStatus", device_status(t=T0 + 2 * S, state="OFFLINE", last_error="timeout")),
        ("DeviceStatus", device_status(t=T0 + S // 2, state="ONLINE")),  # older: ignored
    )
    site = m.sites["site-1"]
    assert site.link == "OFFLINE"
    assert [e.text for e in site.timeline] == ["link ONLINE", "link OFFLINE: timeout"]
    assert m.site_counts()["offline"] == 1


def test_fleet_keeps_the_shortest_window_only() -> None:
    m = model(
        ("FleetState", fleet_state(T0, window_s=10, power=9.0)),
        ("FleetState", fleet_state(T0, window_s=1, power=0.5)),
        ("FleetState", fleet_state(T0 + 10 * S, window_s=10, power=9.0)),
        ("FleetState", fleet_state(T0 + S, window_s=1, power=0.6)),
    )
    assert [(p.t, p.power_mw) for p in m.fleet] == [(T0, 0.5), (T0 + S, 0.6)]
    assert m.per_oem["huawei"]["power_mw"] == 0.3


@pytest.mark.parametrize("verdict_first", [False, True])
def test_target_and_baseline_from_the_verdicts_of_a_window(verdict_first: bool) -> None:
    events = [
        ("FleetState", fleet_state(T0, power=0.5)),
        ("ComplianceVerdict", verdict(T0, activation="a", required=0.3, measured=0.2)),
        (
            "ComplianceVerdict",
            verdict(T0, activation="b", required=0.1, measured=0.2, product="MFRR"),
        ),
        # the same obligation judged on the 10 s window ending there: counted once
        ("ComplianceVerdict", verdict(T0, activation="a", required=0.3, measured=0.2)),
    ]
    if verdict_first:
        events = [*events[1:], events[0]]
    (point,) = model(*events).fleet
    assert point.baseline_mw == pytest.approx(0.3)  # power - measured
    assert point.target_mw == pytest.approx(0.7)  # baseline + 0.3 + 0.1
    assert point.baseline_source == "compliance"


def test_a_reported_fleet_baseline_wins() -> None:
    (point,) = model(
        ("FleetState", fleet_state(T0, power=0.5, baseline_mw=0.1)),
        ("ComplianceVerdict", verdict(T0, required=0.3, measured=0.2)),
    ).fleet
    assert (point.baseline_mw, point.baseline_source) == (0.1, "reported")
    assert point.target_mw == pytest.approx(0.4)


def test_products_in_force_sites_armed_and_latest_verdict() -> None:
    m = model(
        ("MarketActivation", activation("act-1", requested=0.4)),
        ("MarketActivation", activation("old", start=T0 - 900 * S, end=T0 - 800 * S)),
        ("SiteTelemetry", telemetry("s1", reserve_armed="FCR_D_UP")),
        ("SiteTelemetry", telemetry("s2", reserve_armed="FCR_D_UP")),
        ("SiteTelemetry", telemetry("s3", reserve_armed="FCR_N")),
        (
            "ComplianceVerdict",
            verdict(T0, required=0.3, measured=0.25, status="FAIL", finding="SLOW"),
        ),
        clock=T0 + S,
    )
    by_product = {r["product"]: r for r in m.products()}
    up = by_product["FCR_D_UP"]
    assert (up["armed_mw"], up["obligations"], up["sites_armed"]) == (0.4, 1, 2)
    assert (up["required_mw"], up["delivered_mw"], up["status"], up["finding"]) == (
        0.3,
        0.25,
        "FAIL",
        "SLOW",
    )
    assert by_product["FCR_N"]["sites_armed"] == 1
    assert by_product["FCR_N"]["obligations"] == 0
    # a verdict older than 10 s is not "now": no row for a product with nothing else
    assert model(("ComplianceVerdict", verdict(T0)), clock=T0 + 11 * S).products() == []


def test_verdicts_count_per_obligation_and_stale_alerts() -> None:
    m = model(
        ("MarketActivation", activation("act-1")),
        ("ComplianceVerdict", verdict(T0, status="PASS")),
        ("ComplianceVerdict", verdict(T0 + S, status="FAIL", finding="UNDER_DELIVERY")),
        ("ComplianceVerdict", verdict(T0 + 2 * S, status="WARN", finding="OVER_DELIVERY")),
        (
            "ComplianceVerdict",
            verdict(T0, activation=None, status="WARN", finding="STALE_SITES", site_ids=["s9"]),
        ),
        ("ComplianceVerdict", verdict(T0, activation="unknown-asg", status="PASS")),
    )
    ob = m.acts.by_id["act-1"]
    assert (ob.counts, ob.worst, ob.last.status if ob.last else None) == (
        {"PASS": 1, "FAIL": 1, "WARN": 1},
        "FAIL",
        "WARN",
    )
    assert [a.site_ids for a in m.acts.alerts] == [("s9",)]
    assert m.acts.by_id["unknown-asg"].source == "verdict"  # a row all the same


def test_archive_now_is_the_newest_event_and_the_window_follows_it() -> None:
    m = model(
        ("FleetState", fleet_state(T0)),
        ("FleetState", fleet_state(T0 + 1000 * S)),
    )
    assert m.now() == T0 + 1000 * S
    assert [p.t for p in m.fleet] == [T0 + 1000 * S]  # T0 is out of the 900 s window (+60 s)
    payload, _ = fleet_view(m, Cursor())
    assert [p["t"] for p in payload["points"]] == [T0 + 1000 * S]


def test_views_send_only_what_changed_since_the_cursor() -> None:
    m = model(("SiteTelemetry", telemetry("a")), ("SiteTelemetry", telemetry("b")))
    first, cursor = sites_view(m, Cursor())
    assert first["fields"][0] == "id"
    assert sorted(r[0] for r in first["rows"]) == ["a", "b"]
    assert dict(zip(first["fields"], first["rows"][0], strict=True)) == m.sites["a"].row()
    m.apply("SiteTelemetry", telemetry("b", t=T0 + S))
    second, cursor = sites_view(m, cursor)
    assert [r[0] for r in second["rows"]] == ["b"]
    third, _ = sites_view(m, cursor)
    assert third["rows"] == []


def test_site_view_history_and_timeline_deltas() -> None:
    m = model(("SiteTelemetry", telemetry(t=T0, setpoint_kw=1.0)))
    first, cursor = site_view(m, Cursor(), "site-1")
    assert first["history"]["t"] == [T0]
    assert first["history"]["setpoint_kw"] == [1.0]
    m.apply("SiteTelemetry", telemetry(t=T0 + S))
    m.apply("CommandResult", command_result(t=T0 + S))
    second, cursor = site_view(m, cursor, "site-1")
    assert second["history"]["t"] == [T0 + S]
    assert second["history"]["setpoint_kw"] == [None]
    assert [e["status"] for e in second["timeline"]] == ["CLAMPED"]
    assert second["site"]["last_result"]["measured_kw"] == 3.0
    missing, _ = site_view(m, Cursor(), "nope")
    assert missing["site"] is None


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ({}, TimeRange()),
        ({"from": "2026-09-21T14:15:00Z"}, TimeRange(1_790_000_100_000_000)),
        ({"from": "2026-09-21T14:15:00"}, TimeRange(1_790_000_100_000_000)),  # UTC
        ({"from": "2026-09-21T16:15:00 02:00"}, TimeRange(1_790_000_100_000_000)),  # '+' as ' '
        (
            {"from": "1790000100000000", "to": "1790000160000000"},
            TimeRange(1_790_000_100_000_000, 1_790_000_160_000_000),
        ),
        ({"to": "2026-09-21T14:15:00.5Z"}, TimeRange(None, 1_790_000_100_500_000)),
    ],
)
def test_the_site_views_time_range_reads_iso_or_microseconds(
    query: dict[str, str], want: TimeRange
) -> None:
    assert TimeRange.of(query) == want


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ({"from": "yesterday"}, "'from' must be an ISO-8601 time"),
        ({"from": "2026-09-21T14:15:00Z", "to": "2026-09-21T14:14:00Z"}, "'to' must be after"),
    ],
)
def test_a_bad_time_range_is_refused_named(query: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        TimeRange.of(query)


def test_site_view_over_a_time_range_sends_the_range_and_says_what_is_held() -> None:
    m = model(*(("SiteTelemetry", telemetry(t=T0 + k * S)) for k in range(10)))
    m.apply("CommandResult", command_result(t=T0 + 2 * S))
    m.apply("CommandResult", command_result(t=T0 + 8 * S))
    span = TimeRange(T0 + 3 * S, T0 + 6 * S)
    got, _ = site_view(m, Cursor(), "site-1", span)
    assert got["history"]["t"] == [T0 + k * S for k in (3, 4, 5, 6)]
    assert got["timeline"] == []  # both results are outside the range
    assert got["range"] == {"from": T0 + 3 * S, "to": T0 + 6 * S, "held_from": T0, "partial": False}
    early, _ = site_view(m, Cursor(), "site-1", TimeRange(T0 - 60 * S, T0 + 2 * S))
    assert early["range"]["partial"]  # the range starts before the first sample held
    assert [e["status"] for e in early["timeline"]] == ["CLAMPED"]
    live, _ = VIEWS["site"](m, Cursor(), {"site": "site-1"})
    assert "range" not in live
    assert len(live["history"]["t"]) == 10


def test_fleet_view_resends_a_point_whose_target_arrived_later() -> None:
    m = model(("FleetState", fleet_state(T0)))
    _, cursor = fleet_view(m, Cursor())
    m.apply("ComplianceVerdict", verdict(T0))
    payload, _ = fleet_view(m, cursor)
    (point,) = payload["points"]
    assert point["target_mw"] == pytest.approx(0.6)
    assert [v["activation_id"] for v in payload["verdicts"]] == ["act-1"]


def test_activations_view_selected_verdicts() -> None:
    m = model(("MarketActivation", activation("act-1")), ("ComplianceVerdict", verdict(T0)))
    payload, cursor = activations_view(m, Cursor(), "act-1")
    assert [a["id"] for a in payload["activations"]] == ["act-1"]
    assert payload["activations"][0]["state"] == "active"
    assert len(payload["verdicts"]) == 1
    again, _ = activations_view(m, cursor, "act-1")
    assert again["activations"] == []
    assert again["verdicts"] == []
