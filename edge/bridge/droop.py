"""Edge-local fast reserve: power response from locally measured frequency. Pure.

Response in kW (positive = discharge) of an armed :class:`contract.records.ReserveArm`: its
capacity times the product's activation fraction at the measured frequency
(:func:`contract.products.activation_fraction`, the one curve the live compliance and the
audit use too), with the arm's own band:

* FCR-D up (49.9 -> 49.5 Hz) gives 0 at >= 49.9 Hz and full discharge at <= 49.5 Hz; FCR-D
  down (50.1 -> 50.5 Hz) is mirrored (charge); FCR-N (50.0 -> 49.9 Hz, symmetric) gives +full
  at 49.9 Hz and -full at 50.1 Hz;
* FFR: a step, full discharge at or below the trigger frequency ``f_full_hz``;
* ``deadband_hz``: no response while ``|f - f_start| <= deadband``; outside it the curve is
  the undistorted line from f_start (full activation stays at f_full).

Several products armed at once each respond on their own curve; the total is their sum
(:func:`edge.bridge.stack.compose`, facts §4.3). Writes happen only when the power moved by
``min_step_kw`` (:func:`needs_write`) and, in the fast loop, after the map's write gap.
"""

from __future__ import annotations

import math

from contract.products import activation_fraction, curve_for
from contract.records import ReserveArm
from edge.bridge.model import BridgeInputError


def response_kw(arm: ReserveArm, frequency_hz: float) -> float:
    """Reserve response at a measured frequency, kW (positive = discharge)."""
    if not math.isfinite(frequency_hz):
        raise BridgeInputError(f"frequency_hz must be finite, got {frequency_hz!r}")
    curve = curve_for(arm.product)
    fraction = activation_fraction(
        frequency_hz,
        f_start_hz=arm.f_start_hz,
        f_full_hz=arm.f_full_hz,
        deadband_hz=arm.deadband_hz,
        symmetric=curve.symmetric,
        stepwise=curve.stepwise,
    )
    return arm.capacity_kw * fraction + 0.0  # + 0.0: no -0.0 in events


def needs_write(last_written_kw: float | None, target_kw: float, min_step_kw: float) -> bool:
    """Write only when the target moved by at least ``min_step_kw`` (registers have resolution)."""
    return last_written_kw is None or abs(target_kw - last_written_kw) >= min_step_kw


def fast_write_due(
    last_written_kw: float | None,
    target_kw: float,
    min_step_kw: float,
    since_write_s: float,
    write_gap_s: float,
) -> bool:
    """The reserve's fast loop writes when the target moved by ``min_step_kw`` (the deadband)
    and the map's write gap has passed since the last write (else the next sample decides)."""
    return needs_write(last_written_kw, target_kw, min_step_kw) and since_write_s >= write_gap_s
