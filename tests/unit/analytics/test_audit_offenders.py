"""Per-site analysis at once (one matrix) gives what the rule layer gives site by site."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import decode_row
from analytics.archive.writer import ArchiveWriter
from analytics.audit.extract import Activation, scope_views
from analytics.audit.offenders import (
    SiteTrace,
    polarity_many,
    site_matrix,
    site_series,
)
from analytics.audit.window import site_samples
from analytics.delivered import delivered_mw
from analytics.rules import polarity_offenders
from analytics.rules.base import RuleError
from analytics.testing.synthetic import SyntheticLog, synthetic_records
from analytics.timeseries import Series
from analytics.verdicts import TestType
from contract.enums import Product

START = np.datetime64("2026-09-21T15:00:00", "us")
T = np.arange(0.0, 121.0, 1.0)
EVENT_S = 30.0


def _fleet(product: Product, sites: int) -> tuple[Series, Activation]:
    share_mw = 0.005
    if product is Product.MFRR:
        requested = np.where(T >= EVENT_S, sites * share_mw, 0.0)
        fleet = Series(
            t=T,
            power_mw=np.zeros_like(T),
            grid_freq_hz=np.full_like(T, 50.0),
            baseline_mw=np.zeros_like(T),
            capacity_mw=np.full_like(T, sites * share_mw),
            requested_mw=requested,
            start=START,
        )
        test_type = TestType.ACTIVATION
    else:
        freq = np.where(T >= EVENT_S, 49.7, 50.0)
        fleet = Series(
            t=T,
            power_mw=np.zeros_like(T),
            grid_freq_hz=freq,
            baseline_mw=np.zeros_like(T),
            capacity_mw=np.full_like(T, sites * share_mw),
            start=START,
        )
        test_type = TestType.OPERATION
    end = START + np.timedelta64(120, "s")
    act = Activation("a-1", product, test_type, "ORDER", START + np.timedelta64(30, "s"), end)
    return fleet, act


FCRN_MW = 0.003  # FCR-N armed at every site besides the judged product


def _traces(gains: list[float], seed: int, product: Product) -> dict[str, SiteTrace]:
    """Sites whose baseline follows their household load while FCR-N is armed beside
    ``product``: power = baseline + FCR-N's expected response + gain x the judged step."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, gain in enumerate(gains):
        t = np.sort(rng.uniform(0.0, 120.0, 150))
        baseline = 0.001 + 0.0008 * np.sin(t / 9.0 + k)  # self-consumption moves with load
        step = np.where(t >= EVENT_S + 2.0, 0.0025, 0.0)
        fcrn = None
        if product is not Product.FCR_N:  # FCR-N armed beside it, at its expected response
            f = np.where(t >= EVENT_S, 49.7 if product is not Product.MFRR else 50.0, 50.0)
            fcrn = FCRN_MW * np.clip((50.0 - f) / 0.1, -1.0, 1.0)
        power = baseline + (0.0 if fcrn is None else fcrn) + gain * step
        power += rng.normal(0.0, 0.0002, t.size)
        out[f"site-{k:03d}"] = SiteTrace(
            f"site-{k:03d}", ["huawei", "saj"][k % 2], t, power, baseline, fcrn
        )
    return out


@settings(max_examples=25, deadline=None)
@given(
    gains=st.lists(st.floats(-1.5, 1.5), min_size=1, max_size=12),
    product=st.sampled_from([Product.FCR_D_UP, Product.FCR_N, Product.MFRR]),
    seed=st.integers(0, 1000),
)
def test_polarity_for_all_sites_at_once_equals_site_by_site(
    gains: list[float], product: Product, seed: int
) -> None:
    traces = _traces(gains, seed, product)
    fleet, act = _fleet(product, len(traces))
    share = 1.0 / len(traces)
    matrix = site_matrix(traces, fleet)
    first = site_series(traces[matrix.sites[0]], fleet, share)
    one_by_one = {s: site_series(tr, fleet, share) for s, tr in traces.items()}
    assert polarity_many(matrix, first, act, {}) == set(
        polarity_offenders(one_by_one, act.product, act.test_type)
    )
    for k, site in enumerate(matrix.sites):  # the matrix rows are the sites' delivered power
        np.testing.assert_allclose(
            matrix.response_mw[k], delivered_mw(one_by_one[site], product), atol=1e-12
        )


