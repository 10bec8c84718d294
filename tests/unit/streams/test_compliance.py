"""Live compliance: window-by-window fleet states against activations and armed reserves."""

from __future__ import annotations

import pytest

from contract.enums import ActivationKind, Finding, Product, VerdictStatus
from contract.errors import InvalidConfigError, InvalidRecordError
from contract.records import FleetState, MarketActivation, ProductState, ReserveAssignment
from streams.steps.compliance import (
    ComplianceConfig,
    ComplianceState,
    add_activation,
    add_assignment,
    evaluate,
    stale_sites,
)

S = 1_000_000
T0 = 1_700_000_000 * S
UUID = "00000000-0000-4000-8000-000000000000"
CONFIG = ComplianceConfig(min_required_mw=0.01, polarity_tolerance_mw=0.05, stale_after_s=10.0)


def fleet(
    t_s: int,
    power_mw: float,
    freq: float | None = 50.0,
    *,
    baseline: float | None = None,
    products: tuple[ProductState, ...] = (),
) -> FleetState:
    """The 1 s window ending at T0 + t_s."""
    return FleetState(
        event_id=f"00000000-0000-4000-8000-{t_s:012d}",
        event_time=T0 + t_s * S,
        fleet_id="fleet",
        window_start=T0 + (t_s - 1) * S,
        window_end=T0 + t_s * S,
        window_s=1,
        per_oem=(),
        total_power_mw=power_mw,
        headroom_up_mw=1.0,
        headroom_down_mw=1.0,
        sites_online=100,
        sites_faulted=0,
        mean_frequency_hz=freq,
        baseline_mw=baseline,
        products=products,
    )


FCRD_UP = ReserveAssignment(
    event_id=UUID,
    event_time=T0,
    fleet_id="fleet",
    assignment_id="asg-1",
    product=Product.FCR_D_UP,
    capacity_mw=1.0,
    valid_from=T0,
    valid_until=T0 + 3600 * S,
    f_start_hz=49.9,
    f_full_hz=49.5,
)
AFRR = MarketActivation(
    event_id=UUID,
    event_time=T0,
    fleet_id="fleet",
    activation_id="act-1",
    product=Product.AFRR,
    kind=ActivationKind.ORDER,
    requested_mw=2.0,
    start_time=T0,
    end_time=T0 + 600 * S,
    baseline_mw=1.0,
)

