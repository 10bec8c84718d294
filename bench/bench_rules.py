"""Rule layer and SvK CSV speed, each against a plain baseline measured in the same run.

* ``svkcsv_read``: rows/s of :func:`analytics.svkcsv.read_csv` (every check: name, header,
  time stamps, sampling, values) on a 1 h FCR-D operation file at 10 Hz, against the stdlib
  ``csv`` module parsing the same file into floats with no checks.
* ``judge_fcrd_ramp``: FCR-D ramp tests judged per second (ramp detection + 8 rules on
  10,500 samples), against a single numpy pass over the same arrays (interp, trapezoid,
  mean): the floor for any rule that reads every sample.
"""

from __future__ import annotations

import csv
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from analytics.rules import judge
from analytics.svkcsv import read_csv, write_csv
from analytics.testing.sequences import simulate_fcr_test
from analytics.timeseries import Series
from analytics.verdicts import TestType
from bench import BenchResult
from contract.enums import Product


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _plain_csv(path: Path) -> int:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        rows = [[float(x) for x in row[1:]] for row in reader]
    return len(rows)


def run() -> list[BenchResult]:
    n = 36_000
    t = np.arange(n, dtype=np.float64) * 0.1
    rng = np.random.default_rng(1)
    f = 50.0 + 0.05 * np.sin(t / 30.0) + rng.normal(0, 0.002, n)
    series = Series(
        t=t,
        power_mw=-np.clip((f - 50.1) / 0.4, 0, 1) + rng.normal(0, 0.001, n),
        grid_freq_hz=f,
        baseline_mw=np.zeros(n),
        capacity_mw=np.ones(n),
        start=np.datetime64("2025-06-01T00:00:00"),
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = write_csv(
            series,
            tmp,
            resource="Bench",
            product=Product.FCR_D_DOWN,
            test_type=TestType.OPERATION,
            area="SE3",
        )
        ours = _best(lambda: read_csv(path))
        plain = _best(lambda: _plain_csv(path))
    ramp = simulate_fcr_test(Product.FCR_D_UP, "ramp", dp_ss_mw=1.0, tau_s=1.0, dead_time_s=0.2)
    ramp = replace(ramp, start=None)
    power = ramp.power_mw

    def floor() -> float:
        return float(np.trapezoid(power, ramp.t) + np.interp(697.5, ramp.t, power) + power.mean())

    judge_s = _best(lambda: judge(ramp, Product.FCR_D_UP, TestType.RAMP), repeat=5)
    floor_s = _best(floor, repeat=5)
    return [
        BenchResult(
            name="svkcsv_read",
            value=n / ours,
            unit="rows/s",
            baseline=n / plain,
            goal=">= 0.3x the stdlib csv parse (which checks nothing)",
        ),
        BenchResult(
            name="judge_fcrd_ramp",
            value=1.0 / judge_s,
            unit="tests/s",
            baseline=1.0 / floor_s,
            goal=">= 100 tests/s (a single numpy pass over the arrays is the baseline)",
            note="ramp detection + 8 rules on 10,500 samples at 10 Hz",
        ),
    ]
