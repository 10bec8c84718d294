"""Kafka values into the view model (flowerhub.ui.fold): codec, columnar path, bad values."""

from __future__ import annotations

from contract.codec import encode
from flowerhub.testing.ui import T0, S, fleet_state, telemetry, verdict
from flowerhub.ui.fold import COLUMNAR_FROM, Folder, unprefixed
from flowerhub.ui.model import ViewModel


def test_columnar_batch_equals_value_by_value() -> None:
    values = [
        encode(
            "SiteTelemetry",
            telemetry(f"s{i % 7}", T0 + i * S // 10, battery_power_kw=i / 10, soc_pct=i % 100),
        )
        for i in range(3 * COLUMNAR_FROM)
    ]
    batched, single = ViewModel(), ViewModel()
    Folder(batched).fold("site.telemetry", values)
    folder = Folder(single)
    for value in values:
        folder.fold("site.telemetry", [value])
    assert batched.stats.undecodable == {}
    assert batched.stats.skipped == 0
    assert {k: s.row() | {"version": 0} for k, s in batched.sites.items()} == {
        k: s.row() | {"version": 0} for k, s in single.sites.items()
    }
    for site_id, site in batched.sites.items():
        assert site.history is not None
        other = single.sites[site_id].history
        assert other is not None
        assert site.history.since(None) == other.since(None)
    assert batched.stats.events == {"site.telemetry": len(values)}


def test_bad_values_are_counted_and_the_rest_folded() -> None:
    good = [encode("SiteTelemetry", telemetry(f"s{i}")) for i in range(COLUMNAR_FROM)]
    bad = [b"\xc3\x01garbage", b"", b"\x00\x00\x00\x00\x07xx"]
    m = ViewModel()
    Folder(m).fold("site.telemetry", [*good[:10], *bad, None, *good[10:]])
    assert len(m.sites) == COLUMNAR_FROM
    assert m.stats.undecodable == {"site.telemetry": 3}
    assert m.stats.last_error is not None
    assert m.stats.last_error.startswith("site.telemetry: ")


def test_small_batches_and_other_topics_go_record_by_record() -> None:
    m = ViewModel()
    Folder(m).fold("site.device-status", [None, b"junk"])  # a tombstone means nothing
    assert m.stats.undecodable == {"site.device-status": 1}
    assert m.sites == {}


def test_a_batch_folds_fleet_windows_before_their_verdicts() -> None:
    m = ViewModel()
    Folder(m).fold_batches(
        {
            "compliance.verdicts": [encode("ComplianceVerdict", verdict(T0))],
            "fleet.state": [encode("FleetState", fleet_state(T0))],
        }
    )
    (point,) = m.fleet
    assert point.target_mw is not None


def test_unprefixed() -> None:
    assert unprefixed("demo-1.site.telemetry", "demo-1.") == "site.telemetry"
    assert unprefixed("site.telemetry", "") == "site.telemetry"
    assert unprefixed("demo-1.site.commands", "demo-1.") is None  # not read by the UI
    assert unprefixed("other.site.telemetry", "demo-1.") is None