F = Finding
V = VerdictStatus
Expect = tuple[Finding, VerdictStatus, str] | None
# (fleet window, stale sites, expected verdict (finding, status, rule_id) or None)
# the homes' own baseline (self-consumption) is 0.2 MW: delivered = total - 0.2
FCRD_TICKS: list[tuple[FleetState, list[str], list[Expect]]] = [
    (fleet(1, 0.2, 50.0, baseline=0.2), [], []),
    (fleet(2, 0.3, 49.5, baseline=0.2), [], [(F.OK, V.PASS, "FCRD_UP.LIVE.RAMP")]),
    (fleet(10, 0.9, 49.5, baseline=0.2), [], [(F.SLOW, V.FAIL, "FCRD_UP.LIVE.REQ2.DP75")]),
    (fleet(11, 1.1, 49.5, baseline=0.2), [], [(F.OK, V.PASS, "FCRD_UP.LIVE.RAMP")]),
    (fleet(40, 1.0, 49.5, baseline=0.2), [], [(F.UNDER_DELIVERY, V.FAIL, "FCRD_UP.LIVE.STEADY")]),
    (fleet(41, 1.2, 49.5, baseline=0.2), [], [(F.OK, V.PASS, "FCRD_UP.LIVE.STEADY")]),
    (fleet(42, 1.5, 49.5, baseline=0.2), [], [(F.OVER_DELIVERY, V.WARN, "FCRD_UP.LIVE.STEADY")]),
    (
        fleet(43, -0.2, 49.5, baseline=0.2),
        [],
        [(F.WRONG_POLARITY, V.FAIL, "FCRD_UP.LIVE.POLARITY")],
    ),
    (fleet(44, 0.25, 50.0, baseline=0.2), [], []),
    (
        fleet(45, 0.25, 50.0, baseline=0.2),
        ["s2", "s1"],
        [(F.STALE_SITES, V.WARN, "LIVE.STALE_SITES")],
    ),
    (fleet(46, 0.35, 49.7, baseline=0.2), [], [(F.OK, V.PASS, "FCRD_UP.LIVE.RAMP")]),
    # the baseline moves with the household load: the response is judged against it
    (fleet(80, 1.6, 49.5, baseline=0.6), [], [(F.OK, V.PASS, "FCRD_UP.LIVE.STEADY")]),
    (fleet(81, 1.6, 49.5, baseline=0.8), [], [(F.UNDER_DELIVERY, V.FAIL, "FCRD_UP.LIVE.STEADY")]),
]
AFRR_TICKS: list[tuple[FleetState, list[str], list[Expect]]] = [
    (fleet(10, 1.5, baseline=1.0), [], [(F.OK, V.PASS, "AFRR.LIVE.RAMP")]),
    (fleet(160, 1.5, baseline=1.0), [], [(F.SLOW, V.FAIL, "AFRR.LIVE.RAMP")]),
    (fleet(301, 3.0, baseline=1.0), [], [(F.OK, V.PASS, "AFRR.LIVE.STEADY")]),
    (fleet(302, 2.5, baseline=1.0), [], [(F.UNDER_DELIVERY, V.FAIL, "AFRR.LIVE.STEADY")]),
    (fleet(602, 1.0, baseline=1.0), ["s1"], []),
]


def _assignment(product: Product, f_start: float, f_full: float) -> ReserveAssignment:
    return ReserveAssignment(
        event_id=UUID,
        event_time=T0,
        fleet_id="fleet",
        assignment_id=f"asg-{product.value}",
        product=product,
        capacity_mw=2.0,
        valid_from=T0,
        valid_until=T0 + 3600 * S,
        f_start_hz=f_start,
        f_full_hz=f_full,
    )


FCRN_TICKS: list[tuple[FleetState, list[str], list[Expect]]] = [
    (fleet(1, 0.0, 50.0), [], []),
    (fleet(2, -0.2, 50.05), [], [(F.OK, V.PASS, "FCRN.LIVE.RAMP")]),
    (fleet(62, -0.5, 50.05), [], [(F.SLOW, V.FAIL, "FCRN.LIVE.RAMP60")]),
    (fleet(63, -0.7, 50.05), [], [(F.OK, V.PASS, "FCRN.LIVE.RAMP")]),
    (fleet(200, -1.0, 50.05), [], [(F.OK, V.PASS, "FCRN.LIVE.STEADY")]),
    (fleet(201, 0.5, 50.05), [], [(F.WRONG_POLARITY, V.FAIL, "FCRN.LIVE.POLARITY")]),
    (fleet(202, 1.0, 49.95), [], [(F.OK, V.PASS, "FCRN.LIVE.STEADY")]),
]
FCRD_DOWN_TICKS: list[tuple[FleetState, list[str], list[Expect]]] = [
    (fleet(1, 0.0, 50.0), [], []),
    (fleet(2, -0.1, 50.3), [], [(F.OK, V.PASS, "FCRD_DOWN.LIVE.RAMP")]),
    (fleet(10, -0.5, 50.3), [], [(F.SLOW, V.FAIL, "FCRD_DOWN.LIVE.REQ2.DP75")]),
    (fleet(40, -1.0, 50.3), [], [(F.OK, V.PASS, "FCRD_DOWN.LIVE.STEADY")]),
]
FFR_TICKS: list[tuple[FleetState, list[str], list[Expect]]] = [
    (fleet(1, 0.0, 49.8), [], []),
    (fleet(2, 1.0, 49.65), [], [(F.OK, V.PASS, "FFR.LIVE.RAMP")]),
    (fleet(3, 1.0, 49.65), [], [(F.OK, V.PASS, "FFR.LIVE.RAMP")]),  # 1.0 s < 1.3 s
    (fleet(4, 1.0, 49.65), [], [(F.UNDER_DELIVERY, V.FAIL, "FFR.LIVE.STEADY")]),
    (fleet(5, 2.0, 49.65), [], [(F.OK, V.PASS, "FFR.LIVE.STEADY")]),
    (fleet(6, 2.0, 49.75), [], []),
]


