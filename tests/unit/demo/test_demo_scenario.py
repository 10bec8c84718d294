"""Scenario files: every shipped one loads; traces, timing and bad input are checked."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.rules import REGISTRY
from analytics.testing.sequences import fcrd_ramp_frequency
from contract.enums import Product
from flowerhub.demo.scenario import (
    DEFAULT_SCENARIO,
    FrequencyPhase,
    HoldPhase,
    OrderPhase,
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_scenario,
)

REQUIRED = {
    "fcrd_up_ramp",
    "fcrn_step",
    "fcrn_sine",
    "ffr_event",
    "mfrr_activation",
    "inverter_override",
    "home_offline",
    "load_spike",
    "worker_crash",
}
RULE_IDS = {r.rule_id for r in REGISTRY._rules}


def test_every_required_scenario_ships() -> None:
    assert set(builtin_names()) >= REQUIRED
    assert DEFAULT_SCENARIO in builtin_names()


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_shipped_scenarios_expect_real_rules(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    expected = scenario.expected
    assert expected.verdicts or expected.offender_sites or expected.unjudgeable
    unknown = set(scenario.expected.verdicts) - RULE_IDS
    assert not unknown, f"{name} expects rules the audit does not have: {unknown}"
    scenario.check_fleet_size(scenario.fleet.sites)


def test_default_arms_three_products_then_the_fcrd_ramp_then_mfrr_in_minutes() -> None:
    scenario = load_scenario(DEFAULT_SCENARIO)
    assert [r.product for r in scenario.reserves] == [
        Product.FCR_N,
        Product.FCR_D_UP,
        Product.FCR_D_DOWN,
    ]
    kinds = [(type(p).__name__, getattr(p, "product", None)) for p in scenario.phases]
    assert kinds == [
        ("HoldPhase", None),
        ("FrequencyPhase", Product.FCR_D_UP),
        ("OrderPhase", Product.MFRR),
    ]
    assert scenario.expected.only_these_offenders
    assert scenario.expected.offender_sites == []
    assert scenario.expected.max_extra_import_pct == 2.0
    assert scenario.duration_s <= 300.0


def test_load_spike_hits_a_third_of_the_homes_while_armed() -> None:
    scenario = load_scenario("load_spike")
    (spike,) = scenario.incidents
    assert spike.load_kw == 6.0
    assert spike.sites(6) == [0, 3]
    assert len(spike.sites(60)) == 20
    held = [(start, p) for start, p in scenario.phase_starts() if isinstance(p, HoldPhase)]
    assert any(start <= spike.at_s < start + p.duration_s for start, p in held)
    assert {r.product for r in scenario.reserves} == {
        Product.FCR_N,
        Product.FCR_D_UP,
        Product.FCR_D_DOWN,
    }
    assert scenario.expected.only_these_offenders
    assert scenario.expected.max_extra_import_pct == 2.0


def test_compressed_fcrd_ramps_keep_tr25_speeds_and_targets() -> None:
    """Each ramp of the compressed trace matches TR25 Table 4's ramp, shifted in time."""
    phase = load_scenario("fcrd_up_ramp").phases[1]
    assert isinstance(phase, FrequencyPhase)
    assert phase.points is not None
    pts = phase.points
    ramps = [(t0, f0, t1, f1) for (t0, f0), (t1, f1) in itertools.pairwise(pts) if f0 != f1]
    assert len(ramps) == 6
    import numpy as np

    tr25_starts = (30.0, 34.9, 90.0, 390.0, 690.0, 750.0)
    for (t0, f0, t1, f1), tr_start in zip(ramps, tr25_starts, strict=True):
        times = np.linspace(0.0, t1 - t0, 9)
        ours = [phase.frequency_at(t0 + t) for t in times]
        theirs = fcrd_ramp_frequency(tr_start + times, Product.FCR_D_UP)
        assert np.allclose(ours, theirs, atol=0.002), (t0, f0, f1)
    # ramp 5 (Req 2/3 at 7.5 s) is held at least 7.5 s; Req 4 needs 40 s after t_nadir
    assert ramps[5][0] - ramps[4][0] >= 7.5
    assert ramps[2][0] - (ramps[0][0] + 4.4) >= 40.0


