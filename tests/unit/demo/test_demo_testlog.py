"""The demo's 10 Hz test rig log: resampling, errors, and verdicts on simulated responses.

The FCR-D cases drive the real droop (``edge.bridge.droop.response_kw``) and the real
simulated battery (``edge.sim.battery``, each OEM's RESPONSE) along the default scenario's
trace, with the droop sampled every ``poll_s`` and written ``write_s`` later: the latency
budget of TR25 Req 2/3 on the demo's own trace.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from analytics.svkcsv import read_csv
from analytics.verdicts import TestType
from contract.enums import Product
from contract.records import ReserveArm
from edge.bridge.droop import response_kw
from edge.sim.battery import BatteryModel, BatteryParams
from edge.sim.firmware import RESPONSE
from flowerhub.demo.scenario import FrequencyPhase, load_scenario
from flowerhub.demo.testlog import RigLog, RigLogError, judge_rig, write_rig_csv

START_US = 1_790_000_000_000_000


def _log(**kw: object) -> RigLog:
    base: dict[str, object] = {
        "phase": "p",
        "product": Product.FCR_D_UP,
        "test_type": TestType.RAMP,
        "capacity_mw": 0.012,
        "start_us": START_US,
    }
    return RigLog(**{**base, **kw})  # type: ignore[arg-type]  # test helper


@pytest.mark.parametrize(
    ("samples", "t", "f", "p_kw"),
    [
        # frequency is held from its sample, power is linear between samples
        (
            [(0.0, 49.9, 0.0), (0.25, 49.8, 1.0), (0.3, 49.7, 2.0)],
            [0.0, 0.1, 0.2, 0.3],
            [49.9, 49.9, 49.9, 49.7],
            [0.0, 0.4, 0.8, 2.0],
        ),
        # a log starting late: the grid starts at the first sample
        ([(1.0, 50.0, 5.0), (1.2, 49.0, 7.0)], [0.0, 0.1, 0.2], [50.0, 50.0, 49.0], [5, 6, 7]),
    ],
)
def test_series_resamples_onto_10_hz(
    samples: list[tuple[float, float, float]], t: list[float], f: list[float], p_kw: list[float]
) -> None:
    log = _log()
    for sample in samples:
        log.add(*sample)
    s = log.series()
    assert s.t == pytest.approx(t)
    assert s.applied_freq_hz is not None
    assert s.applied_freq_hz == pytest.approx(f)
    assert s.power_mw == pytest.approx(np.asarray(p_kw) / 1000.0)
    assert s.start == np.datetime64(START_US + round(samples[0][0] * 1e6), "us")
    assert s.capacity_mw is not None
    assert set(s.capacity_mw.tolist()) == {0.012}


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        ([], "two samples"),
        ([(1.0, 50.0, 0.0)], "two samples"),
        ([(1.0, 50.0, 0.0), (1.0, 50.0, 1.0)], "two samples"),
    ],
)
def test_series_needs_two_times(samples: list[tuple[float, float, float]], message: str) -> None:
    log = _log()
    for sample in samples:
        log.add(*sample)
    with pytest.raises(RigLogError, match=message):
        log.series()


@pytest.mark.parametrize(
    ("sample", "message"),
    [
        ((0.5, 50.0, 0.0), "time went back"),
        ((2.0, float("nan"), 0.0), "non-finite"),
        ((2.0, 50.0, float("inf")), "non-finite"),
    ],
)
def test_bad_samples_are_refused(sample: tuple[float, float, float], message: str) -> None:
    log = _log()
    log.add(1.0, 50.0, 0.0)
    with pytest.raises(RigLogError, match=message):
        log.add(*sample)
    assert log.t_s == [1.0]


def test_bad_rate_is_refused() -> None:
    log = _log()
    log.add(0.0, 50.0, 0.0)
    log.add(1.0, 50.0, 0.0)
    with pytest.raises(RigLogError, match="rate_hz"):
        log.series(0.0)


@given(
    steps=st.lists(st.floats(0.01, 0.5), min_size=1, max_size=40),
    hz=st.lists(st.floats(49.0, 51.0), min_size=41, max_size=41),
    kw=st.lists(st.floats(-20.0, 20.0), min_size=41, max_size=41),
)
def test_series_is_regular_and_inside_the_samples(
    steps: list[float], hz: list[float], kw: list[float]
) -> None:
    log = _log()
    t = 3.0
    log.add(t, hz[0], kw[0])
    for k, dt in enumerate(steps, start=1):
        t += dt
        log.add(t, hz[k], kw[k])
    if t - 3.0 < 0.1 - 1e-9:
        with pytest.raises(RigLogError, match="shorter than one"):
            log.series()
        return
    s = log.series()
    assert np.allclose(np.diff(s.t), 0.1)
    assert s.t[-1] <= t - 3.0 + 1e-9
    assert s.applied_freq_hz is not None
    assert set(s.applied_freq_hz.tolist()) <= set(hz[: len(steps) + 1])
    used = kw[: len(steps) + 1]
    assert np.all(s.power_mw >= min(used) / 1000 - 1e-12)
    assert np.all(s.power_mw <= max(used) / 1000 + 1e-12)


def _fleet_rig(phase: FrequencyPhase, poll_s: float, write_s: float, sites: int = 2) -> RigLog:
    """Each OEM's battery following the droop sampled every poll_s, written write_s later."""
    cap_kw = phase.capacity_kw_per_site
    params = ReserveArm(Product.FCR_D_UP, cap_kw, 49.9, 49.5)
    batteries = [
        BatteryModel(BatteryParams(tau_s=tau, dead_time_s=dead))
        for tau, dead in (RESPONSE[oem] for oem in sorted(RESPONSE))
        for _ in range(sites)
    ]
    log = _log(capacity_mw=cap_kw * len(batteries) / 1000.0)
    dt = 0.05
    target = 0.0
    pending: list[tuple[float, float]] = []
    for k in range(round(phase.duration_s / dt) + 1):
        t = k * dt
        if k % round(poll_s / dt) == 0:
            pending.append((t + write_s, response_kw(params, phase.frequency_at(t))))
        while pending and pending[0][0] <= t + 1e-9:
            target = pending.pop(0)[1]
        power = sum(b.step(dt, target) for b in batteries) if k else 0.0
        if k % 2 == 0:
            log.add(t, phase.frequency_at(t), power)
    return log