@pytest.mark.parametrize(
    ("start", "ticks"),
    [(add_assignment(ComplianceState(), FCRD_UP), FCRD_TICKS),
     (add_activation(ComplianceState(), AFRR), AFRR_TICKS),
     (add_assignment(ComplianceState(), _assignment(Product.FCR_N, 50.0, 49.9)), FCRN_TICKS),
     (add_assignment(ComplianceState(), _assignment(Product.FCR_D_DOWN, 50.1, 50.5)),
      FCRD_DOWN_TICKS),
     (add_assignment(ComplianceState(), _assignment(Product.FFR, 49.7, 49.7)), FFR_TICKS)],
    ids=["fcr-d-up-armed", "afrr-order", "fcr-n-armed", "fcr-d-down-armed", "ffr-armed"],
)  # fmt: skip
def test_compliance_table(
    start: ComplianceState, ticks: list[tuple[FleetState, list[str], list[Expect]]]
) -> None:
    state = start
    for i, (window, stale, expected) in enumerate(ticks):
        state, verdicts = evaluate(state, window, stale, CONFIG)
        got = [(v.finding, v.status, v.rule_id) for v in verdicts]
        assert got == expected, f"tick {i}"
        for v in verdicts:
            assert v.rule_version
            assert v.event_time == window.window_end
        assert ComplianceState.from_dict(state.to_dict()) == state


def test_required_and_measured_use_the_baseline() -> None:
    state = add_assignment(ComplianceState(), FCRD_UP)
    _, (verdict,) = evaluate(state, fleet(2, 0.7, 49.7, baseline=0.2), [], CONFIG)
    assert verdict.required_mw == pytest.approx(0.5)
    assert verdict.measured_mw == pytest.approx(0.5)
    assert verdict.rule_version == "TR-2025-03-28"
    assert verdict.activation_id == "asg-1"
    assert "baseline" not in verdict.message


def test_a_window_without_a_baseline_is_judged_with_0_and_says_so() -> None:
    """Telemetry written before baselines: delivered = total power (SvK's CalcBaseline
    unknown), stated in every verdict."""
    state = add_assignment(ComplianceState(), FCRD_UP)
    _, (verdict,) = evaluate(state, fleet(2, 0.5, 49.7), [], CONFIG)
    assert verdict.measured_mw == pytest.approx(0.5)
    assert verdict.finding is F.OK
    assert "no site reported a baseline: 0 assumed" in verdict.message


def _products(**expected: tuple[float, float]) -> tuple[ProductState, ...]:
    return tuple(ProductState(Product(p), armed, exp) for p, (armed, exp) in expected.items())


