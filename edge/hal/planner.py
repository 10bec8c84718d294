"""Command -> WritePlan, pure: the ordered register writes with FC06/FC16 and delays.

Refuses non-writable registers and out-of-bounds values with `WriteRefusedError` before anything
reaches a device. The sequences themselves are data in the map (`control:`).
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.hal.decode import encode_point
from edge.hal.errors import WriteRefusedError
from edge.hal.points import Command, CommandKind, RegisterWrite, WritePlan
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
