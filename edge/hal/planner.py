"""Command -> WritePlan, pure: the ordered register writes with FC06/FC16 and delays.

Also the read side's plan: :data:`POLL_EVERY` declares how often each canonical telemetry point
is read (polling tiers) and :func:`poll_tiers` turns it into the register points of a map.

Refuses non-writable registers and out-of-bounds values with `WriteRefusedError` before anything
reaches a device. The sequences themselves are data in the map (`control:`).

:func:`drop_held` removes the writes of a plan that would not change the device (every register
of the write already holds its value), so a power update is one write instead of the OEM's
whole mode-switch sequence. It only ever removes writes: what remains was planned (and
checked) by :func:`plan_command`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from edge.hal.decode import encode_point
from edge.hal.errors import WriteRefusedError
from edge.hal.points import CanonicalPoint, Command, CommandKind, RegisterWrite, WritePlan
from edge.hal.registermap import RegisterMap, Step


@dataclass(frozen=True)
class PlanContext:
    """Device facts a plan may need: rated power for per-mille OEMs, live limits."""

    rated_power_kw: float | None = None
    max_charge_kw: float | None = None
    max_discharge_kw: float | None = None
    heartbeat_s: int = 20


def _variables(cmd: Command, rmap: RegisterMap, ctx: PlanContext) -> dict[str, float]:
    magnitude_kw = abs(cmd.power_kw)
    duration = cmd.duration_min
    if duration is None:
        duration = rmap.control.set_power.default_duration_min
    out = {
        "power_w": round(magnitude_kw * 1000.0),
        "power_kw": magnitude_kw,
        "duration_min": duration,
        "heartbeat_s": ctx.heartbeat_s,
    }
    if ctx.rated_power_kw:
        out["power_permille"] = round(magnitude_kw / ctx.rated_power_kw * 1000.0)
    return out


def _resolve(value: float | str, variables: dict[str, float]) -> float:
    if isinstance(value, str):
        if value not in variables:
            raise WriteRefusedError(f"value {value!r} needs a device fact the plan was not given")
        return variables[value]
    return value


def _step_write(rmap: RegisterMap, step: Step, variables: dict[str, float]) -> RegisterWrite:
    targets = step.targets()
    registers: list[int] = []
    for name, value in targets:
        if not rmap.point(name).writable:
            raise WriteRefusedError(f"{name} is not writable")
        registers += encode_point(rmap, name, _resolve(value, variables))
    first = rmap.point(targets[0][0])
    return RegisterWrite(
        fc=step.fc,
        address=first.address,
        values=tuple(registers),
        points=tuple(name for name, _ in targets),
        delay_after_s=step.delay_after_s,
    )


def _check_limits(cmd: Command, ctx: PlanContext) -> None:
    if cmd.power_kw < 0 and ctx.max_charge_kw is not None and -cmd.power_kw > ctx.max_charge_kw:
        raise WriteRefusedError(
            f"charge {-cmd.power_kw} kW above device limit {ctx.max_charge_kw} kW"
        )
    if (
        cmd.power_kw > 0
        and ctx.max_discharge_kw is not None
        and cmd.power_kw > ctx.max_discharge_kw
    ):
        raise WriteRefusedError(
            f"discharge {cmd.power_kw} kW above device limit {ctx.max_discharge_kw} kW"
        )


def plan_command(rmap: RegisterMap, cmd: Command, ctx: PlanContext | None = None) -> WritePlan:
    ctx = ctx or PlanContext()
    control = rmap.control
    if cmd.kind is CommandKind.SET_POWER:
        if cmd.power_kw != cmd.power_kw:  # NaN
            raise WriteRefusedError("power is NaN")
        _check_limits(cmd, ctx)
        if cmd.power_kw < 0:
            steps = control.set_power.charge
        elif cmd.power_kw > 0:
            steps = control.set_power.discharge
        else:
            steps = control.set_power.idle
    elif cmd.kind is CommandKind.STOP:
        steps = control.stop
    else:
        steps = control.safe_mode
    variables = _variables(cmd, rmap, ctx)
    writes = tuple(_step_write(rmap, s, variables) for s in steps)
    return WritePlan(command=cmd, writes=writes)


def plan_heartbeat(rmap: RegisterMap, ctx: PlanContext | None = None) -> WritePlan | None:
    """The periodic keep-alive writes (e.g. Sungrow external-EMS heartbeat), if the OEM has any."""
    if not rmap.control.heartbeat:
        return None
    ctx = ctx or PlanContext()
    variables = _variables(Command.stop(), rmap, ctx)
    writes = tuple(_step_write(rmap, s, variables) for s in rmap.control.heartbeat)
    return WritePlan(command=Command.stop(), writes=writes)


def drop_held(plan: WritePlan, held: Mapping[int, int]) -> WritePlan:
    """``plan`` without the writes whose every register already holds the value to be written.

    ``held``: holding-register wire address -> the value the device holds (as last written and
    not contradicted since). Order and delays of the remaining writes are kept; a skipped
    write's ``delay_after_s`` goes with it (nothing to settle after a write that was not sent).
    """
    state = dict(held)  # what the device holds as the plan goes on (a register may recur)
    kept: list[RegisterWrite] = []
    for w in plan.writes:
        if any(state.get(w.address + i) != v for i, v in enumerate(w.values)):
            kept.append(w)
            state.update((w.address + i, v) for i, v in enumerate(w.values))
    return plan if len(kept) == len(plan.writes) else replace(plan, writes=tuple(kept))


# Polls between two reads of each canonical telemetry point (1 = every poll). Power and
# frequency drive control, override detection and the armed reserve: every poll. SoC moves at
# most ~0.3 %/s (10 kW on 10 kWh); BMS limits and capacity change on the BMS's own slow cycle
# (temperature, SoC bands). The mode points (rmap.mode) are read every poll: leaving remote
# control must be seen at once. A register point read for several canonical points takes the
# smallest period of them. Faults have their own period (SiteConfig.fault_interval_s).
POLL_EVERY: Mapping[CanonicalPoint, int] = MappingProxyType(
    {
        CanonicalPoint.BATTERY_POWER_KW: 1,
        CanonicalPoint.GRID_POWER_KW: 1,
        CanonicalPoint.FREQUENCY_HZ: 1,
        CanonicalPoint.PV_POWER_KW: 1,
        CanonicalPoint.LOAD_KW: 1,
        CanonicalPoint.SOC_PCT: 5,
        CanonicalPoint.MAX_CHARGE_KW: 10,
        CanonicalPoint.MAX_DISCHARGE_KW: 10,
        CanonicalPoint.CAPACITY_KWH: 30,
    }
)


def poll_tiers(
    rmap: RegisterMap, every: Mapping[CanonicalPoint, int] = POLL_EVERY
) -> dict[str, int]:
    """Register point name -> polls between its reads, for every point telemetry decodes."""
    out: dict[str, int] = {}

    def need(name: str, period: int) -> None:
        out[name] = min(period, out.get(name, period))

    for cp, src in rmap.telemetry.items():
        period = every.get(cp, 1)
        if period < 1:
            raise ValueError(f"poll period of {cp} must be >= 1, got {period}")
        for name in [t.point for t in src.terms] + ([src.times] if src.times else []):
            need(name, period)
    for rule in rmap.mode:
        need(rule.point, 1)
    return out


def due_points(tiers: Mapping[str, int], poll: int) -> list[str]:
    """The points to read at poll number ``poll`` (0 = the first poll reads everything)."""
    return [name for name, period in tiers.items() if poll % period == 0]
