"""The series an activation is judged on, from its fleet frame (:mod:`analytics.audit.extract`).

Per activation the frame is sliced, resampled onto a regular grid (:meth:`Series.resample`,
explicit) and put in *canonical* form (:func:`canonical`): times on whole milliseconds and
values rounded exactly as the SvK CSV writer rounds them. The event-log audit judges that
canonical series and ``export-svk`` writes it, so an export read back with ``--svk-csv`` is
the same series, sample for sample, and gives the same verdicts.

Baseline (CalcBaseline; delivered = power - baseline, facts §4.3): the sites' own
``baseline_kw`` summed per bucket with the same hold as power (a site that reports none
counts 0); where no site reported one (telemetry written before baselines) the
activation's ``baseline_mw``, else 0 (:func:`baseline_note` says which, for the report).
The other products armed at the sites (``armed_*_kw``, ``order_*_kw``, summed the same way)
give their expected responses at the fleet's mean frequency as ``Activated_<Service>``
columns, which the rules take off the judged product's response
(:mod:`analytics.delivered`). Capacity (Cap_ column, ΔP_ss,theo by default):
``|requested_mw|`` of the activation, else the ``ReserveAssignment`` of the product in
force at the start.
"""

from __future__ import annotations

import numpy as np

from analytics.audit.extract import PRE_S, Activation, AuditInputError, FleetFrame, to_us
from analytics.delivered import activated_column, expected
from analytics.timeseries import FloatArray, Series, SeriesError
from analytics.verdicts import TestType
from contract.enums import Product

DECIMALS = 6  # what the SvK CSV writer writes (analytics.svkcsv.write_csv default)


def canonical_values(values: FloatArray, decimals: int = DECIMALS) -> FloatArray:
    """Values exactly as they read back from the SvK CSV writer's text."""
    rounded = np.round(values, decimals) + 0.0
    return np.array([float(f"{v:.{decimals}f}") for v in rounded.tolist()], dtype=np.float64)


def canonical(series: Series, decimals: int = DECIMALS) -> Series:
    """``series`` on whole milliseconds with CSV-rounded values (see module doc)."""
    if series.start is None:
        raise SeriesError("a canonical series needs an absolute start")
    start = series.start.astype("datetime64[ms]").astype("datetime64[us]")
    shift_us = int((series.start - start).astype(np.int64))
    # whole microseconds first, then half up to milliseconds in integers: evenly spaced
    # samples stay evenly spaced (float rounding of t + shift could make one 1,001 ms step)
    us = np.round(series.t * 1e6).astype(np.int64) + shift_us
    ms = (us + 500) // 1000
    signals: dict[str, object] = {}
    for name in (
        "power_mw",
        "grid_freq_hz",
        "applied_freq_hz",
        "baseline_mw",
        "capacity_mw",
        "requested_mw",
        "soc_pct",
    ):
        value = getattr(series, name)
        if value is not None:
            signals[name] = canonical_values(value, decimals)
    extra = {k: canonical_values(v, decimals) for k, v in series.extra.items()}
    return Series(
        t=(ms - ms[0]).astype(np.float64) / 1000.0,
        start=start + np.timedelta64(int(ms[0]), "ms"),
        source=series.source,
        extra=extra,
        **signals,  # type: ignore[arg-type]  # keys are Series fields
    )


def fleet_series(
    frame: FleetFrame,
    activation: Activation,
    *,
    interval_s: float,
    capacity_mw: float | None,
    pre_s: float = PRE_S,
) -> Series:
    """The canonical fleet series of one activation (see module doc)."""
    t0 = to_us(activation.start) - int(pre_s * 1e6)
    t1 = to_us(activation.end)
    inside = (frame.t_us >= t0) & (frame.t_us <= t1)
    if np.count_nonzero(inside) < 2:
        raise AuditInputError(
            f"activation {activation.activation_id}: no fleet telemetry between "
            f"{np.datetime64(t0, 'us')} and {activation.end}"
        )
    tu = frame.t_us[inside]
    t = (tu - tu[0]).astype(np.float64) / 1e6
    power = frame.power_mw[inside]
    freq = frame.freq_hz[inside]
    start_s = (to_us(activation.start) - int(tu[0])) / 1e6
    if frame.baseline_mw is not None:
        baseline = frame.baseline_mw[inside]
    else:
        stated = activation.baseline_mw
        baseline = np.full(t.shape, 0.0 if stated is None else stated)
    signals: dict[str, FloatArray] = {
        "power_mw": power,
        "grid_freq_hz": freq,
        "baseline_mw": baseline,
    }
    if capacity_mw is not None:
        signals["capacity_mw"] = np.full(t.shape, abs(capacity_mw))
    if activation.test_type is TestType.ACTIVATION and activation.product in (
        Product.AFRR,
        Product.MFRR,
    ):
        # in force in every bucket it overlaps: a bucket holds the sites' last samples before
        # its end, so the one the order starts in already holds responses to it (it is not
        # part of the pre-order level; full activation is counted from its start: <= 1
        # bucket stricter)
        bucket_s = frame.bucket_us / 1e6
        on = (t + bucket_s > start_s) & (t < (t1 - int(tu[0])) / 1e6)
        signals["requested_mw"] = np.where(on, activation.requested_mw, 0.0)
    others = {
        activated_column(p): expected(p, armed[inside], freq)
        for p, armed in frame.armed_mw.items()
        if p is not activation.product
    }
    raw = Series(
        t=t,
        start=np.datetime64(int(tu[0]), "us"),
        source=f"log:{activation.activation_id}",
        extra=others,
        **signals,
    )
    return canonical(raw.resample(interval_s))


def baseline_note(frame: FleetFrame, activation: Activation) -> str:
    """Where the baseline of ``activation``'s series comes from, in one line (the report)."""
    if frame.baseline_mw is not None:
        return (
            f"baseline: the sites' own (SiteTelemetry.baseline_kw), {frame.baseline_sites} of "
            f"{frame.sites} sites reported one (a site without counts 0)"
        )
    if activation.baseline_mw is not None:
        return (
            f"baseline: {activation.baseline_mw:+.4f} MW as the activation states it "
            "(no site reported one)"
        )
    return (
        "baseline: 0 MW assumed (no site reported one: telemetry written before baselines, "
        "read as 0 as SiteTelemetry.avsc says; the activation states none)"
    )
