"""Hypothesis properties of the product curves and the live compliance verdicts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import Finding, Product, VerdictStatus
from contract.products import CURVES, curve_fraction, required_response_mw
from contract.records import FleetState, ReserveAssignment
from streams.steps.compliance import (
    ComplianceConfig,
    ComplianceState,
    add_assignment,
    evaluate,
)

S = 1_000_000
T0 = 1_700_000_000 * S
CONFIG = ComplianceConfig()
FREQ_PRODUCTS = [Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN, Product.FFR]
frequencies = st.floats(48.5, 51.5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FREQ_PRODUCTS), frequencies, frequencies)
def test_curves_are_bounded_monotonic_and_signed(product: Product, f1: float, f2: float) -> None:
    curve = CURVES[product]
    lo, hi = sorted((f1, f2))
    a, b = curve_fraction(curve, lo), curve_fraction(curve, hi)
    assert -1.0 <= a <= 1.0
    assert -1.0 <= b <= 1.0
    assert a >= b  # lower frequency never asks for less discharge
    if curve.direction > 0:
        assert b >= 0.0
    if curve.direction < 0:
        assert a <= 0.0


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(FREQ_PRODUCTS),
    st.floats(0.1, 50.0, allow_nan=False),
    frequencies,
    st.floats(-60.0, 60.0, allow_nan=False),
    st.integers(1, 120),
)
def test_verdicts_follow_required_and_measured(
    product: Product, capacity: float, freq: float, power: float, elapsed_s: int
) -> None:
    curve = CURVES[product]
    assert curve.f_start_hz is not None
    assert curve.f_full_hz is not None
    asg = ReserveAssignment(
        event_id="00000000-0000-4000-8000-000000000000",
        event_time=T0,
        fleet_id="fleet",
        assignment_id="asg",
        product=product,
        capacity_mw=capacity,
        valid_from=T0,
        valid_until=T0 + 3600 * S,
        f_start_hz=curve.f_start_hz,
        f_full_hz=curve.f_full_hz,
    )
    # a baseline window at the nominal frequency with zero power, then the event
    state = add_assignment(ComplianceState(), asg)
    state, _ = evaluate(state, _window(1, 0.0, curve.f_start_hz), [], CONFIG)
    state, first = evaluate(state, _window(2, power, freq), [], CONFIG)
    _, later = evaluate(state, _window(2 + elapsed_s, power, freq), [], CONFIG)
    required = required_response_mw(curve, capacity, freq)
    for verdicts in (first, later):
        if abs(required) < CONFIG.min_required_mw:
            assert verdicts == []
            continue
        (v,) = verdicts
        assert v.required_mw == required
        assert v.measured_mw == power
        opposite = power * required < 0 and abs(power) >= CONFIG.polarity_tolerance_mw
        assert (v.finding is Finding.WRONG_POLARITY) == opposite
        assert (v.status is VerdictStatus.PASS) == (v.finding is Finding.OK)
        assert v.rule_version == curve.rule_version
        if v.finding is Finding.OK and elapsed_s >= curve.full_activation_s and verdicts is later:
            ratio = power / required
            assert 1 - curve.under_tolerance <= ratio <= 1 + curve.over_tolerance


def _window(t_s: int, power_mw: float, freq: float) -> FleetState:
    return FleetState(
        event_id=f"00000000-0000-4000-8000-{t_s:012d}",
        event_time=T0 + t_s * S,
        fleet_id="fleet",
        window_start=T0 + (t_s - 1) * S,
        window_end=T0 + t_s * S,
        window_s=1,
        per_oem=(),
        total_power_mw=power_mw,
        headroom_up_mw=0.0,
        headroom_down_mw=0.0,
        sites_online=1,
        sites_faulted=0,
        mean_frequency_hz=freq,
    )
