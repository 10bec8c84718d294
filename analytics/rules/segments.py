"""Find the ramps and steps of a synthetic test frequency (applied frequency signal).

A test signal is a sequence of holds joined by ramps (FCR-D, TR25 Table 4) or steps
(FCR-N, TR25 Table 3). :func:`find_transitions` walks the trace: a transition starts when
the frequency leaves the current hold level by more than ``eps_hz`` and ends where the
frequency stays within ``eps_hz`` of one value for ``min_hold_s`` (and two sample
intervals). The start and end of a ramp are refined by a straight-line fit through the
samples between 20 % and 80 % of the change; a step too fast for that starts at the first
sample that left the hold band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.timeseries import FloatArray
from contract.products import cite

#: A hold is the frequency staying within this of one value...
HOLD_EPS_HZ = cite(0.01, "[TR25 §4.1 Table 16] applied frequency accuracy ±10 mHz")
#: ... for at least this long, and at least two sample intervals: at 1 Hz a hold takes three
#: samples, so two close samples of a slow ramp (0.09 Hz/s, ramp 2) in a fleet's mean
#: frequency are no hold. At 1 Hz ramp 1's 1.8 s hold [TR25 Table 4] is then split out at
#: its extreme (:func:`analytics.rules.fcrd.split_unresolved_hold`).
MIN_HOLD_S = cite(
    1.0, "FlowerHub: below TR25 Table 4's shortest hold (ramp 1, 1.8 s) at 10 Hz logging"
)
MIN_HOLD_INTERVALS = cite(
    2.0, "FlowerHub: a hold spans two sample intervals at least (three samples at 1 Hz)"
)
#: A ramp's start and end come from a line through its samples between these fractions.
FIT_LOW = cite(0.2, "FlowerHub: inner part of a ramp, clear of the hold edges")
FIT_HIGH = cite(0.8, "FlowerHub: inner part of a ramp, clear of the hold edges")


@dataclass(frozen=True)
class Transition:
    """One ramp or step of the test frequency."""

    t_start: float
    t_end: float
    f_from: float
    f_to: float


def _hold_end(t: FloatArray, f: FloatArray, start: int, eps_hz: float, min_hold_s: float) -> int:
    """First index m >= start whose next ``min_hold_s`` stay within eps of f[m]; -1 if none."""
    n = t.shape[0]
    for m in range(start, n):
        e = int(np.searchsorted(t, t[m] + min_hold_s, side="right"))
        if e >= n and t[-1] - t[m] < min_hold_s:
            return -1
        if np.max(np.abs(f[m:e] - f[m])) <= eps_hz:
            return m
    return -1


def find_transitions(
    t: FloatArray, f: FloatArray, eps_hz: float = HOLD_EPS_HZ, min_hold_s: float = MIN_HOLD_S
) -> list[Transition]:
    """All transitions between holds of ``f`` (see module doc)."""
    # plain floats: numpy scalars compare ~30x slower with a float subclass (Cited)
    dt = float(np.median(np.diff(t))) if t.shape[0] > 1 else 0.0
    eps_hz, min_hold_s = float(eps_hz), max(float(min_hold_s), float(MIN_HOLD_INTERVALS) * dt)
    out: list[Transition] = []
    n = t.shape[0]
    first_hold = int(np.searchsorted(t, t[0] + min_hold_s, side="right"))
    level = float(np.mean(f[: max(first_hold, 1)]))
    i = 0
    while i < n:
        away = np.flatnonzero(np.abs(f[i:] - level) > eps_hz)
        if away.size == 0:
            break
        j = i + int(away[0])
        m = _hold_end(t, f, j, eps_hz, min_hold_s)
        last = n - 1 if m < 0 else m
        # level = median of the second half of the confirming hold window, which lies past
        # the last few mHz of the ramp that the eps band lets into the window's start
        h0 = int(np.searchsorted(t, t[last] + min_hold_s / 2, side="left"))
        e = int(np.searchsorted(t, t[last] + min_hold_s, side="right"))
        new_level = float(np.median(f[min(h0, n - 1) : max(e, h0 + 1)]))
        t_start, t_end = float(t[j]), float(t[last])
        change = new_level - level
        if change != 0.0:
            frac = (f[j - 1 : last + 1] - level) / change
            inner = (frac > FIT_LOW) & (frac < FIT_HIGH)
            seg_t = t[j - 1 : last + 1][inner]
            seg_f = f[j - 1 : last + 1][inner]
            if seg_t.size >= 2 and np.ptp(seg_t) > 0:
                slope, intercept = np.polyfit(seg_t, seg_f, 1)
                if slope != 0:
                    t_start = float((level - intercept) / slope)
                    t_end = float((new_level - intercept) / slope)
        out.append(Transition(t_start, t_end, level, new_level))
        if m < 0:
            break
        level = new_level
        i = last
    return out
