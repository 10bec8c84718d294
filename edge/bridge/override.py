"""Override detection: did the inverter do what was written? Pure.

After a write the bridge reads back the setpoint registers and measures battery power once the
OEM's response time has passed (dead time + ``settle_taus`` time constants of a first-order
response). Comparing the three numbers gives the outcome:

* readback differs from what was written -> the inverter clamped the register: CLAMPED;
* measured power within tolerance of the written power -> APPLIED (CLAMPED if the gate
  clamped the request before writing);
* measured power in the commanded direction but short of it -> CLAMPED (the inverter limits);
* otherwise (opposite direction, nothing, or more than asked) -> OVERRIDDEN.

The likely cause is the first that fits: mode not REMOTE/FORCED (FIRMWARE_TIMER when the
forced-mode timer ran out, else MODE), an active fault (TEMPERATURE when the fault names
temperature, else FAULT), SoC at the reserve limit in the commanded direction (SOC_LIMIT),
else UNKNOWN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from contract.enums import CommandStatus, SiteMode
from edge.bridge.model import BridgeInputError, Cause
from edge.hal.points import Fault

_CONTROLLED_MODES = (SiteMode.REMOTE, SiteMode.FORCED)


@dataclass(frozen=True)
class ResponseTiming:
    """First-order battery response of an OEM: dead time, then time constant; tolerances."""

    time_constant_s: float
    dead_time_s: float
    tolerance_kw: float = 0.2
    tolerance_frac: float = 0.05
    settle_taus: float = 3.0

    def __post_init__(self) -> None:
        for name in ("time_constant_s", "dead_time_s", "tolerance_kw", "tolerance_frac"):
            v = getattr(self, name)
            if not math.isfinite(v) or v < 0:
                raise BridgeInputError(f"{name} must be finite and >= 0, got {v!r}")
        if self.settle_taus <= 0:
            raise BridgeInputError("settle_taus must be > 0")

    @property
    def settle_s(self) -> float:
        """How long after the write the measurement is taken."""
        return self.dead_time_s + self.settle_taus * self.time_constant_s

    def expected_kw(self, start_kw: float, target_kw: float, elapsed_s: float) -> float:
        """Battery power a compliant inverter shows ``elapsed_s`` after the write."""
        if elapsed_s <= self.dead_time_s:
            return start_kw
        if self.time_constant_s == 0:
            return target_kw
        frac = 1.0 - math.exp(-(elapsed_s - self.dead_time_s) / self.time_constant_s)
        return start_kw + (target_kw - start_kw) * frac

    def tolerance(self, target_kw: float) -> float:
        return self.tolerance_kw + self.tolerance_frac * abs(target_kw)


@dataclass(frozen=True)
class Observation:
    """What the bridge saw after the write."""

    measured_kw: float
    soc_pct: float | None
    mode: SiteMode
    elapsed_s: float
    readback_kw: float | None = None
    faults: Sequence[Fault] = ()
    timer_expired: bool = False


@dataclass(frozen=True)
class Verdict:
    """``follows``: the inverter does what was written (APPLIED, or CLAMPED by the bridge's
    own gate before the write); else it clamped or overrode it."""

    status: CommandStatus
    measured_kw: float
    cause: Cause | None
    reason: str
    follows: bool = False


def likely_cause(
    obs: Observation, written_kw: float, soc_min_pct: float, soc_max_pct: float
) -> Cause:
    if obs.mode not in _CONTROLLED_MODES:
        return Cause.FIRMWARE_TIMER if obs.timer_expired else Cause.MODE
    if obs.faults:
        if any("temp" in (f.code + f.name).lower() for f in obs.faults):
            return Cause.TEMPERATURE
        return Cause.FAULT
    if obs.soc_pct is not None:
        if written_kw > 0 and obs.soc_pct <= soc_min_pct:
            return Cause.SOC_LIMIT
        if written_kw < 0 and obs.soc_pct >= soc_max_pct:
            return Cause.SOC_LIMIT
    return Cause.UNKNOWN


def classify(
    written_kw: float,
    start_kw: float,
    obs: Observation,
    *,
    timing: ResponseTiming,
    soc_min_pct: float,
    soc_max_pct: float,
    gate_cause: Cause | None = None,
) -> Verdict:
    """The outcome of a write, from the read-back and the measured battery power."""
    tol = timing.tolerance(written_kw)
    measured = obs.measured_kw
    if obs.readback_kw is not None and abs(obs.readback_kw - written_kw) > tol:
        cause = likely_cause(obs, written_kw, soc_min_pct, soc_max_pct)
        if cause is Cause.UNKNOWN:
            cause = Cause.RATED_LIMIT
        return Verdict(
            CommandStatus.CLAMPED,
            measured,
            cause,
            f"inverter holds {obs.readback_kw:.3f} kW in its setpoint register, "
            f"{written_kw:.3f} kW was written",
        )
    expected = timing.expected_kw(start_kw, written_kw, obs.elapsed_s)
    if abs(measured - expected) <= tol:
        if gate_cause is not None:
            return Verdict(
                CommandStatus.CLAMPED,
                measured,
                gate_cause,
                f"limited to {written_kw:.3f} kW by {gate_cause}; inverter follows",
                follows=True,
            )
        return Verdict(
            CommandStatus.APPLIED, measured, None, "inverter follows the setpoint", follows=True
        )
    cause = likely_cause(obs, written_kw, soc_min_pct, soc_max_pct)
    moving_right_way = (expected - start_kw) * (measured - start_kw) > 0
    short = abs(measured - start_kw) < abs(expected - start_kw)
    detail = f"measured {measured:.3f} kW, expected {expected:.3f} ± {tol:.3f} kW"
    if moving_right_way and short:
        return Verdict(
            CommandStatus.CLAMPED, measured, cause, f"inverter limits the response: {detail}"
        )
    return Verdict(
        CommandStatus.OVERRIDDEN, measured, cause, f"inverter does something else: {detail}"
    )
