"""Fleet composition: deterministic, mixed over every OEM map, within each model's limits."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.hal.registermap import ModelInfo
from flowerhub.demo.fleet import (
    CAPACITIES_KWH,
    SOC_RANGE_PCT,
    FleetError,
    compose_fleet,
    describe,
    map_models,
)

MODELS = map_models()


def test_default_fleet_mixes_the_three_oems_and_their_models() -> None:
    sites = compose_fleet(60, seed=7, models=MODELS)
    per_oem = Counter(s.oem for s in sites)
    assert per_oem == {"huawei": 20, "saj": 20, "sungrow": 20}
    for oem in per_oem:
        assert len({s.model for s in sites if s.oem == oem}) >= 3, oem
    assert len({s.soc_pct for s in sites}) > 30
    assert len({s.peak_load_kw for s in sites}) > 30
    assert len({s.site_id for s in sites}) == 60


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, {"huawei": 1}),
        (3, {"huawei": 1, "saj": 1, "sungrow": 1}),
        (7, {"huawei": 3, "saj": 2, "sungrow": 2}),
        (9, {"huawei": 3, "saj": 3, "sungrow": 3}),
    ],
)
def test_round_robin_over_oems(n: int, expected: dict[str, int]) -> None:
    assert Counter(s.oem for s in compose_fleet(n, seed=1, models=MODELS)) == expected


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), seed=st.integers(0, 2**31))
def test_same_seed_same_fleet_and_limits_hold(n: int, seed: int) -> None:
    a = compose_fleet(n, seed=seed, models=MODELS)
    assert a == compose_fleet(n, seed=seed, models=MODELS)
    names = {oem: {m.name: m for m in models} for oem, models in MODELS.items()}
    for s in a:
        model = names[s.oem][s.model]
        assert 0 < s.max_power_kw <= (model.rated_power_kw or 10.0)
        assert s.max_power_kw <= 0.5 * s.capacity_kwh
        assert s.capacity_kwh in CAPACITIES_KWH
        assert SOC_RANGE_PCT[0] <= s.soc_pct <= SOC_RANGE_PCT[1]


def test_prefix_of_a_fleet_is_stable_across_sizes() -> None:
    small = compose_fleet(6, seed=3, models=MODELS)
    big = compose_fleet(60, seed=3, models=MODELS)
    assert big[:6] == small


@pytest.mark.parametrize(
    ("n", "models", "message"),
    [
        (0, MODELS, "at least one site"),
        (-5, MODELS, "at least one site"),
        (3, {}, "no OEM register map"),
        (3, {"huawei": []}, "no OEM register map"),
    ],
)
def test_bad_fleets_raise(n: int, models: dict[str, list[ModelInfo]], message: str) -> None:
    with pytest.raises(FleetError, match=message):
        compose_fleet(n, seed=0, models=models)


def test_describe_counts_per_oem() -> None:
    line = describe(compose_fleet(6, seed=0, models=MODELS))
    assert line.startswith("6 sites (huawei 2, saj 2, sungrow 2)")
