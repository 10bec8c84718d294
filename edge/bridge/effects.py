"""What a command does to what is in force at its site. Pure: no I/O, ``now`` passed in.

:func:`effect` takes the command (past the gate: owned, not expired), what is in force and the
room now (baseline, bounds, energy) and gives what will be in force once its writes went out,
or a refusal in words (REJECTED):

* SET_POWER: its setpoint replaces the baseline (:func:`edge.bridge.headroom.admit_setpoint`:
  within the bounds, leaving room for what is armed and ordered); arms and orders stay;
* STOP: 0 kW held, every arm and order ended;
* SAFE_MODE: nothing in force (the site goes back to its own mode);
* ARM_RESERVE: ``reserve.product`` armed with the capacity that fits
  (:func:`edge.bridge.headroom.admit_arm`), replacing that product's earlier arm; none fits:
  that product is not armed (CLAMPED to 0, said);
* DISARM_RESERVE: ``product`` disarmed; not armed: nothing changes (said);
* ORDER: ``product``'s change against the baseline (:func:`edge.bridge.headroom.admit_order`),
  replacing its earlier order; 0 ends it.

Command order: an arm, disarm or order issued before the one in force for its product (a late
redelivery) is refused: the later one stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from contract.enums import CommandKind, Product
from edge.bridge.bounds import Bounds, EnergyRoom
from edge.bridge.headroom import Admitted, admit_arm, admit_order, admit_setpoint
from edge.bridge.model import BridgeCommand, Cause
from edge.bridge.stack import Arm, Held, InForce, Order


@dataclass(frozen=True)
class Room:
    """The site now: its baseline (with what is in force), bounds and energy room."""

    baseline_kw: float
    bounds: Bounds
    energy: EnergyRoom


@dataclass(frozen=True)
class Effect:
    """What is in force after the command, what it asked for, and a clamp (cause, words)."""

    in_force: InForce
    requested_kw: float | None = None
    cause: Cause | None = None
    reason: str | None = None


def _newer_in_force(cmd: BridgeCommand, product: Product, current: InForce) -> str | None:
    """A refusal when ``product``'s arm or order in force was issued after ``cmd``."""
    held = current.arms.get(product) or current.orders.get(product)
    if held is None or held.cmd.event_time <= cmd.event_time:
        return None
    return (
        f"issued {cmd.event_time.isoformat()}, before the {product} command in force "
        f"({held.cmd.command_id}, {held.cmd.kind} issued {held.cmd.event_time.isoformat()}): "
        "the later one stays"
    )


def _clamped(in_force: InForce, got: Admitted) -> Effect:
    return Effect(in_force, got.requested_kw, got.cause, got.reason)


def _set_power(cmd: BridgeCommand, current: InForce, room: Room, now: datetime) -> Effect:
    assert cmd.power_kw is not None  # noqa: S101  # BridgeCommand checks it
    got = admit_setpoint(cmd.power_kw, current, room.bounds)
    return _clamped(current.with_held(Held(got.kw, cmd)), got)


def _arm(cmd: BridgeCommand, current: InForce, room: Room, now: datetime) -> Effect:
    arm = cmd.reserve
    assert arm is not None  # noqa: S101  # BridgeCommand checks it
    got = admit_arm(
        arm, current, baseline_kw=room.baseline_kw, bounds=room.bounds, energy=room.energy, now=now
    )
    if got.kw <= 0:
        why = got.reason or f"{arm.product} capacity 0 kW"
        return Effect(current.without_arm(arm.product), None, got.cause, f"{why}: not armed")
    armed = Arm(replace(arm, capacity_kw=got.kw), cmd)
    return Effect(current.with_arm(armed), None, got.cause, got.reason)


def _disarm(cmd: BridgeCommand, current: InForce, room: Room, now: datetime) -> Effect:
    product = cmd.product
    assert product is not None  # noqa: S101  # BridgeCommand checks it
    note = None if product in current.arms else f"{product} was not armed"
    return Effect(current.without_arm(product), reason=note)


def _order(cmd: BridgeCommand, current: InForce, room: Room, now: datetime) -> Effect:
    product, delta = cmd.product, cmd.power_kw
    assert product is not None  # noqa: S101  # BridgeCommand checks it
    assert delta is not None  # noqa: S101  # BridgeCommand checks it
    if delta == 0:
        return Effect(current.without_order(product), requested_kw=0.0)
    got = admit_order(
        product,
        delta,
        valid_until=cmd.valid_until,
        in_force=current,
        baseline_kw=room.baseline_kw,
        bounds=room.bounds,
        energy=room.energy,
        now=now,
    )
    if got.kw == 0:
        return Effect(current.without_order(product), got.requested_kw, got.cause, got.reason)
    return _clamped(current.with_order(Order(product, got.kw, cmd)), got)


_Kind = Callable[[BridgeCommand, InForce, Room, datetime], Effect]
_BY_KIND: Mapping[CommandKind, _Kind] = MappingProxyType(
    {
        CommandKind.SAFE_MODE: lambda cmd, current, room, now: Effect(InForce()),
        CommandKind.STOP: lambda cmd, current, room, now: Effect(InForce(held=Held(0.0, cmd))),
        CommandKind.SET_POWER: _set_power,
        CommandKind.ARM_RESERVE: _arm,
        CommandKind.DISARM_RESERVE: _disarm,
        CommandKind.ORDER: _order,
    }
)


def effect(cmd: BridgeCommand, current: InForce, room: Room, now: datetime) -> Effect | str:
    """What ``cmd`` makes of ``current`` (see the module doc), or why it is refused."""
    product = cmd.concerns
    if product is not None:
        refusal = _newer_in_force(cmd, product, current)
        if refusal is not None:
            return refusal
    return _BY_KIND[cmd.kind](cmd, current, room, now)
