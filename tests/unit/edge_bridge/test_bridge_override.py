"""Override detection: APPLIED / CLAMPED / OVERRIDDEN with the likely cause."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.enums import CommandStatus, FaultSource, Severity, SiteMode
from edge.bridge.model import BridgeInputError, Cause
from edge.bridge.override import Observation, ResponseTiming, classify
from edge.hal.points import Fault

TIMING = ResponseTiming(time_constant_s=1.0, dead_time_s=0.5, tolerance_kw=0.2)
SETTLED = TIMING.settle_s + 10.0  # far past the response: expected == target
TEMP = Fault(
    FaultSource.BMS, "sungrow.bms.over_temperature", "Battery over-temperature", Severity.MAJOR
)
ISO = Fault(FaultSource.INVERTER, "saj.err.iso", "Insulation fault", Severity.MAJOR)


def obs(  # noqa: PLR0917  # a compact row builder for the table
    measured: float,
    soc: float | None = 50.0,
    mode: SiteMode = SiteMode.FORCED,
    readback: float | None = None,
    faults: tuple[Fault, ...] = (),
    timer: bool = False,
    elapsed: float = SETTLED,
) -> Observation:
    return Observation(measured, soc, mode, elapsed, readback, faults, timer)


@pytest.mark.parametrize(
    ("written", "start", "o", "gate", "status", "cause"),
    [
        (5.0, 0.0, obs(4.9), None, CommandStatus.APPLIED, None),
        (-5.0, 0.0, obs(-5.1, mode=SiteMode.REMOTE), None, CommandStatus.APPLIED, None),
        (5.0, 0.0, obs(4.9), Cause.SITE_LIMIT, CommandStatus.CLAMPED, Cause.SITE_LIMIT),
        (5.0, 0.0, obs(2.0), None, CommandStatus.CLAMPED, Cause.UNKNOWN),
        (5.0, 0.0, obs(2.0, soc=8.0), None, CommandStatus.CLAMPED, Cause.SOC_LIMIT),
        (-5.0, 0.0, obs(-1.0, soc=97.0), None, CommandStatus.CLAMPED, Cause.SOC_LIMIT),
        (
            5.0,
            0.0,
            obs(0.0, mode=SiteMode.SELF_CONSUMPTION),
            None,
            CommandStatus.OVERRIDDEN,
            Cause.MODE,
        ),
        (
            5.0,
            0.0,
            obs(-1.0, mode=SiteMode.SELF_CONSUMPTION, timer=True),
            None,
            CommandStatus.OVERRIDDEN,
            Cause.FIRMWARE_TIMER,
        ),
        (5.0, 0.0, obs(1.0, faults=(TEMP,)), None, CommandStatus.CLAMPED, Cause.TEMPERATURE),
        (5.0, 0.0, obs(0.0, faults=(ISO,)), None, CommandStatus.OVERRIDDEN, Cause.FAULT),
        (5.0, 0.0, obs(7.0), None, CommandStatus.OVERRIDDEN, Cause.UNKNOWN),
        (5.0, 0.0, obs(4.0, readback=4.0), None, CommandStatus.CLAMPED, Cause.RATED_LIMIT),
        (5.0, 0.0, obs(0.0, readback=0.0, soc=5.0), None, CommandStatus.CLAMPED, Cause.SOC_LIMIT),
        # within the dead time nothing has moved yet, and that is compliant
        (5.0, 1.0, obs(1.0, elapsed=0.4), None, CommandStatus.APPLIED, None),
        # mid-response: expected 1 - exp(-1) of the step
        (5.0, 0.0, obs(5.0 * 0.632, elapsed=1.5), None, CommandStatus.APPLIED, None),
    ],
)
def test_classify_table(  # noqa: PLR0917  # one argument per table column
    written: float,
    start: float,
    o: Observation,
    gate: Cause | None,
    status: CommandStatus,
    cause: Cause | None,
) -> None:
    verdict = classify(
        written, start, o, timing=TIMING, soc_min_pct=10.0, soc_max_pct=95.0, gate_cause=gate
    )
    assert (verdict.status, verdict.cause) == (status, cause)
    assert verdict.measured_kw == o.measured_kw
    assert verdict.reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"time_constant_s": -1.0, "dead_time_s": 0.0},
        {"time_constant_s": 1.0, "dead_time_s": float("nan")},
        {"time_constant_s": 1.0, "dead_time_s": 0.0, "settle_taus": 0.0},
    ],
)
def test_bad_timing(kwargs: dict[str, float]) -> None:
    with pytest.raises(BridgeInputError):
        ResponseTiming(**kwargs)


kw = st.floats(min_value=-20.0, max_value=20.0, allow_nan=False)


@given(written=kw, start=kw, t=st.floats(0.0, 30.0))
def test_compliant_inverter_is_always_applied(written: float, start: float, t: float) -> None:
    """An inverter that follows the first-order model exactly is never flagged."""
    measured = TIMING.expected_kw(start, written, t)
    v = classify(
        written, start, obs(measured, elapsed=t), timing=TIMING, soc_min_pct=10, soc_max_pct=95
    )
    assert v.status is CommandStatus.APPLIED


@given(written=kw, start=kw, t=st.floats(0.0, 30.0))
def test_expected_lies_between_start_and_target(written: float, start: float, t: float) -> None:
    e = TIMING.expected_kw(start, written, t)
    assert min(start, written) - 1e-9 <= e <= max(start, written) + 1e-9


@given(written=st.floats(1.0, 20.0), measured=st.floats(-20.0, -0.5))
def test_opposite_direction_is_overridden(written: float, measured: float) -> None:
    v = classify(written, 0.0, obs(measured), timing=TIMING, soc_min_pct=10, soc_max_pct=95)
    assert v.status is CommandStatus.OVERRIDDEN
