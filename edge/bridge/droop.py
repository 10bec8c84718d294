"""Edge-local fast reserve: power response from locally measured frequency. Pure.

Response in kW (positive = discharge) for an armed :class:`ReserveParams`:

* linear products (FCR-N, FCR-D up/down): ``direction * capacity * frac`` with
  ``frac = (f_start - f) / (f_start - f_full)`` clipped to [0, 1] (to [-1, 1] when symmetric)
  and ``direction = sign(f_start - f_full)``. FCR-D up (49.9 -> 49.5 Hz) gives 0 at >= 49.9 Hz
  and full discharge at <= 49.5 Hz; FCR-D down (50.1 -> 50.5 Hz) is mirrored (charge); FCR-N
  (50.0 -> 49.9 Hz, symmetric) gives +full at 49.9 Hz and -full at 50.1 Hz.
* FFR: a step, full discharge at or below the trigger frequency ``f_full``.
* ``deadband_hz``: no response while ``|f - f_start| < deadband``; outside it the curve is the
  undistorted line from f_start (full activation stays at f_full).

:class:`ReserveController` adds the responses to the base setpoint and bounds the sum by the
site's limits; the reserve loop (:mod:`edge.bridge.reserve`) disarms on expiry or STOP.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from edge.bridge.model import BridgeInputError, PowerLimits, Product, ReserveParams


def response_kw(params: ReserveParams, frequency_hz: float) -> float:
    """Reserve response at a measured frequency, kW (positive = discharge)."""
    if not math.isfinite(frequency_hz):
        raise BridgeInputError(f"frequency_hz must be finite, got {frequency_hz!r}")
    if params.product is Product.FFR:
        return params.capacity_kw if frequency_hz <= params.f_full_hz else 0.0
    if abs(frequency_hz - params.f_start_hz) < params.deadband_hz:
        return 0.0
    span = params.f_start_hz - params.f_full_hz
    frac = (params.f_start_hz - frequency_hz) / span
    low = -1.0 if params.symmetric else 0.0
    frac = min(1.0, max(low, frac))
    direction = 1.0 if span > 0 else -1.0
    return direction * params.capacity_kw * frac + 0.0  # + 0.0: no -0.0 in events


@dataclass(frozen=True)
class Armed:
    params: ReserveParams
    valid_until: datetime
    command_id: str


@dataclass(frozen=True)
class DroopTarget:
    """Total power to hold now, the reserve part of it, and whether it was bounded."""

    total_kw: float
    reserve_kw: float
    bounded: bool


class ReserveController:
    """The armed reserves, keyed by product, and the setpoint they ask for at a frequency.

    One reserve at a time for now: arming replaces what was armed (an ARM_RESERVE command
    carries one product). :meth:`target` is the one place the power to hold is computed: the
    base plus the response of every armed reserve, bounded by the limits.
    """

    def __init__(self) -> None:
        self._armed: dict[Product, Armed] = {}

    @property
    def armed(self) -> Armed | None:
        """The armed reserve (None: none armed)."""
        return next(iter(self._armed.values()), None)

    def arm(self, params: ReserveParams, valid_until: datetime, command_id: str) -> None:
        self._armed = {params.product: Armed(params, valid_until, command_id)}

    def disarm(self) -> None:
        self._armed = {}

    def product(self, now: datetime) -> Product:
        self.expire(now)
        armed = self.armed
        return Product.NONE if armed is None else armed.params.product

    def expire(self, now: datetime) -> bool:
        """Disarm the reserves whose arm command has expired; True if one just did."""
        gone = [p for p, a in self._armed.items() if now >= a.valid_until]
        for product in gone:
            del self._armed[product]
        return bool(gone)

    def target(
        self, base_kw: float, frequency_hz: float | None, now: datetime, limits: PowerLimits
    ) -> DroopTarget:
        """Base + responses bounded by limits. No frequency or none armed: base alone (bounded)."""
        self.expire(now)
        reserve = 0.0
        if frequency_hz is not None:
            reserve = sum((response_kw(a.params, frequency_hz) for a in self._armed.values()), 0.0)
        total, cause = limits.clamp(base_kw + reserve)
        return DroopTarget(total, reserve, cause is not None)


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