def test_mirrored_sites_are_found_on_delivered_power() -> None:
    traces = _traces([1.0, -1.0, 0.9, -0.5], seed=1, product=Product.FCR_D_UP)
    fleet, act = _fleet(Product.FCR_D_UP, len(traces))
    matrix = site_matrix(traces, fleet)
    first = site_series(traces[matrix.sites[0]], fleet, 0.25)
    assert polarity_many(matrix, first, act, {}) == {"site-001", "site-003"}
    # the FCR-N response beside it is the other product's, not FCR-D up's: taken off
    np.testing.assert_allclose(matrix.response_mw[0][fleet.t >= EVENT_S + 5.0], 0.0025, atol=0.0008)


def test_a_home_covering_its_load_while_armed_is_no_offender() -> None:
    """Power follows the baseline (load) and FCR-N's response, no FCR-D up response is
    asked at 50 Hz... and at 49.7 Hz each site delivers its share: nobody is wrong."""
    traces = _traces([1.0] * 6, seed=3, product=Product.FCR_D_UP)
    fleet, act = _fleet(Product.FCR_D_UP, len(traces))
    matrix = site_matrix(traces, fleet)
    first = site_series(traces[matrix.sites[0]], fleet, 1 / 6)
    assert polarity_many(matrix, first, act, {}) == set()
    # measured from 0 instead (no baseline, nothing taken off) the load swings and FCR-N's
    # response would read as FCR-D up's
    raw = np.asarray(matrix.power_mw)
    assert not np.allclose(raw, matrix.response_mw, atol=0.0005)


def test_no_activation_raises_as_the_rule_does() -> None:
    traces = _traces([1.0, 1.0], seed=2, product=Product.FCR_D_DOWN)
    fleet, act = _fleet(Product.FCR_D_DOWN, len(traces))  # 49.7 Hz: FCR-D down asks nothing
    matrix = site_matrix(traces, fleet)
    first = site_series(traces[matrix.sites[0]], fleet, 0.5)
    with pytest.raises(RuleError):
        polarity_many(matrix, first, act, {})


def test_window_samples_by_hash_and_by_join_agree(tmp_path: Path) -> None:
    log = SyntheticLog(sites=5, samples=40, partitions=2)
    decoder, errors = codec_decoder()
    writer = ArchiveWriter(tmp_path)
    writer.append(decode_row(r, decoder, errors) for r in synthetic_records(log))
    writer.flush()
    writer.close()
    con = duckdb.connect()
    scope_views(con, "", tmp_path)
    t0 = log.start_ms * 1000 + 5_000_000
    t1 = t0 + 20_000_000
    keys = con.execute(
        "SELECT hash(key) FROM audit_site_telemetry GROUP BY key ORDER BY key"
    ).fetchall()
    active = np.arange(len(keys))
    hashes = np.array([h for (h,) in keys], dtype=np.uint64)
    # every site is in the window: number them over the window ([t0, t1 + 1) µs)
    by_hash = site_samples(con, t0, t1 + 1, t0, active=active, hashes=hashes)
    by_join = site_samples(con, t0, t1 + 1, t0, active=active, hashes=None)  # "collisions"

    def rows(
        got: tuple[np.ndarray, np.ndarray, np.ndarray, object, object],
    ) -> list[tuple[int, int, float]]:
        return sorted(zip(*(a.tolist() for a in got[:3]), strict=True))

    assert rows(by_hash) == rows(by_join)
    assert len(rows(by_hash)) == 5 * 21
    assert sorted({i for i, _u, _p in rows(by_hash)}) == [0, 1, 2, 3, 4]
    site_ids = [
        s
        for (s,) in con.execute(
            "SELECT DISTINCT site_id FROM audit_site_telemetry ORDER BY 1"
        ).fetchall()
    ]
    for i, _u, kw in rows(by_hash)[:3]:
        assert kw in [
            p
            for (p,) in con.execute(
                "SELECT battery_power_kw FROM audit_site_telemetry WHERE site_id = ?", [site_ids[i]]
            ).fetchall()
        ]