@settings(max_examples=60, deadline=None)
@given(t=st.floats(-10.0, 400.0))
def test_trace_stays_between_its_points(t: float) -> None:
    phase = load_scenario("fcrd_up_ramp").phases[1]
    assert isinstance(phase, FrequencyPhase)
    assert phase.points is not None
    lo = min(f for _, f in phase.points)
    hi = max(f for _, f in phase.points)
    assert lo <= phase.frequency_at(t) <= hi


@pytest.mark.parametrize(
    ("t", "expected"),
    [(0.0, 50.0), (5.0, 50.0), (10.0, 50.0), (16.25, 50.1), (22.5, 50.0), (28.75, 49.9)],
)
def test_sine_trace(t: float, expected: float) -> None:
    phase = load_scenario("fcrn_sine").phases[0]
    assert isinstance(phase, FrequencyPhase)
    assert phase.frequency_at(t) == pytest.approx(expected, abs=1e-9)


def test_phase_starts_add_up() -> None:
    scenario = load_scenario("fcrd_up_ramp")
    starts = scenario.phase_starts()
    assert starts[0][0] == 0.0
    hold = starts[0][1]
    assert isinstance(hold, HoldPhase)
    assert starts[1][0] == hold.duration_s
    ramp = starts[1][1]
    assert isinstance(ramp, FrequencyPhase)
    assert starts[2][0] == starts[1][0] + ramp.duration_s + ramp.settle_s
    order = starts[2][1]
    assert isinstance(order, OrderPhase)
    assert scenario.duration_s == starts[2][0] + order.lead_in_s + order.duration_s + 5.0


BASE: dict[str, Any] = {
    "name": "x",
    "phases": [
        {
            "kind": "order",
            "name": "o",
            "product": "MFRR",
            "requested_kw_per_site": 1.0,
            "duration_s": 10.0,
        }
    ],
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"phases": []}, "phases"),
        ({"name": "Bad Name"}, "name"),
        ({"surprise": 1}, "surprise"),
        (
            {
                "phases": [
                    {
                        "kind": "frequency",
                        "name": "f",
                        "product": "FCR_N",
                        "capacity_kw_per_site": 1.0,
                    }
                ]
            },
            "exactly one of points or sine",
        ),
        (
            {
                "phases": [
                    {
                        "kind": "frequency",
                        "name": "f",
                        "product": "FCR_N",
                        "capacity_kw_per_site": 1.0,
                        "points": [[1.0, 50.0], [2.0, 49.9]],
                    }
                ]
            },
            "start at t=0",
        ),
        (
            {
                "phases": [
                    {
                        "kind": "frequency",
                        "name": "f",
                        "product": "FCR_N",
                        "capacity_kw_per_site": 1.0,
                        "points": [[0.0, 50.0], [5.0, 49.9], [2.0, 50.0]],
                    }
                ]
            },
            "time order",
        ),
        (
            {
                "phases": [
                    {
                        "kind": "frequency",
                        "name": "f",
                        "product": "FCR_N",
                        "capacity_kw_per_site": 1.0,
                        "points": [[0.0, 50.0], [5.0, 60.0]],
                    }
                ]
            },
            "less than or equal to 55",
        ),
        (
            {
                "phases": [
                    {
                        "kind": "order",
                        "name": "o",
                        "product": "FCR_N",
                        "requested_kw_per_site": 1.0,
                        "duration_s": 5.0,
                    }
                ]
            },
            "product",
        ),
        (
            {
                "phases": [
                    {
                        "kind": "order",
                        "name": "o",
                        "product": "MFRR",
                        "requested_kw_per_site": 0.0,
                        "duration_s": 5.0,
                    }
                ]
            },
            "must not be 0",
        ),
        ({"incidents": [{"at_s": 1.0, "site": 0, "kind": "fault"}]}, "point and bit"),
        (
            {"incidents": [{"at_s": 1.0, "site": 0, "kind": "offline", "bit": 1}]},
            "takes no point or bit",
        ),
        ({"incidents": [{"at_s": 999.0, "site": 0, "kind": "offline"}]}, "after the scenario"),
        ({"incidents": [{"at_s": 1.0, "site": 0, "kind": "load"}]}, "needs load_kw"),
        (
            {"incidents": [{"at_s": 1.0, "site": 0, "kind": "offline", "load_kw": 6.0}]},
            "no other incident takes it",
        ),
        (
            {"incidents": [{"at_s": 1.0, "site": 0, "kind": "load", "load_kw": -1.0}]},
            "load_kw",
        ),
        ({"incidents": [{"at_s": 1.0, "kind": "offline"}]}, "names its site"),
        ({"incidents": [{"at_s": 1.0, "site": 0, "kind": "worker_crash"}]}, "names its site"),
        ({"expected": {"verdicts": {"MFRR.FAT": "MAYBE"}}}, "PASS"),
        ({"expected": {"unjudgeable": {"nope": "Error"}}}, "names no phase"),
        ({"expected": {"max_extra_import_pct": 2.0}}, "needs a hold phase"),
        ({"expected": {"max_extra_import_pct": -1.0}}, "max_extra_import_pct"),
        ({"reserves": [{"product": "MFRR", "capacity_kw_per_site": 1.0}]}, "is not one of"),
        ({"reserves": [{"product": "FFR", "capacity_kw_per_site": 1.0}]}, "is not one of"),
        ({"reserves": [{"product": "FCR_N", "capacity_kw_per_site": 0.0}]}, "greater than 0"),
        (
            {
                "reserves": [
                    {"product": "FCR_N", "capacity_kw_per_site": 1.0},
                    {"product": "FCR_N", "capacity_kw_per_site": 2.0},
                ]
            },
            "name a product twice",
        ),
        ({"phases": [{"kind": "hold", "name": "h", "duration_s": 0.0}]}, "greater than 0"),
        (
            {"phases": [{"kind": "hold", "name": "h", "duration_s": 5.0, "frequency_hz": 70.0}]},
            "less than or equal to 55",
        ),
        ({"incidents": [{"at_s": 1.0, "site": 0, "kind": "offline", "every": 0}]}, "every"),
    ],
)
def test_bad_scenarios_name_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario({**BASE, **change}, "test.yaml")


