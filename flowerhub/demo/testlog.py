"""The demo's test rig log: the applied test frequency and the inverters' power at 10 Hz.

An SvK prequalification test logs the applied frequency signal (ApplFreqSig) and the unit's
active power (InsAcPow) at >= 10 Hz at the unit (TR25 §6.2). The demo injects the trace
itself and owns the simulated inverters, so it keeps that log too: at every trace step
(``STEP_S``) the driver records the frequency it applied and the simulators' summed battery
power (:class:`RigLog`). It is the physical response the event-log audit (1 Hz site
telemetry, the TSO's 1 Hz allowance) approximates, judged by the same rules at its own rate
(:func:`judge_rig`) and written as an SvK CSV (``flowerhub audit --svk-csv FILE`` re-judges
it). Like a rig on homes that keep covering their own load, it also logs their baseline
(CalcBaseline: what the batteries would do now in their own self-consumption mode, summed),
and the products armed beside the tested one (``others_kw``) give their expected responses
at the applied frequency (``Activated_*`` columns): the rules judge the delivered response
of the tested product, as the event-log audit does. The scenario's expectations are compared
with the event-log audit only; this log shows how much of a margin is lost in the fleet
itself and how much in the 1 Hz measurement.

Resampling onto the regular grid (:meth:`RigLog.series`): the applied frequency is a held
signal (the driver sets it at each step), so it is sample-and-hold; power is linear between
samples. The simulators' power is their state at their last battery step (every
``flowerhub.demo.sims.TICK_S`` and at each Modbus write), so the log may lag the model by up
to one step: on the safe side for the response requirements. Pure: no Kafka, no simulator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analytics.audit.run import verdict_row
from analytics.delivered import activated_column, expected
from analytics.rules import judge
from analytics.rules.base import RuleError
from analytics.svkcsv import write_csv
from analytics.timeseries import Series, SeriesError
from analytics.verdicts import TestType, Verdict
from contract.enums import Product

RIG_RATE_HZ = 10.0


class RigLogError(ValueError):
    """A rig log that cannot become a series (too few samples, time going back, bad values)."""


@dataclass
class RigLog:
    """Samples of one frequency phase: seconds since the phase started, Hz applied, kW."""

    phase: str
    product: Product
    test_type: TestType
    capacity_mw: float
    start_us: int  # wall-clock time of t = 0 (µs since the epoch, UTC)
    period_s: int | None = None  # sine tests: the period (SvK file name, Req 10)
    others_kw: dict[Product, float] = field(default_factory=dict)  # armed beside it, fleet kW
    t_s: list[float] = field(default_factory=list)
    applied_hz: list[float] = field(default_factory=list)
    power_kw: list[float] = field(default_factory=list)
    baseline_kw: list[float] = field(default_factory=list)

    def add(self, t_s: float, applied_hz: float, power_kw: float, baseline_kw: float = 0.0) -> None:
        """One sample; time must not go back, values must be finite."""
        if not all(np.isfinite((t_s, applied_hz, power_kw, baseline_kw))):
            raise RigLogError(
                f"{self.phase}: non-finite sample t={t_s} f={applied_hz} P={power_kw} "
                f"baseline={baseline_kw}"
            )
        if self.t_s and t_s < self.t_s[-1]:
            raise RigLogError(f"{self.phase}: time went back from {self.t_s[-1]} s to {t_s} s")
        self.t_s.append(t_s)
        self.applied_hz.append(applied_hz)
        self.power_kw.append(power_kw)
        self.baseline_kw.append(baseline_kw)

    def series(self, rate_hz: float = RIG_RATE_HZ) -> Series:
        """The log on a regular ``rate_hz`` grid from its first sample (see module doc)."""
        if rate_hz <= 0 or not np.isfinite(rate_hz):
            raise RigLogError(f"rate_hz must be > 0, got {rate_hz}")
        if len(self.t_s) < 2 or self.t_s[-1] <= self.t_s[0]:
            raise RigLogError(f"{self.phase}: needs two samples at different times")
        t = np.asarray(self.t_s, dtype=np.float64)
        step = 1.0 / rate_hz
        grid = np.arange(0, round((t[-1] - t[0]) * rate_hz) + 1, dtype=np.float64) * step
        grid = grid[grid <= t[-1] - t[0] + 1e-9]
        if grid.size < 2:
            raise RigLogError(
                f"{self.phase}: {t[-1] - t[0]:.3f} s of samples is shorter than one "
                f"{step:.3f} s interval"
            )
        at = grid + t[0]
        held = np.searchsorted(t, at + 1e-9, side="right") - 1
        f = np.asarray(self.applied_hz, dtype=np.float64)[np.clip(held, 0, None)]
        p_mw = np.interp(at, t, np.asarray(self.power_kw, dtype=np.float64)) / 1000.0
        b_mw = np.interp(at, t, np.asarray(self.baseline_kw, dtype=np.float64)) / 1000.0
        start = np.datetime64(self.start_us + round(t[0] * 1e6), "us")
        others = {
            activated_column(p): expected(p, np.full(grid.shape, kw / 1000.0), f)
            for p, kw in self.others_kw.items()
            if p is not self.product and kw != 0.0
        }
        return Series(
            t=grid,
            power_mw=p_mw,
            applied_freq_hz=f,
            baseline_mw=b_mw,
            capacity_mw=np.full(grid.shape, abs(self.capacity_mw)),
            start=start,
            source=f"demo-rig:{self.phase}",
            extra=others,
        )


@dataclass(frozen=True)
class RigOutcome:
    """Verdicts on one rig log, or why it could not be judged."""

    phase: str
    verdicts: list[Verdict]
    error: str | None = None

    def rows(self) -> list[dict[str, object]]:
        """Rows shaped like the audit's verdict rows (``flowerhub.demo.results``)."""
        return [verdict_row(f"rig:{self.phase}", v) for v in self.verdicts]


def write_rig_csv(log: RigLog, directory: Path) -> Path:
    """The rig log as an SvK CSV file in ``directory`` (``flowerhub audit --svk-csv`` reads it)."""
    return write_csv(
        log.series(),
        directory,
        resource="FlowerHubDemo",
        product=log.product,
        test_type=log.test_type,
        area="SE3",
        period_s=log.period_s,
    )


def judge_rig(log: RigLog) -> RigOutcome:
    """Judge the rig log with the rule layer at 10 Hz (no 1 Hz allowance needed)."""
    try:
        series = log.series()
        params: dict[str, Any] = {} if log.period_s is None else {"period_s": log.period_s}
        verdicts = judge(series, log.product, log.test_type, **params)
    except (RigLogError, SeriesError, RuleError) as exc:
        return RigOutcome(log.phase, [], f"{type(exc).__name__}: {exc}")
    return RigOutcome(log.phase, verdicts)
