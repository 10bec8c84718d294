"""The pure steps chained the way the agents chain them, without Kafka: an aFRR order, or three
reserves on the same homes -> allocator -> setpoint filter -> (sites follow, on top of their
baselines) -> aggregation -> live compliance."""

from __future__ import annotations

import pytest

from contract.enums import ActivationKind, CommandKind, Finding, Product, SiteMode
from contract.records import MarketActivation, ReserveAssignment, SiteCommand, SiteTelemetry
from streams.steps.allocation import reserve_request
from streams.steps.allocator import allocate_activation, reallocate
from streams.steps.availability import AllocatorConfig, SiteStatus
from streams.steps.compliance import (
    ComplianceConfig,
    ComplianceState,
    add_activation,
    add_assignment,
    evaluate,
)
from streams.steps.fleet_aggregation import FleetAggregator, TumblingWindows
from streams.steps.fleet_allocations import FleetAllocations, apply_request
from streams.steps.setpoint_filter import (
    FilterConfig,
    FilterState,
    SiteLimits,
    filter_setpoint,
    tick,
)

S = 1_000_000
T0 = 1_700_000_000 * S
UUID = "00000000-0000-4000-8000-000000000000"
SITES = [f"site-{i:03d}" for i in range(50)]


def telemetry(
    site: str,
    t: int,
    power: float,
    *,
    faulted: bool = False,
    baseline: float = 0.0,
    order_kw: float = 0.0,
    armed: tuple[float, float, float] = (0.0, 0.0, 0.0),
    frequency: float = 50.0,
) -> SiteTelemetry:
    """A site at ``power`` whose own baseline is ``baseline``, holding an aFRR change
    ``order_kw`` and ``armed`` = (FCR-N, FCR-D up, FCR-D down) kW; headroom is what is left
    of its 8-12 kW limits beyond all of them."""
    i = int(site[-3:])
    limit = 8.0 + i % 5
    fcrn, up, down = armed
    return SiteTelemetry(
        event_id=UUID,
        event_time=t,
        site_id=site,
        oem=("huawei", "sungrow", "saj")[i % 3],
        model="m",
        battery_power_kw=power,
        soc_pct=60.0,
        grid_power_kw=0.0,
        pv_power_kw=0.0,
        load_kw=0.5,
        headroom_up_kw=max(0.0, limit - baseline - max(order_kw, 0.0) - fcrn - up),
        headroom_down_kw=max(0.0, 10.0 + baseline + min(order_kw, 0.0) - fcrn - down),
        max_discharge_kw=limit,
        max_charge_kw=10.0,
        mode=SiteMode.SELF_CONSUMPTION,
        frequency_hz=frequency,
        faulted=faulted,
        baseline_kw=baseline,
        order_afrr_kw=order_kw,
        armed_fcr_n_kw=fcrn,
        armed_fcr_d_up_kw=up,
        armed_fcr_d_down_kw=down,
    )


def test_an_afrr_order_is_served_and_judged() -> None:
    """The order is a change against each home's own baseline (0.5 kW of household load
    covered by the battery): the homes keep covering their load, the fleet delivers the
    order on top, and live compliance judges delivered = total - baseline."""
    order = MarketActivation(
        event_id=UUID,
        event_time=T0,
        fleet_id="fleet",
        activation_id="afrr-1",
        product=Product.AFRR,
        kind=ActivationKind.ORDER,
        requested_mw=0.3,
        start_time=T0,
        end_time=T0 + 900 * S,
        baseline_mw=0.025,
    )
    latest = {s: telemetry(s, T0 - S, 0.5, baseline=0.5) for s in SITES}
    statuses = [SiteStatus(s, latest[s]) for s in SITES]
    alloc = allocate_activation(order, statuses, T0, AllocatorConfig())
    assert alloc.shortfall_kw == pytest.approx(0.0, abs=1e-9)
    assert len(alloc.setpoints) == 50

    filters = {s: FilterState() for s in SITES}
    commands: dict[str, SiteCommand] = {}
    for sp in alloc.setpoints:
        limits = SiteLimits.from_telemetry(latest[sp.site_id])
        filters[sp.site_id], command, _ = filter_setpoint(
            filters[sp.site_id], sp, T0, FilterConfig(), limits
        )
        assert command is not None
        commands[sp.site_id] = command

    # one site faults: the allocator moves its share to the others, only changed sites resend
    latest = {
        s: telemetry(
            s, T0 + S // 2, 0.5 + (c.power_kw or 0.0), baseline=0.5, order_kw=c.power_kw or 0.0
        )
        for s, c in commands.items()
    }
    latest["site-007"] = telemetry("site-007", T0 + S, 0.0, faulted=True)
    again = reallocate(alloc, [SiteStatus(s, latest[s]) for s in SITES], T0 + S, AllocatorConfig())
    assert "site-007" not in again.per_site_kw
    assert again.shortfall_kw == pytest.approx(0.0, abs=1e-9)
    for sp in again.setpoints:
        filters[sp.site_id], command, _ = filter_setpoint(
            filters[sp.site_id], sp, T0 + S, FilterConfig()
        )
        if command is not None:
            commands[sp.site_id] = command
    # shares that grew by less than the gate threshold were held back; the timer writes them
    deferred = 0
    for site in SITES:
        filters[site], written = tick(filters[site], T0 + 12 * S, FilterConfig())
        for command in written:
            commands[site] = command
            deferred += 1
    assert deferred > 0
    ended = commands.pop("site-007")
    assert (ended.kind, ended.power_kw) == (CommandKind.ORDER, 0.0)  # its share taken back

    # every site follows its command on top of its baseline; a 10 s window sees 0.3 MW
    # delivered above the fleet's 0.025 MW of self-consumption
    windows = TumblingWindows(FleetAggregator("fleet", 10))
    states = []
    for site, command in sorted(commands.items()):
        assert command.kind is CommandKind.ORDER
        assert command.product is Product.AFRR
        change = command.power_kw
        assert change is not None
        states += windows.add(
            telemetry(site, T0 + 400 * S, 0.5 + change, baseline=0.5, order_kw=change)
        )
    states += windows.flush()
    (window,) = states
    assert window.total_power_mw == pytest.approx(0.3245)
    assert window.baseline_mw == pytest.approx(0.0245)
    assert window.sites_online == 49
    (afrr,) = window.products
    assert afrr.product is Product.AFRR
    assert (afrr.armed_mw, afrr.expected_mw) == pytest.approx((0.3, 0.3))

    state = add_activation(ComplianceState(), order)
    _, verdicts = evaluate(state, window, [], ComplianceConfig())
    assert [(v.finding, v.rule_id) for v in verdicts] == [(Finding.OK, "AFRR.LIVE.STEADY")]
    assert verdicts[0].measured_mw == pytest.approx(0.3)