def test_each_product_is_judged_against_its_own_response_when_stacked() -> None:
    """FCR-N (2 MW) and FCR-D up (1 MW) on the same homes at 49.7 Hz: FCR-N asks for all of
    its 2 MW, FCR-D up for half of its 1 MW; the fleet delivers 2.5 MW above its baseline,
    and each product is judged on what is left after the other's expected response."""
    state = add_assignment(ComplianceState(), _assignment(Product.FCR_N, 50.0, 49.9))
    state = add_assignment(state, FCRD_UP)
    stacked = _products(FCR_N=(2.0, 2.0), FCR_D_UP=(1.0, 0.5))
    window = fleet(2, 2.9, 49.7, baseline=0.4, products=stacked)
    state, verdicts = evaluate(state, window, [], CONFIG)
    by_product = {v.product: v for v in verdicts}
    fcrn, fcrd = by_product[Product.FCR_N], by_product[Product.FCR_D_UP]
    assert (fcrn.required_mw, fcrn.measured_mw) == pytest.approx((2.0, 2.0))
    assert (fcrd.required_mw, fcrd.measured_mw) == pytest.approx((0.5, 0.5))
    assert (fcrn.finding, fcrd.finding) == (F.OK, F.OK)
    assert "FCR_D_UP +0.500" in fcrn.message
    assert "FCR_N +2.000" in fcrd.message
    # in steady state 0.5 MW short: the fleet total cannot tell which product missed it,
    # so it shows against both (each judged net of the other's full expected response)
    late = fleet(300, 2.4, 49.7, baseline=0.4, products=stacked)
    _, verdicts = evaluate(state, late, [], CONFIG)
    assert {v.product: (v.finding, round(v.measured_mw, 6)) for v in verdicts} == {
        Product.FCR_N: (F.UNDER_DELIVERY, 1.5),
        Product.FCR_D_UP: (F.UNDER_DELIVERY, 0.0),
    }


def test_an_order_is_judged_net_of_the_frequency_reserves() -> None:
    """mFRR +2 MW while FCR-N (1 MW armed) charges at 50.05 Hz: the fleet delivers 1.5 MW,
    of which -0.5 MW is FCR-N's response: the order itself is served in full."""
    order = MarketActivation(
        event_id=UUID,
        event_time=T0,
        fleet_id="fleet",
        activation_id="mfrr-1",
        product=Product.MFRR,
        kind=ActivationKind.ORDER,
        requested_mw=2.0,
        start_time=T0,
        end_time=T0 + 1800 * S,
    )
    state = add_activation(ComplianceState(), order)
    stacked = _products(FCR_N=(1.0, -0.5), MFRR=(2.0, 2.0))
    _, (verdict,) = evaluate(
        state, fleet(1000, 2.5, 50.05, baseline=1.0, products=stacked), [], CONFIG
    )
    assert verdict.measured_mw == pytest.approx(2.0)
    assert verdict.finding is F.OK


def test_a_state_stored_with_the_old_fleet_baseline_still_loads() -> None:
    stored = add_assignment(ComplianceState(), FCRD_UP).to_dict()
    stored["baseline_mw"] = 0.2
    stored["obligations"][0]["baseline_mw"] = None
    assert ComplianceState.from_dict(stored) == add_assignment(ComplianceState(), FCRD_UP)


def test_stale_sites_message_and_ids() -> None:
    state = add_assignment(ComplianceState(), FCRD_UP)
    _, (verdict,) = evaluate(state, fleet(5, 0.0, 50.0), ["b", "a"], CONFIG)
    assert verdict.site_ids == ("a", "b")
    assert "FCR_D_UP" in verdict.message


def test_stale_sites_helper() -> None:
    last_seen = {"a": T0, "b": T0 + 5 * S, "c": T0 - S}
    assert stale_sites(last_seen, T0 + 12 * S, CONFIG) == ["a", "c"]


def test_afrr_assignment_is_not_judged_by_itself() -> None:
    afrr_capacity = ReserveAssignment(
        event_id=UUID,
        event_time=T0,
        fleet_id="fleet",
        assignment_id="asg-2",
        product=Product.AFRR,
        capacity_mw=1.0,
        valid_from=T0,
        valid_until=T0 + 60 * S,
        f_start_hz=50.0,
        f_full_hz=50.0,
    )
    assert add_assignment(ComplianceState(), afrr_capacity) == ComplianceState()


def test_bad_state_and_config_are_typed_errors() -> None:
    with pytest.raises(InvalidRecordError):
        ComplianceState.from_dict({"obligations": [{"product": "FCR_N"}]})
    with pytest.raises(InvalidRecordError):
        ComplianceState.from_dict({"obligations": "none"})
    with pytest.raises(InvalidConfigError):
        ComplianceConfig(stale_after_s=-1.0)
