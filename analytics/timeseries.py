"""Time-series input of every audit rule, independent of where the data came from.

A :class:`Series` holds numpy arrays sampled at the same instants: ``t`` in seconds
(float64, strictly increasing, relative to ``start`` when an absolute start is known),
active power in MW (positive = injection/discharge to the grid, negative = absorbing),
and optional grid frequency, applied (test) frequency, baseline, maintained capacity,
requested activation (aFRR/mFRR orders) and SOC. The event-log audit and the SvK CSV
reader both build one; the rules never see where it came from.

Every bad input raises a subclass of :class:`SeriesError` that names what is wrong and,
where it applies, the sample index.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class SeriesError(ValueError):
    """A series cannot be used as given. ``index`` is the offending sample, if one."""

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class NonMonotonicTimeError(SeriesError):
    """Time stamps are not strictly increasing."""


class IrregularSamplingError(SeriesError):
    """Sample intervals differ from the nominal interval by more than the tolerance."""


class SamplingRateError(SeriesError):
    """Sampled more coarsely than a requirement needs (``requirement`` names it)."""

    def __init__(self, requirement: SamplingRequirement, actual_interval_s: float) -> None:
        super().__init__(
            f"sampling interval {actual_interval_s * 1000:.0f} ms is too coarse for "
            f"{requirement.name}: needs <= {requirement.max_interval_s * 1000:.0f} ms "
            f"(>= {1 / requirement.max_interval_s:g} Hz)"
        )
        self.requirement = requirement
        self.actual_interval_s = actual_interval_s


class MissingSignalError(SeriesError):
    """A rule needs a signal the series does not carry."""

    def __init__(self, signal: str, needed_by: str) -> None:
        super().__init__(f"{needed_by} needs signal {signal!r}, which the series lacks")
        self.signal = signal


class InsufficientDataError(SeriesError):
    """An evaluation window reaches outside the recorded data."""


@dataclass(frozen=True)
class SamplingRequirement:
    """Largest allowed sample interval for one requirement, with the requirement named."""

    name: str
    max_interval_s: float


# TR25 §4.3 / TP25 §1: test logging >= 10 Hz for FCR-D, >= 5 Hz for FCR-N; the TSO may allow
# >= 1 Hz for a fast, stable, low-noise response. Operational logging >= 1 Hz. FFR: 100 ms
# from 10 s before to 15 min after an activation (SvK Q&A).
FCRD_TEST_RATE = SamplingRequirement(
    "FCR-D test logging >= 10 Hz (TR25 §4.3; >= 1 Hz only if the TSO allowed it: allow_1hz)",
    0.1,
)
FCRN_TEST_RATE = SamplingRequirement(
    "FCR-N test logging >= 5 Hz (TR25 §4.3; >= 1 Hz only if the TSO allowed it: allow_1hz)",
    0.2,
)
TSO_ALLOWED_1HZ = SamplingRequirement("test logging >= 1 Hz as allowed by the TSO (TR25 §4.3)", 1.0)
FFR_EVENT_RATE = SamplingRequirement("FFR active power at 100 ms around activation (SvK)", 0.1)
OPERATION_RATE = SamplingRequirement("operational logging >= 1 Hz (TR25 §6.2)", 1.0)


RATE_SLACK = 1.05  # a sample interval may exceed a requirement by 5 % (clock jitter)


def _as_float_array(name: str, values: npt.ArrayLike, n: int | None) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise SeriesError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise SeriesError(f"{name} has {arr.shape[0]} samples, t has {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise SeriesError(f"{name} is not finite at sample {int(bad[0])}", index=int(bad[0]))
    return arr


@dataclass(frozen=True, eq=False)
class Series:
    """Samples of one resource (site or fleet) over one test or activation window."""

    t: FloatArray
    power_mw: FloatArray
    grid_freq_hz: FloatArray | None = None
    applied_freq_hz: FloatArray | None = None
    baseline_mw: FloatArray | None = None
    capacity_mw: FloatArray | None = None
    requested_mw: FloatArray | None = None
    soc_pct: FloatArray | None = None
    start: np.datetime64 | None = None
    source: str = field(default="")
    extra: Mapping[str, FloatArray] = field(default_factory=dict)
    """Other signals by SvK header name (e.g. ``NEM_Fcrn``, ``ResSize_FcrdUp``)."""

    def __post_init__(self) -> None:
        t = _as_float_array("t", self.t, None)
        if t.shape[0] < 2:
            raise SeriesError(f"a series needs at least 2 samples, got {t.shape[0]}")
        steps = np.diff(t)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise NonMonotonicTimeError(
                f"time is not strictly increasing at sample {i} "
                f"(t={t[i]:.3f} s after {t[i - 1]:.3f} s)",
                index=i,
            )
        object.__setattr__(self, "t", t)
        n = t.shape[0]
        for f in fields(self):
            if f.name in ("t", "start", "source", "extra"):
                continue
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _as_float_array(f.name, value, n))
        extra = {k: _as_float_array(k, v, n) for k, v in self.extra.items()}
        object.__setattr__(self, "extra", MappingProxyType(extra))

    @classmethod
    def from_datetimes(cls, times: npt.NDArray[np.datetime64], **signals: object) -> Series:
        """Build from absolute ``datetime64`` stamps; ``t`` becomes seconds since the first."""
        stamps = np.asarray(times).astype("datetime64[us]")
        start = stamps[0]
        t = (stamps - start).astype(np.int64).astype(np.float64) / 1e6
        return cls(t=t, start=start, **signals)  # type: ignore[arg-type]  # signals typed by Series

    # ------------------------------------------------------------------ signals
    @property
    def n(self) -> int:
        return int(self.t.shape[0])

    def frequency(self, needed_by: str) -> FloatArray:
        """The frequency that drives the response: applied (test) frequency, else grid."""
        if self.applied_freq_hz is not None:
            return self.applied_freq_hz
        if self.grid_freq_hz is not None:
            return self.grid_freq_hz
        raise MissingSignalError("ApplFreqSig or GridFreq", needed_by)

    def response_mw(self) -> FloatArray:
        """Delivered response: power minus baseline (TR25 §3.8), or power without baseline."""
        if self.baseline_mw is None:
            return self.power_mw
        return self.power_mw - self.baseline_mw

    def require_signal(self, name: str, needed_by: str) -> FloatArray:
        """A named field (``soc_pct``) or an extra signal by header (``NEM_Fcrn``)."""
        if name in self.extra:
            return self.extra[name]
        value = getattr(self, name, None)
        if value is None:
            raise MissingSignalError(name, needed_by)
        if not isinstance(value, np.ndarray):
            raise MissingSignalError(name, needed_by)
        return value

    # ------------------------------------------------------------------ sampling
    def interval_s(self) -> float:
        """Nominal sample interval: the median of the intervals."""
        return float(np.median(np.diff(self.t)))

    def check_regular(self, rel_tol: float = 0.05, abs_tol_s: float = 0.0015) -> float:
        """Return the nominal interval; raise if any interval deviates beyond the tolerance.

        Tolerance = ``max(rel_tol * interval, abs_tol_s)`` (1.5 ms covers millisecond
        time stamps of a 100 ms log).
        """
        dt = self.interval_s()
        steps = np.diff(self.t)
        tol = max(rel_tol * dt, abs_tol_s)
        bad = np.flatnonzero(np.abs(steps - dt) > tol)
        if bad.size:
            i = int(bad[0]) + 1
            raise IrregularSamplingError(
                f"irregular sampling at sample {i}: interval {steps[i - 1] * 1000:.1f} ms, "
                f"nominal {dt * 1000:.1f} ms (tolerance {tol * 1000:.1f} ms)",
                index=i,
            )
        return dt

    def require_rate(
        self, requirement: SamplingRequirement, t0: float | None = None, t1: float | None = None
    ) -> None:
        """Raise :class:`SamplingRateError` when sampled more coarsely than ``requirement``.

        The largest interval inside ``[t0, t1]`` (the whole series by default) is compared,
        with ``RATE_SLACK`` (5 %) for time-stamp rounding and clock jitter.
        """
        lo = self.t[0] if t0 is None else t0
        hi = self.t[-1] if t1 is None else t1
        inside = (self.t >= lo) & (self.t <= hi)
        idx = np.flatnonzero(inside)
        if idx.size < 2:
            raise InsufficientDataError(
                f"fewer than 2 samples in [{lo:.3f}, {hi:.3f}] s for {requirement.name}"
            )
        worst = float(np.max(np.diff(self.t[idx[0] : idx[-1] + 1])))
        if worst > requirement.max_interval_s * RATE_SLACK:
            raise SamplingRateError(requirement, worst)

    # ------------------------------------------------------------------ windows
    def _check_window(self, t0: float, t1: float, what: str) -> None:
        if t0 > t1:
            raise InsufficientDataError(f"{what}: window [{t0:.3f}, {t1:.3f}] s is empty")
        tol = 1e-9
        if t0 < self.t[0] - tol or t1 > self.t[-1] + tol:
            raise InsufficientDataError(
                f"{what}: window [{t0:.3f}, {t1:.3f}] s is outside the data "
                f"[{self.t[0]:.3f}, {self.t[-1]:.3f}] s"
            )

    def value_at(self, y: FloatArray, at: float, what: str = "value") -> float:
        """Linear interpolation of ``y`` at time ``at``."""
        self._check_window(at, at, what)
        return float(np.interp(at, self.t, y))

    def window(
        self, y: FloatArray, t0: float, t1: float, what: str
    ) -> tuple[FloatArray, FloatArray]:
        """Samples of ``y`` on ``[t0, t1]`` with interpolated end points added."""
        self._check_window(t0, t1, what)
        inner = (self.t > t0) & (self.t < t1)
        tt = np.concatenate(([t0], self.t[inner], [t1]))
        yy = np.concatenate(([np.interp(t0, self.t, y)], y[inner], [np.interp(t1, self.t, y)]))
        return tt, yy

    def integral(self, y: FloatArray, t0: float, t1: float, what: str = "integral") -> float:
        """Trapezoid integral of ``y`` over ``[t0, t1]`` (unit of y times seconds)."""
        tt, yy = self.window(y, t0, t1, what)
        return float(np.trapezoid(yy, tt))

    def cumulative_integral(
        self, y: FloatArray, t0: float, t1: float, what: str = "integral"
    ) -> tuple[FloatArray, FloatArray]:
        """Times and running trapezoid integral of ``y`` from ``t0`` (starts at 0)."""
        tt, yy = self.window(y, t0, t1, what)
        parts = 0.5 * (yy[1:] + yy[:-1]) * np.diff(tt)
        return tt, np.concatenate(([0.0], np.cumsum(parts)))

    def mean(self, y: FloatArray, t0: float, t1: float, what: str = "mean") -> float:
        """Time-weighted mean of ``y`` over ``[t0, t1]`` (robust to uneven sampling)."""
        if t1 <= t0:
            raise InsufficientDataError(f"{what}: averaging window [{t0:.3f}, {t1:.3f}] s is empty")
        return self.integral(y, t0, t1, what) / (t1 - t0)

    def resample(self, interval_s: float, *, max_gap_s: float | None = None) -> Series:
        """Linear interpolation of every signal onto a regular grid from the first sample.

        Explicit, never implicit: the SvK CSV writer needs one sampling rate, event-log
        telemetry has jitter. A gap in the data longer than ``max_gap_s`` (default twice the
        interval) raises :class:`IrregularSamplingError` instead of being bridged.
        """
        if interval_s <= 0:
            raise SeriesError(f"resample interval must be > 0, got {interval_s}")
        limit = 2 * interval_s if max_gap_s is None else max_gap_s
        steps = np.diff(self.t)
        gaps = np.flatnonzero(steps > limit)
        if gaps.size:
            i = int(gaps[0]) + 1
            raise IrregularSamplingError(
                f"gap of {steps[i - 1]:.3f} s before sample {i} exceeds {limit:.3f} s", index=i
            )
        count = int(np.floor((self.t[-1] - self.t[0]) / interval_s + 1e-9)) + 1
        grid = self.t[0] + np.arange(count) * interval_s
        moved: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("t", "start", "source") or value is None:
                continue
            if f.name == "extra":
                moved["extra"] = {k: np.interp(grid, self.t, v) for k, v in value.items()}
            else:
                moved[f.name] = np.interp(grid, self.t, value)
        return Series(t=grid, start=self.start, source=self.source, **moved)  # type: ignore[arg-type]  # keys are Series fields

    def first_reach(self, y: FloatArray, level: float, t0: float, t1: float | None = None) -> float:
        """First time at or after ``t0`` where ``y >= level`` (interpolated); NaN if never."""
        hi = self.t[-1] if t1 is None else min(t1, float(self.t[-1]))
        tt, yy = self.window(y, t0, hi, "first_reach")
        above = np.flatnonzero(yy >= level)
        if above.size == 0:
            return float("nan")
        i = int(above[0])
        if i == 0:
            return float(tt[0])
        y0, y1 = yy[i - 1], yy[i]
        return float(tt[i - 1] + (level - y0) / (y1 - y0) * (tt[i] - tt[i - 1]))