@pytest.mark.parametrize(
    ("product", "option", "ok"),
    [
        ("FFR", 49.7, True),
        ("FFR", 49.5, True),
        ("FFR", None, False),
        ("FFR", 49.8, False),
        ("FCR_N", 49.7, False),
        ("FCR_N", None, True),
    ],
)
def test_ffr_option_only_on_ffr_phases(product: str, option: float | None, ok: bool) -> None:
    phase = {
        "kind": "frequency",
        "name": "f",
        "product": product,
        "capacity_kw_per_site": 1.0,
        "points": [[0.0, 50.0], [5.0, 49.6]],
        "ffr_activation_hz": option,
    }
    data = {**BASE, "phases": [phase]}
    if ok:
        parsed = parse_scenario(data).phases[0]
        assert isinstance(parsed, FrequencyPhase)
        assert parsed.product.value == product
    else:
        with pytest.raises(ScenarioError, match="ffr_activation_hz"):
            parse_scenario(data)


@pytest.mark.parametrize(
    ("site", "every", "fleet", "sites"),
    [(2, None, 10, [2]), (0, 3, 6, [0, 3]), (1, 3, 7, [1, 4]), (0, 1, 3, [0, 1, 2]), (5, 3, 5, [])],
)
def test_incident_every_nth_site(
    site: int, every: int | None, fleet: int, sites: list[int]
) -> None:
    incident = {"at_s": 1.0, "site": site, "kind": "load", "load_kw": 6.0, "every": every}
    scenario = parse_scenario({**BASE, "incidents": [incident]})
    assert scenario.incidents[0].sites(fleet) == sites


def test_fleet_too_small_for_an_incident() -> None:
    scenario = parse_scenario({**BASE, "incidents": [{"at_s": 1.0, "site": 8, "kind": "override"}]})
    scenario.check_fleet_size(9)
    with pytest.raises(ScenarioError, match="--sites 9"):
        scenario.check_fleet_size(8)


def test_load_by_path_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.yaml"
    good.write_text(
        "name: mine\nphases:\n  - {kind: order, name: o, product: AFRR, "
        "requested_kw_per_site: -1.0, duration_s: 30}\n"
    )
    assert load_scenario(str(good)).name == "mine"
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(str(bad))
    with pytest.raises(ScenarioError, match=r"built-in: .*fcrd_up_ramp"):
        load_scenario("no_such_scenario")


def test_worker_crash_kills_the_leader_mid_order() -> None:
    scenario = load_scenario("worker_crash")
    (crash,) = scenario.incidents
    assert crash.site is None
    start, order = scenario.phase_starts()[0]
    assert isinstance(order, OrderPhase)
    begins = start + order.lead_in_s
    assert begins < crash.at_s < begins + order.duration_s  # during the order
