"""Series: validation errors and the window helpers every rule uses."""

from __future__ import annotations

import numpy as np
import pytest

from analytics.timeseries import (
    FCRD_TEST_RATE,
    FFR_EVENT_RATE,
    InsufficientDataError,
    IrregularSamplingError,
    MissingSignalError,
    NonMonotonicTimeError,
    SamplingRateError,
    SamplingRequirement,
    Series,
    SeriesError,
)


def ramp(n: int = 11, dt: float = 0.1) -> Series:
    t = np.asarray(np.arange(n) * dt, dtype=np.float64)
    return Series(
        t=t, power_mw=np.asarray(2.0 * t, dtype=np.float64), grid_freq_hz=np.full(n, 50.0)
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "match", "index"),
    [
        ({"t": [0.0, 1.0, 1.0], "power_mw": [0, 0, 0]}, NonMonotonicTimeError, "sample 2", 2),
        ({"t": [0.0, 2.0, 1.0], "power_mw": [0, 0, 0]}, NonMonotonicTimeError, "sample 2", 2),
        ({"t": [0.0, 1.0], "power_mw": [0.0, np.nan]}, SeriesError, "power_mw is not finite", 1),
        ({"t": [0.0, 1.0], "power_mw": [0.0, 1.0, 2.0]}, SeriesError, "3 samples, t has 2", None),
        ({"t": [0.0], "power_mw": [0.0]}, SeriesError, "at least 2", None),
        ({"t": [[0.0, 1.0]], "power_mw": [0.0, 1.0]}, SeriesError, "one-dimensional", None),
    ],
)
def test_bad_series_raise_typed_errors(
    kwargs: dict[str, object], error: type[SeriesError], match: str, index: int | None
) -> None:
    with pytest.raises(error, match=match) as caught:
        Series(**kwargs)  # type: ignore[arg-type]  # deliberately malformed input
    assert caught.value.index == index


def test_from_datetimes() -> None:
    stamps = np.array(
        ["2025-06-01T10:00:00.000", "2025-06-01T10:00:00.100"], dtype="datetime64[ms]"
    )
    s = Series.from_datetimes(stamps, power_mw=np.array([1.0, 2.0]))
    np.testing.assert_allclose(s.t, [0.0, 0.1])
    assert s.start == np.datetime64("2025-06-01T10:00:00.000")


def test_regular_and_irregular_sampling() -> None:
    assert ramp().check_regular() == pytest.approx(0.1)
    t = np.array([0.0, 0.1, 0.2, 0.35, 0.45])
    with pytest.raises(IrregularSamplingError, match="sample 3") as caught:
        Series(t=t, power_mw=np.zeros(5)).check_regular()
    assert caught.value.index == 3


def test_sampling_rate_requirement_is_named() -> None:
    coarse = ramp(dt=0.2)
    with pytest.raises(SamplingRateError, match=r"FCR-D test logging >= 10 Hz") as caught:
        coarse.require_rate(FCRD_TEST_RATE)
    assert caught.value.actual_interval_s == pytest.approx(0.2)
    ramp(dt=0.1).require_rate(FFR_EVENT_RATE)
    # only the window counts
    t = np.concatenate((np.arange(0.0, 10.0, 1.0), 10.0 + np.arange(1, 50) * 0.1))
    s = Series(t=t, power_mw=np.zeros_like(t))
    s.require_rate(FFR_EVENT_RATE, 10.0, 14.0)
    with pytest.raises(SamplingRateError):
        s.require_rate(FFR_EVENT_RATE, 8.0, 14.0)


def test_window_helpers_are_exact_for_linear_data() -> None:
    s = ramp()  # p = 2·t on [0, 1]
    assert s.value_at(s.power_mw, 0.55) == pytest.approx(1.1)
    assert s.integral(s.power_mw, 0.25, 0.75) == pytest.approx(0.75**2 - 0.25**2)
    assert s.mean(s.power_mw, 0.2, 0.6) == pytest.approx(0.8)
    assert s.first_reach(s.power_mw, 1.23, 0.0) == pytest.approx(0.615)
    assert np.isnan(s.first_reach(s.power_mw, 5.0, 0.0))
    t, cum = s.cumulative_integral(s.power_mw, 0.0, 0.5)
    assert cum[-1] == pytest.approx(0.25)
    assert t[0] == 0.0


@pytest.mark.parametrize(("t0", "t1"), [(-0.1, 0.5), (0.5, 1.2), (0.6, 0.5)])
def test_windows_outside_the_data_are_errors(t0: float, t1: float) -> None:
    s = ramp()
    with pytest.raises(InsufficientDataError):
        s.integral(s.power_mw, t0, t1)


def test_signals() -> None:
    s = ramp()
    assert s.frequency("x") is s.grid_freq_hz
    bare = Series(t=s.t, power_mw=s.power_mw)
    with pytest.raises(MissingSignalError, match="REQ needs signal 'ApplFreqSig or GridFreq'"):
        bare.frequency("REQ")
    with pytest.raises(MissingSignalError, match="soc_pct"):
        bare.require_signal("soc_pct", "LER")
    with_base = Series(t=s.t, power_mw=s.power_mw, baseline_mw=np.ones(11))
    np.testing.assert_allclose(with_base.response_mw(), s.power_mw - 1.0)


def test_resample_onto_a_regular_grid() -> None:
    t = np.array([0.0, 0.98, 2.03, 2.99, 4.0])
    s = Series(
        t=t,
        power_mw=2.0 * t,
        soc_pct=np.full(5, 50.0),
        extra={"NEM_Fcrn": np.zeros(5)},
        start=np.datetime64("2025-01-01T00:00:00"),
    )
    r = s.resample(1.0)
    np.testing.assert_allclose(r.t, [0.0, 1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(r.power_mw, 2.0 * r.t)
    assert r.check_regular() == pytest.approx(1.0)
    assert r.start == s.start
    assert set(r.extra) == {"NEM_Fcrn"}
    with pytest.raises(IrregularSamplingError, match=r"gap of 2\.000 s"):
        Series(t=np.array([0.0, 1.0, 3.0]), power_mw=np.zeros(3)).resample(1.0, max_gap_s=1.5)


def test_jitter_within_5_percent_meets_a_rate() -> None:
    t = np.cumsum(np.r_[0.0, np.full(20, 1.04)])
    Series(t=t, power_mw=np.zeros_like(t)).require_rate(SamplingRequirement("x", 1.0))