def test_three_reserves_on_the_same_homes_respond_together_and_are_judged_apart() -> None:
    """FCR-N + FCR-D up + FCR-D down armed on every home; at 49.7 Hz FCR-N gives all of its
    capacity and FCR-D up half of its, on top of the homes' baselines."""
    latest = {s: telemetry(s, T0 - S, 0.5, baseline=0.5) for s in SITES}
    statuses = [SiteStatus(s, latest[s]) for s in SITES]
    config = AllocatorConfig()
    state = FleetAllocations()
    assignments = []
    for product, mw, band in (
        (Product.FCR_N, 0.1, (50.0, 49.9)),
        (Product.FCR_D_UP, 0.1, (49.9, 49.5)),
        (Product.FCR_D_DOWN, 0.1, (50.1, 50.5)),
    ):
        asg = ReserveAssignment(
            event_id=UUID,
            event_time=T0,
            fleet_id="fleet",
            assignment_id=f"asg-{product.value}",
            product=product,
            capacity_mw=mw,
            valid_from=T0,
            valid_until=T0 + 3600 * S,
            f_start_hz=band[0],
            f_full_hz=band[1],
        )
        request = reserve_request(asg)
        assert request is not None
        state, alloc = apply_request(state, request, statuses, T0, config)
        assert alloc.shortfall_kw == pytest.approx(0.0, abs=1e-9)
        assignments.append(asg)
    armed = {
        s: tuple(
            state.by_slot[p].per_site_kw[s]
            for p in (Product.FCR_N, Product.FCR_D_UP, Product.FCR_D_DOWN)
        )
        for s in SITES
    }
    windows = TumblingWindows(FleetAggregator("fleet", 1))
    states = []
    for site, (fcrn, up, down) in armed.items():
        assert fcrn + up <= latest[site].headroom_up_kw + 1e-9  # both fit upwards
        response = fcrn * 1.0 + up * 0.5  # at 49.7 Hz
        states += windows.add(
            telemetry(
                site,
                T0 + 60 * S,
                0.5 + response,
                baseline=0.5,
                armed=(fcrn, up, down),
                frequency=49.7,
            )
        )
    states += windows.flush()
    (window,) = states
    assert {p.product: (p.armed_mw, p.expected_mw) for p in window.products} == {
        Product.FCR_N: pytest.approx((0.1, 0.1)),
        Product.FCR_D_UP: pytest.approx((0.1, 0.05)),
        Product.FCR_D_DOWN: pytest.approx((0.1, 0.0)),
    }
    compliance = ComplianceState()
    for asg in assignments:
        compliance = add_assignment(compliance, asg)
    _, verdicts = evaluate(compliance, window, [], ComplianceConfig())
    got = {
        v.product: (v.finding, round(v.required_mw, 6), round(v.measured_mw, 6)) for v in verdicts
    }
    assert got == {
        Product.FCR_N: (Finding.OK, 0.1, 0.1),
        Product.FCR_D_UP: (Finding.OK, 0.05, 0.05),
    }
