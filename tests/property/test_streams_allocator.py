"""Hypothesis properties of the allocator.

Epsilon: ``ALLOCATION_EPSILON_KW`` (1 mW). The split itself is exact in integer units of
``resolution_kw``; only the conversion of each site's units to a float kW value rounds.
"""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from contract.enums import CommandKind, Product, SiteMode
from contract.records import SiteTelemetry
from streams.steps.allocator import (
    ALLOCATION_EPSILON_KW,
    Allocation,
    AllocationRequest,
    allocate,
    reallocate,
)
from streams.steps.availability import AllocatorConfig, SiteStatus, site_availability

S = 1_000_000
NOW = 1_700_000_000 * S
CONFIG = AllocatorConfig()


Row = tuple[float, float, float, bool, int]


def _status(i: int, row: Row) -> SiteStatus:
    up, down, power, faulted, age_s = row
    site = f"site-{i:04d}"
    return SiteStatus(
        site,
        SiteTelemetry(
            event_id="00000000-0000-4000-8000-000000000000",
            event_time=NOW - age_s * S,
            site_id=site,
            oem="saj",
            model="H2",
            battery_power_kw=power,
            soc_pct=50.0,
            grid_power_kw=0.0,
            pv_power_kw=0.0,
            load_kw=0.0,
            headroom_up_kw=up,
            headroom_down_kw=down,
            max_discharge_kw=12.0,
            max_charge_kw=12.0,
            mode=SiteMode.REMOTE,
            faulted=faulted,
        ),
    )


site_rows = st.lists(
    st.tuples(
        st.floats(0.0, 20.0, allow_nan=False),
        st.floats(0.0, 20.0, allow_nan=False),
        st.floats(-5.0, 5.0, allow_nan=False),
        st.sampled_from([False, False, False, False, True]),
        st.sampled_from([0, 1, 2, 30]),
    ),
    max_size=40,
)
targets = st.floats(-400.0, 400.0, allow_nan=False)


def _statuses(rows: list[Row]) -> list[SiteStatus]:
    return [_status(i, row) for i, row in enumerate(rows)]


def _request(target_kw: float) -> AllocationRequest:
    return AllocationRequest(
        source_id="fs-1",
        fleet_id="fleet",
        kind=CommandKind.SET_POWER,
        product=Product.NONE,
        target_kw=target_kw,
        valid_until=NOW + 60 * S,
    )


def _check(alloc: Allocation, statuses: list[SiteStatus]) -> None:
    target = alloc.request.target_kw
    # the sum matches the target, or the shortfall says exactly how much is missing
    assert abs(math.fsum(alloc.per_site_kw.values()) + alloc.shortfall_kw - target) <= (
        ALLOCATION_EPSILON_KW
    )
    # never more than asked, in the asked direction
    assert target * alloc.shortfall_kw >= -ALLOCATION_EPSILON_KW * abs(target)
    available = 0.0
    for status in statuses:
        av = site_availability(status, NOW, CONFIG)
        cap = av.up_kw if target >= 0 else av.down_kw
        if av.excluded is not None:
            assert status.site_id not in alloc.per_site_kw
            continue
        kw = alloc.per_site_kw[status.site_id]
        assert 0.0 <= math.copysign(1.0, target) * kw <= cap + ALLOCATION_EPSILON_KW
        available += cap
    # a shortfall only when capacity runs out (up to one resolution step per site of rounding)
    if available >= abs(target):
        assert abs(alloc.shortfall_kw) <= CONFIG.resolution_kw + ALLOCATION_EPSILON_KW
    else:
        assert abs(alloc.allocated_kw) <= available + ALLOCATION_EPSILON_KW


@settings(max_examples=300, deadline=None)
@given(site_rows, targets)
def test_allocation_sums_to_target_or_reports_the_shortfall(
    rows: list[Row], target_kw: float
) -> None:
    statuses = _statuses(rows)
    _check(allocate(_request(target_kw), statuses, NOW, CONFIG), statuses)


@settings(max_examples=200, deadline=None)
@given(site_rows, targets, st.randoms(use_true_random=False))
def test_allocation_is_independent_of_input_order(
    rows: list[Row], target_kw: float, rnd: random.Random
) -> None:
    statuses = _statuses(rows)
    shuffled = list(statuses)
    rnd.shuffle(shuffled)
    one = allocate(_request(target_kw), statuses, NOW, CONFIG)
    two = allocate(_request(target_kw), shuffled, NOW, CONFIG)
    assert one == two


@settings(max_examples=200, deadline=None)
@given(site_rows, targets, st.lists(st.integers(0, 39), max_size=10))
def test_reallocation_after_faults_keeps_the_invariants(
    rows: list[Row], target_kw: float, faulting: list[int]
) -> None:
    statuses = _statuses(rows)
    first = allocate(_request(target_kw), statuses, NOW, CONFIG)
    changed = [
        _status(i, (*row[:3], True, row[4])) if i in faulting else statuses[i]
        for i, row in enumerate(rows)
    ]
    second = reallocate(first, changed, NOW, CONFIG)
    _check(second, changed)
    resent = {s.site_id for s in second.setpoints}
    for site_id, kw in second.per_site_kw.items():
        assert (site_id in resent) == (first.per_site_kw.get(site_id) != kw)
    for sp in second.setpoints:
        if sp.site_id in second.per_site_kw:
            assert sp.power_kw == second.per_site_kw[sp.site_id]
        else:  # left the split while holding a share: the share is taken back
            assert sp.power_kw == 0.0
            assert first.per_site_kw.get(sp.site_id, 0.0) != 0.0
    for site_id, kw in first.per_site_kw.items():
        if kw != 0.0 and site_id not in second.per_site_kw:
            assert site_id in resent
