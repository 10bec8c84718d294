"""Homes that keep their own baseline and hold several reserves at once, audited on delivered
power: each product judged on its own response, no offender for a home covering its load,
a mirrored home still caught, the SvK CSV export carrying CalcBaseline and the others'
Activated_* columns (real archives from :mod:`analytics.testing.stacked`, no Kafka)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analytics.audit.export import export_activation
from analytics.audit.extract import PRE_S
from analytics.audit.run import ActivationResult, AuditOptions, AuditResult, audit_csv, audit_log
from analytics.delivered import activated_column, delivered_mw
from analytics.rules import judge_each
from analytics.svkcsv import read_csv
from analytics.testing.stacked import Logged, Order, StackedScenario, stacked_log
from analytics.verdicts import TestType
from contract.enums import Product

SITES = 12
ARMED_KW = {Product.FCR_N: 2.0, Product.FCR_D_UP: 4.0, Product.FCR_D_DOWN: 4.0}
EVENT = (60.0, 240.0)  # 49.7 Hz from 60 s to 210 s, judged until 240 s


def _frequency_event(seconds: int = 300) -> np.ndarray:
    t = np.arange(seconds, dtype=np.float64)
    return np.where((t >= 60) & (t < 210), 49.7, 50.0)


def _events() -> tuple[Logged, ...]:
    return tuple(
        Logged(f"freq-{p.value}", p, "FREQUENCY_EVENT", *EVENT, SITES * ARMED_KW[p] / 1000)
        for p in (Product.FCR_N, Product.FCR_D_UP)
    )


def _log(root: Path, **kwargs: object) -> tuple[StackedScenario, AuditResult]:
    scenario = stacked_log(
        root,
        frequency_hz=_frequency_event(),
        armed_kw=ARMED_KW,
        activations=_events(),
        sites=SITES,
        **kwargs,  # type: ignore[arg-type]  # stacked_log's keywords
    )
    return scenario, audit_log(root, AuditOptions())


@pytest.fixture(scope="module")
def stacked(tmp_path_factory: pytest.TempPathFactory) -> tuple[StackedScenario, AuditResult]:
    return _log(tmp_path_factory.mktemp("stacked"))


def _result(result: AuditResult, product: Product) -> ActivationResult:
    (found,) = [r for r in result.results if r.activation.product is product]
    return found


def _steady(r: ActivationResult, values: np.ndarray) -> float:
    """Mean over 90-200 s of the log (the event's settled part)."""
    assert r.series is not None
    log_s = r.series.t + EVENT[0] - PRE_S  # the series starts PRE_S before the event
    keep = (log_s >= 90.0) & (log_s <= 200.0)
    return float(np.mean(values[keep]))


def test_fcr_n_and_fcr_d_up_at_49_7_hz_are_judged_each_on_its_own_response(
    stacked: tuple[StackedScenario, AuditResult],
) -> None:
    _, result = stacked
    assert sorted(r.activation.product.value for r in result.results) == ["FCR_D_UP", "FCR_N"]
    for product, other in ((Product.FCR_N, Product.FCR_D_UP), (Product.FCR_D_UP, Product.FCR_N)):
        r = _result(result, product)
        assert r.error is None
        assert not r.rule_errors
        assert r.verdicts
        assert all(v.passed for v in r.verdicts), r.verdicts
        assert r.series is not None
        assert activated_column(other) in r.series.extra  # the other one is taken off
        assert activated_column(product) not in r.series.extra
        # 49.7 Hz: FCR-N full (2 kW a home), FCR-D up half of 4 kW: 0.024 MW each
        assert _steady(r, delivered_mw(r.series, product)) == pytest.approx(0.024, rel=0.03)
        # the total beyond the baseline is both responses together
        assert _steady(r, r.series.response_mw()) == pytest.approx(0.048, rel=0.03)
        assert any("also armed at the sites" in note for note in r.notes)


def test_homes_that_keep_self_consuming_while_armed_are_no_offenders(
    stacked: tuple[StackedScenario, AuditResult],
) -> None:
    scenario, result = stacked
    spread = max(float(np.ptp(b)) for b in scenario.baseline_kw.values())
    assert spread > 2.0  # the baselines do move with the household load (a kettle: 3 kW)
    for r in result.results:
        assert r.offenders == [], [o.as_dict() for o in r.offenders]
        assert r.series is not None
        assert r.series.baseline_mw is not None
        assert np.ptp(r.series.baseline_mw) > 0.001  # the fleet baseline moves too
        assert any("12 of 12 sites reported one" in note for note in r.notes)


def test_a_site_with_the_wrong_polarity_on_delivered_power_is_still_caught(
    tmp_path: Path,
) -> None:
    _, result = _log(tmp_path, mirrored="site-00005")
    for r in result.results:
        assert [(o.site_id, o.kind) for o in r.offenders] == [("site-00005", "WRONG_POLARITY")]
        assert all(v.passed for v in r.verdicts)  # 11 of 12 homes: the fleet still delivers


def test_an_order_is_judged_without_the_fcr_n_response_beside_it(tmp_path: Path) -> None:
    """An mFRR up order of 3 kW a home; 100 s later the frequency rises to 50.15 Hz and
    FCR-N (2 kW a home) charges at full: taken off, the order is delivered in full."""
    seconds = 1290
    t = np.arange(seconds, dtype=np.float64)
    order = Order(Product.MFRR, 60.0, 1260.0, 3.0)
    stacked_log(
        tmp_path,
        frequency_hz=np.where(t >= 160, 50.15, 50.0),
        armed_kw={Product.FCR_N: 2.0},
        orders=[order],
        activations=[Logged("mfrr-1", Product.MFRR, "ORDER", 60.0, 1260.0, SITES * 3.0 / 1000)],
        sites=SITES,
    )
    result = audit_log(tmp_path, AuditOptions())
    (r,) = result.results
    assert r.error is None
    assert not r.rule_errors
    assert r.verdicts
    assert all(v.passed for v in r.verdicts), r.verdicts
    assert r.offenders == []
    assert r.series is not None
    alone, _ = judge_each(replace(r.series, extra={}), Product.MFRR, TestType.ACTIVATION)
    assert not all(v.passed for v in alone)  # with FCR-N's response left in, it falls short


def test_the_svk_export_carries_calcbaseline_and_the_others_activated_columns(
    stacked: tuple[StackedScenario, AuditResult], tmp_path: Path
) -> None:
    scenario, result = stacked
    path = export_activation(
        scenario.root, "freq-FCR_D_UP", tmp_path, resource="fleet1", area="SE3"
    )
    header = path.read_text(encoding="ascii").splitlines()[0].split(",")
    assert "CalcBaseline" in header
    assert {"Activated_Fcrn", "Activated_FcrdDo"} <= set(header)
    record = read_csv(path, test_type=TestType.OPERATION)
    logged = _result(result, Product.FCR_D_UP)
    assert logged.series is not None
    np.testing.assert_allclose(
        delivered_mw(record.series, Product.FCR_D_UP),
        delivered_mw(logged.series, Product.FCR_D_UP),
        atol=1e-9,
    )
    again = audit_csv([path], AuditOptions(), test_type=TestType.OPERATION)
    assert [(v.rule_id, v.passed) for v in again.results[0].verdicts] == [
        (v.rule_id, v.passed) for v in logged.verdicts
    ]
