"""The pure steps chained the way the agents chain them, without Kafka: an aFRR order ->
allocator -> setpoint filter -> (sites follow) -> aggregation -> live compliance."""

from __future__ import annotations

import pytest

from contract.enums import ActivationKind, CommandKind, Finding, Product, SiteMode
from contract.records import MarketActivation, SiteCommand, SiteTelemetry
from streams.steps.allocator import allocate_activation, reallocate
from streams.steps.availability import AllocatorConfig, SiteStatus
from streams.steps.compliance import ComplianceConfig, ComplianceState, add_activation, evaluate
from streams.steps.fleet_aggregation import FleetAggregator, TumblingWindows
from streams.steps.setpoint_filter import (
    FilterConfig,
    FilterReason,
    FilterState,
    SiteLimits,
    filter_setpoint,
    tick,
)

S = 1_000_000
T0 = 1_700_000_000 * S
UUID = "00000000-0000-4000-8000-000000000000"
SITES = [f"site-{i:03d}" for i in range(50)]


def telemetry(site: str, t: int, power: float, *, faulted: bool = False) -> SiteTelemetry:
    i = int(site[-3:])
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
        headroom_up_kw=8.0 + i % 5 - power,
        headroom_down_kw=8.0 + power,
        max_discharge_kw=10.0,
        max_charge_kw=10.0,
        mode=SiteMode.REMOTE,
        frequency_hz=50.0,
        faulted=faulted,
    )


def test_an_afrr_order_is_served_and_judged() -> None:
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
        baseline_mw=0.0,
    )
    latest = {s: telemetry(s, T0 - S, 0.0) for s in SITES}
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
        filters[site], command, reason = tick(filters[site], T0 + 12 * S, FilterConfig())
        if command is not None:
            assert reason is FilterReason.DEFERRED
            commands[site] = command
            deferred += 1
    assert deferred > 0
    commands.pop("site-007")

    # every site follows its command; the aggregate over a 10 s window sees 0.3 MW
    windows = TumblingWindows(FleetAggregator("fleet", 10))
    states = []
    for site, command in sorted(commands.items()):
        assert command.kind is CommandKind.SET_POWER
        assert command.power_kw is not None
        states += windows.add(telemetry(site, T0 + 400 * S, command.power_kw))
    states += windows.flush()
    (window,) = states
    assert window.total_power_mw == pytest.approx(0.3)
    assert window.sites_online == 49

    state = add_activation(ComplianceState(), order)
    _, verdicts = evaluate(state, window, [], ComplianceConfig())
    assert [(v.finding, v.rule_id) for v in verdicts] == [(Finding.OK, "AFRR.LIVE.STEADY")]
