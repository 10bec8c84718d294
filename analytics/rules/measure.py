"""When a response is "full": 100 % of the target, confirmed by a short mean (no tolerance).

The sources say *full* activation (FFR: full within 1.3/1.0/0.7 s; mFRR: full power at FAT;
the legacy FCR pages: 100 %), and none gives a tolerance below 100 %. A single sample that
touches 100 % must not decide either (noise would), so every "reached X %" time in the
audit is the first instant at which the response is at or above X % of its target *and*
its mean over the following ``hold_s`` seconds is too (:func:`reach_held`). On a clean
trace that settles at the target this is exactly the crossing; a spike, or a response that
only grazes the target, is not full. The hold window lies inside the judged span (a step's
hold, the data): a response reaching the target less than ``hold_s`` before the span ends
is not confirmed and counts as not reached (the conservative answer). Candidate instants
are the interpolated crossings and the samples at or above the level, so the answer is
never earlier than the first crossing.

"Held" (mFRR hold, FCR-D sustain until ramp 6) is the smallest ``hold_s``-second mean of
the response over a window (:func:`min_held_mean`), evaluated for windows starting or
ending at a sample: a one-sample dip below the target inside an otherwise exact hold
breaks it. Each rule module states its window and its source (printed in the report's
Method).
"""

from __future__ import annotations

import numpy as np

from analytics.timeseries import FloatArray, InsufficientDataError, Series

#: Comparisons allow for float rounding only: a part per 10^9 of the signal's magnitude.
ROUNDING = 1e-9


def _cumulative(tt: FloatArray, yy: FloatArray) -> FloatArray:
    parts = (yy[1:] + yy[:-1]) / 2 * np.diff(tt)
    return np.concatenate(([0.0], np.cumsum(parts)))


def _integral_to(tt: FloatArray, yy: FloatArray, cum: FloatArray, q: FloatArray) -> FloatArray:
    """∫ from tt[0] to each q of the linear interpolant of (tt, yy) (q inside [tt0, tt-1])."""
    i = np.clip(np.searchsorted(tt, q, side="right") - 1, 0, tt.size - 2)
    yq = np.interp(q, tt, yy)
    out: FloatArray = cum[i] + (yy[i] + yq) / 2 * (q - tt[i])
    return out


def reach_held(
    series: Series,
    y: FloatArray,
    level: float,
    t0: float,
    t1: float | None = None,
    *,
    hold_s: float,
    below: bool = False,
) -> float:
    """First t in [t0, t1] with y(t) >= level and mean(y over [t, t + hold_s]) >= level.

    ``[t, t + hold_s]`` must lie inside ``[t0, t1]`` (``t1`` defaults to the data end).
    NaN when never (module doc). ``hold_s = 0`` is the plain first crossing. ``below``:
    the first t with y(t) < level and a mean below it (the end of a held response).
    """
    if hold_s < 0:
        raise InsufficientDataError(f"hold window must be >= 0 s, got {hold_s}")
    hold_s, level = float(hold_s), float(level)  # numpy is ~30x slower with a float subclass
    hi = float(series.t[-1]) if t1 is None else min(t1, float(series.t[-1]))
    tt, yy = series.window(y, t0, hi, "reach")
    # float rounding only (a part per 10^9 of the signal; 5.8 - 5.0 < 0.8), no tolerance
    eps = ROUNDING * max(abs(level), float(np.max(np.abs(yy))))
    level -= eps  # at the level counts as reached, and as not (yet) below it
    above = yy < level if below else yy >= level
    if not np.any(above):
        return float("nan")
    k = np.flatnonzero(~above[:-1] & above[1:]) + 1  # crossings between k-1 and k
    crossings = tt[k - 1] + (level - yy[k - 1]) / (yy[k] - yy[k - 1]) * (tt[k] - tt[k - 1])
    if above[0]:
        crossings = np.concatenate(([tt[0]], crossings))

    # usually the first crossing holds: nothing earlier can (no sample is at the level before)
    if crossings.size and _held_from(
        tt, yy, float(crossings[0]), hold_s=hold_s, hi=hi, level=level, below=below
    ):
        return float(crossings[0])
    cum = _cumulative(tt, yy)

    def first_held(candidates: FloatArray) -> float:
        candidates = candidates[candidates + hold_s <= hi + 1e-9]
        if candidates.size == 0:
            return float("nan")
        if hold_s == 0:
            return float(candidates[0])
        ends = np.minimum(candidates + hold_s, hi)
        means = (_integral_to(tt, yy, cum, ends) - _integral_to(tt, yy, cum, candidates)) / hold_s
        ok = np.flatnonzero(means < level if below else means >= level)
        return float(candidates[ok[0]]) if ok.size else float("nan")

    return first_held(np.unique(np.concatenate((crossings, tt[above]))))


def _held_from(
    tt: FloatArray, yy: FloatArray, c: float, *, hold_s: float, hi: float, level: float, below: bool
) -> bool:
    """Whether the mean of y over [c, c + hold_s] (inside the span) is at / below level."""
    end = c + hold_s
    if end > hi + 1e-9:
        return False
    if hold_s == 0:
        return True
    i, j = np.searchsorted(tt, [c, end], side="right")
    xs = np.concatenate(([c], tt[i:j], [end]))
    ys = np.concatenate(([np.interp(c, tt, yy)], yy[i:j], [np.interp(end, tt, yy)]))
    mean = float(np.trapezoid(ys, xs)) / hold_s
    return mean < level if below else mean >= level


def min_held_mean(
    series: Series, y: FloatArray, a: float, b: float, *, hold_s: float, what: str
) -> tuple[float, float]:
    """(smallest ``hold_s``-second mean of y inside [a, b], start of that window).

    A span shorter than ``hold_s`` is judged by its own mean; ``hold_s = 0`` is the
    smallest sample (interpolated ends included).
    """
    tt, yy = series.window(y, a, b, what)
    hold_s = float(hold_s)  # numpy is ~30x slower with a float subclass (Cited)
    if hold_s <= 0:
        k = int(np.argmin(yy))
        return float(yy[k]), float(tt[k])
    if b - a <= hold_s:
        return float(np.trapezoid(yy, tt) / (b - a)) if b > a else float(yy[0]), a
    starts = np.concatenate(([a, b - hold_s], tt, tt - hold_s))
    starts = starts[(starts >= a) & (starts <= b - hold_s)]
    cum = _cumulative(tt, yy)
    means = (
        _integral_to(tt, yy, cum, starts + hold_s) - _integral_to(tt, yy, cum, starts)
    ) / hold_s
    k = int(np.argmin(means))
    return float(means[k]), float(starts[k])
