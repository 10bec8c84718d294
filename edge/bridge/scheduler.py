"""Per-site command queue (STOP overtakes) and the expiry decision. Pure.

The queue holds commands received but not yet applied. A STOP (and SAFE_MODE, which also
takes power to the OEM default) goes to the front and drops every queued SET_POWER,
ARM_RESERVE, DISARM_RESERVE or ORDER that is older than it: applying them after the stop would
undo it.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from datetime import datetime

from contract.enums import CommandKind
from edge.bridge.model import BridgeCommand

_OVERTAKING = (CommandKind.STOP, CommandKind.SAFE_MODE)


class CommandQueue:
    """FIFO for one site, except that stops overtake and supersede older power commands."""

    def __init__(self) -> None:
        self._items: deque[BridgeCommand] = deque()

    def __len__(self) -> int:
        return len(self._items)

    def push(self, command: BridgeCommand) -> list[BridgeCommand]:
        """Queue a command; returns the commands it superseded (to report as REJECTED)."""
        if command.kind not in _OVERTAKING:
            self._items.append(command)
            return []
        dropped = [
            c
            for c in self._items
            if c.kind not in _OVERTAKING and c.event_time <= command.event_time
        ]
        kept = [c for c in self._items if c not in dropped]
        stops = [c for c in kept if c.kind in _OVERTAKING]
        rest = [c for c in kept if c.kind not in _OVERTAKING]
        self._items = deque([*stops, command, *rest])
        return dropped

    def pop(self) -> BridgeCommand | None:
        return self._items.popleft() if self._items else None

    def snapshot(self) -> tuple[BridgeCommand, ...]:
        return tuple(self._items)


class Action(enum.StrEnum):
    NONE = "NONE"
    REVERT_TO_SAFE_MODE = "REVERT_TO_SAFE_MODE"


@dataclass(frozen=True)
class SiteState:
    """What is in force at a site: the active command (the newest one in force, if any) and
    whether safe mode is on."""

    active: BridgeCommand | None = None
    in_safe_mode: bool = True


def decide(state: SiteState, now: datetime, queued: int = 0) -> Action:
    """When the active command expired and nothing is queued to succeed it, revert to safe mode.

    The active command is the newest one still in force (a SET_POWER, an arm, an order); once
    nothing is left in force it stays on the last one, expired
    (``edge.bridge.shared.Setpoint.expire``). A queued successor is applied by the caller
    first; it decides again afterwards.
    """
    if state.active is None or state.in_safe_mode:
        return Action.NONE
    if state.active.expired(now) and queued == 0:
        return Action.REVERT_TO_SAFE_MODE
    return Action.NONE