def _fcrd_phase() -> FrequencyPhase:
    phase = load_scenario("fcrd_up_ramp").phases[0]
    assert isinstance(phase, FrequencyPhase)
    return phase


@pytest.mark.parametrize(
    ("poll_s", "write_s", "status"),
    [
        # the bridge's reserve fast loop (0.2 s) and one write: TR25 Req 2/3 met
        (0.2, 0.1, "PASS"),
        # droop only at a 1 s poll, a 1 s write sequence: still inside the budget
        (1.0, 1.0, "PASS"),
        # 3 s from the frequency to the write: Req 3's energy in the first 7.5 s is missed
        (1.0, 3.0, "FAIL"),
    ],
)
def test_fcrd_ramp_latency_budget(poll_s: float, write_s: float, status: str) -> None:
    outcome = judge_rig(_fleet_rig(_fcrd_phase(), poll_s, write_s))
    assert outcome.error is None
    got = {v.rule_id: v for v in outcome.verdicts}
    assert ("PASS" if got["FCRD_UP.REQ3.E75"].passed else "FAIL") == status
    assert got["FCRD_UP.POLARITY"].passed
    rows = {r["rule_id"]: r for r in outcome.rows()}
    assert rows["FCRD_UP.REQ3.E75"]["activation"] == "rig:p"
    assert rows["FCRD_UP.REQ3.E75"]["comparison"] == ">="


def test_faster_droop_gives_more_energy() -> None:
    fast = judge_rig(_fleet_rig(_fcrd_phase(), 0.2, 0.1))
    slow = judge_rig(_fleet_rig(_fcrd_phase(), 1.0, 1.0))
    energy = {
        name: next(v.measured for v in o.verdicts if v.rule_id == "FCRD_UP.REQ3.E75")
        for name, o in (("fast", fast), ("slow", slow))
    }
    # a ramp followed with a delay d loses about d x capacity of energy in its first 7.5 s:
    # mean delay 0.1 s (half a 0.2 s poll) + 0.1 s vs 0.5 s (half a 1 s poll) + 1 s
    assert energy["fast"] - energy["slow"] == pytest.approx((1.5 - 0.2) * 0.012, rel=0.2)


def test_unjudgeable_log_reports_why() -> None:
    log = _log()
    log.add(0.0, 49.9, 0.0)
    log.add(5.0, 49.9, 0.0)
    outcome = judge_rig(log)
    assert outcome.verdicts == []
    assert outcome.error is not None
    assert "TestSequenceError" in outcome.error


def test_rig_csv_reads_back_as_the_same_series(tmp_path: Path) -> None:
    log = _fleet_rig(_fcrd_phase(), 0.2, 0.1, sites=1)
    path = write_rig_csv(log, tmp_path)
    record = read_csv(path)
    assert record.name.product is Product.FCR_D_UP
    assert record.name.test_type is TestType.RAMP
    series = log.series()
    assert record.series.t == pytest.approx(series.t)
    assert record.series.power_mw == pytest.approx(series.power_mw, abs=1e-6)
