"""Battery model and site profiles: pure, table-driven and property-checked."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.sim.battery import BatteryModel, BatteryParams
from edge.sim.profiles import SiteProfile

P = BatteryParams(
    capacity_kwh=10.0, max_charge_kw=5.0, max_discharge_kw=4.0, tau_s=1.0, dead_time_s=0.5
)


@pytest.mark.parametrize(
    ("soc", "target", "want"),
    [
        (50.0, 3.0, 3.0),
        (50.0, 9.0, 4.0),  # discharge clamped to the limit
        (50.0, -9.0, -5.0),  # charge clamped
        (5.0, 2.0, 0.0),  # no discharge at min SoC
        (100.0, -2.0, 0.0),  # no charge at max SoC
        (100.0, 2.0, 2.0),
        (5.0, -2.0, -2.0),
    ],
)
def test_clamp(soc: float, target: float, want: float) -> None:
    assert BatteryModel(P, soc_pct=soc).clamp(target) == want


def test_dead_time_then_first_order_response() -> None:
    model = BatteryModel(P, soc_pct=50.0)
    for _ in range(4):  # 0.4 s: still inside the dead time
        assert model.step(0.1, 4.0) == 0.0
    for _ in range(2):
        model.step(0.1, 4.0)
    after_start = model.power_kw
    assert 0.0 < after_start < 4.0
    for _ in range(100):
        model.step(0.1, 4.0)
    assert model.power_kw == pytest.approx(4.0, abs=0.01)


def test_soc_integrates_energy() -> None:
    model = BatteryModel(BatteryParams(capacity_kwh=10.0, tau_s=0.0, dead_time_s=0.0), soc_pct=50.0)
    model.step(0.0, 5.0)
    model.step(720.0, 5.0)  # 5 kW for 12 min = 1 kWh = 10 %
    assert model.soc_pct == pytest.approx(40.0, abs=0.01)


@given(st.lists(st.tuples(st.floats(0, 30), st.floats(-20, 20)), max_size=40), st.floats(0, 100))
def test_power_and_soc_stay_inside_limits(steps: list[tuple[float, float]], soc: float) -> None:
    model = BatteryModel(P, soc_pct=soc)
    for dt, target in steps:
        power = model.step(dt, target)
        assert -P.max_charge_kw - 1e-9 <= power <= P.max_discharge_kw + 1e-9
        assert 0.0 <= model.soc_pct <= 100.0


@pytest.mark.parametrize(
    "bad",
    [
        {"capacity_kwh": 0.0},
        {"max_charge_kw": -1.0},
        {"min_soc_pct": 90.0, "max_soc_pct": 80.0},
        {"tau_s": -1.0},
    ],
)
def test_bad_params_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"must|need"):
        BatteryParams(**bad)


def test_profiles_are_deterministic_and_seedable() -> None:
    a, b, c = SiteProfile(seed=1), SiteProfile(seed=1), SiteProfile(seed=2)
    noon = 12 * 3600.0
    assert a.pv_kw(noon) == b.pv_kw(noon)
    assert a.load_kw(noon) == b.load_kw(noon)
    assert [a.pv_kw(noon + 10 * i) for i in range(20)] != [
        c.pv_kw(noon + 10 * i) for i in range(20)
    ]
    assert a.pv_kw(2 * 3600.0) == 0.0  # night
    assert a.pv_kw(noon) > a.pv_kw(8 * 3600.0) > 0.0
    assert all(a.load_kw(h * 3600.0) > 0 for h in range(24))


@pytest.mark.parametrize("oem", ["huawei", "saj", "sungrow"])
def test_set_frequency_writes_the_register_without_stepping_the_battery(oem: str) -> None:
    from edge.hal.maps import load_all
    from edge.sim.server import SimInverter

    sim = SimInverter(load_all()[oem])
    steps = sim.battery.time_s
    for hz in (49.73, 50.12, 49.0):
        sim.set_frequency(hz)
        assert sim.registers.get("grid_frequency") == pytest.approx(hz, abs=0.005)  # 0.01 Hz
        assert sim.battery.time_s == steps
    sim.tick()  # the whole state, frequency included, on the next tick
    assert sim.registers.get("grid_frequency") == pytest.approx(49.0, abs=0.005)
    assert sim.battery.time_s > steps


@pytest.mark.parametrize("oem", ["huawei", "saj", "sungrow"])
def test_an_appliance_adds_to_the_household_load_the_firmware_covers(oem: str) -> None:
    """A 6 kW sauna switches on: the load the inverter reports (decoded by the HAL as the
    bridge reads it) rises by 6 kW at once, and the OEM's own self-consumption covers it up to
    the battery's limit; switched off, the profile alone again."""
    from edge.hal.decode import decode_telemetry
    from edge.hal.maps import load_all
    from edge.sim.server import SimInverter

    rmap = load_all()[oem]
    sim = SimInverter(rmap, start_time_of_day_s=18 * 3600.0)

    def load() -> float | None:
        values = {n: sim.registers.get(n) for n in rmap.points if rmap.points[n].type != "str"}
        return decode_telemetry(rmap, values).load_kw

    before, own = load(), sim.state().self_consumption_kw
    assert before is not None
    sim.switch_load(6.0)
    after = load()
    assert after == pytest.approx(before + 6.0, abs=0.01)
    state = sim.state()
    assert state.self_consumption_kw == pytest.approx(own + 6.0, abs=0.01)
    assert sim.firmware.target_kw(state) == pytest.approx(
        min(state.max_discharge_kw, state.self_consumption_kw)
    )
    sim.switch_load(0.0)
    assert load() == pytest.approx(before, abs=0.01)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="appliance load"):
            sim.switch_load(bad)
