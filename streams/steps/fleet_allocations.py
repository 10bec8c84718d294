"""Every product at once: the allocator's state and its two steps (pure, state as data).

``FleetAllocations`` holds one allocation per slot (``AllocationRequest.slot``: energy
dispatch, and each reserve or order product), in product order:

- ``apply_request(state, request, statuses, now, config)``: a new request is split in its
  slot with every other slot's shares in force, replacing the slot's earlier allocation
  (whose sites without a share now are sent 0: DISARM, ORDER 0, SET_POWER 0). A reserve
  arm that replaces a longer-lived one of the same product (an FCR-D up test activation
  over the day's FCR-D up assignment) keeps that one ``underneath``: when the shorter one
  ends, the longer one is armed again (``refresh``), new setpoint ids (the next revision),
  as the edge applies a command id once;
- ``refresh(state, statuses, now, config)``, on the agent's timer: expired allocations are
  dropped (the edge lets their commands expire) or give way to the arm underneath; then,
  slot by slot in product order, each split the book no longer lets stand
  (``allocator.needed``, with the other slots as they are by then) is re-split, setpoints
  only for the sites whose share changed.

Orders and energy dispatch keep nothing underneath: a new order is the market's latest word
for its product (an order of 0 ends it), a new fleet setpoint the dispatcher's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from contract.enums import CommandKind, Product
from contract.errors import InvalidRecordError
from streams.steps.allocation import Allocation, AllocationRequest
from streams.steps.allocator import allocate_rooms, needed, reallocate_rooms, rooms_of
from streams.steps.availability import (
    AllocatorConfig,
    ProductUse,
    SiteRoom,
    SiteStatus,
    used_by_others,
)

_ORDER = {p: i for i, p in enumerate(Product)}
_NO_ALLOCATIONS: Mapping[Product, Allocation] = MappingProxyType({})


def _sorted(slots: Mapping[Product, Allocation]) -> Mapping[Product, Allocation]:
    return MappingProxyType(dict(sorted(slots.items(), key=lambda kv: _ORDER[kv[0]])))


@dataclass(frozen=True, slots=True)
class FleetAllocations:
    """The allocation in force per slot, and per armed slot the longer-lived allocation a
    shorter one replaced (see the module doc). Plain data: ``to_dict``/``from_dict``."""

    by_slot: Mapping[Product, Allocation] = field(default_factory=lambda: _NO_ALLOCATIONS)
    underneath: Mapping[Product, Allocation] = field(default_factory=lambda: _NO_ALLOCATIONS)

    def uses(self, now: int, but: Product | None = None) -> list[ProductUse]:
        """The shares of every allocation in force at ``now`` (except slot ``but``)."""
        return [
            ProductUse(slot, alloc.per_site_kw)
            for slot, alloc in self.by_slot.items()
            if slot is not but and alloc.request.valid_until > now
        ]

    def with_slot(
        self,
        slot: Product,
        allocation: Allocation | None,
        underneath: Allocation | None = None,
    ) -> FleetAllocations:
        """This state with ``slot`` holding ``allocation`` (None: empty) and ``underneath``
        it (None: nothing)."""
        slots = {k: v for k, v in self.by_slot.items() if k is not slot}
        under = {k: v for k, v in self.underneath.items() if k is not slot}
        if allocation is not None:
            slots[slot] = allocation
        if underneath is not None:
            under[slot] = underneath
        return FleetAllocations(_sorted(slots), _sorted(under))

    def to_dict(self) -> dict[str, Any]:
        return {
            "by_slot": {slot.value: a.to_dict() for slot, a in self.by_slot.items()},
            "underneath": {slot.value: a.to_dict() for slot, a in self.underneath.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FleetAllocations:
        slots = _slots(data.get("by_slot", {}), "by_slot")
        under = _slots(data.get("underneath", {}), "underneath")
        for slot in under:
            if slot not in slots:
                raise InvalidRecordError(
                    "FleetAllocations", "underneath", f"{slot} has nothing on top of it"
                )
        return cls(_sorted(slots), _sorted(under))


def _slots(data: Any, name: str) -> dict[Product, Allocation]:
    if not isinstance(data, Mapping):
        raise InvalidRecordError("FleetAllocations", name, "expected a mapping")
    out: dict[Product, Allocation] = {}
    for key, value in data.items():
        if not isinstance(value, Mapping):
            raise InvalidRecordError("FleetAllocations", f"{name}.{key}", "expected a mapping")
        alloc = Allocation.from_dict(value)
        if alloc.request.slot.value != key:
            raise InvalidRecordError(
                "FleetAllocations", f"{name}.{key}", f"holds a {alloc.request.slot} allocation"
            )
        out[alloc.request.slot] = alloc
    return out


def _outlives(alloc: Allocation | None, request: AllocationRequest, now: int) -> bool:
    return (
        alloc is not None
        and alloc.request.valid_until > max(now, request.valid_until)
        and alloc.request.source_id != request.source_id
    )


def apply_request(
    state: FleetAllocations,
    request: AllocationRequest,
    statuses: Iterable[SiteStatus],
    now: int,
    config: AllocatorConfig,
) -> tuple[FleetAllocations, Allocation]:
    """Allocate a new request in its slot with the other slots in force (module doc). An
    expired request empties its slot and sends nothing."""
    slot = request.slot
    before = state.by_slot.get(slot)
    previous = None if before is None or before.request.valid_until <= now else before
    allocation = allocate_rooms(
        request,
        rooms_of(statuses, now, config),
        now,
        config,
        previous=None if previous is None else previous.per_site_kw,
        changed_only=False,
        others=state.uses(now, but=slot),
    )
    under: Allocation | None = None
    if request.kind is CommandKind.ARM_RESERVE:
        lower = state.underneath.get(slot)
        under = previous if _outlives(previous, request, now) else None
        under = under or (lower if _outlives(lower, request, now) else None)
    kept = allocation if request.valid_until > now else None
    return state.with_slot(slot, kept, under if kept is not None else None), allocation


def refresh(
    state: FleetAllocations,
    statuses: Iterable[SiteStatus],
    now: int,
    config: AllocatorConfig,
) -> tuple[FleetAllocations, list[Allocation]]:
    """Drop expired allocations or arm what is underneath them again, then re-split the
    slots the book no longer lets stand (module doc). Returns the new state and the
    allocations whose setpoints are to be sent."""
    if not state.by_slot:
        return state, []
    rooms = rooms_of(statuses, now, config)
    done: list[Allocation] = []
    for slot, current in list(state.by_slot.items()):
        if current.request.valid_until > now:
            continue
        lower = state.underneath.get(slot)
        if lower is None or lower.request.valid_until <= now:
            state = state.with_slot(slot, None)
            continue
        restored = allocate_rooms(
            lower.request,
            rooms,
            now,
            config,
            revision=lower.revision + 1,
            others=state.uses(now, but=slot),
        )
        state = state.with_slot(slot, restored)
        done.append(restored)
    restored_slots = {a.request.slot for a in done}
    for slot in list(state.by_slot):
        current = state.by_slot[slot]
        if slot in restored_slots:
            continue
        others = state.uses(now, but=slot)
        if needed(current, rooms, config, others):
            allocation = reallocate_rooms(current, rooms, now, config, others)
            state = state.with_slot(slot, allocation, state.underneath.get(slot))
            done.append(allocation)
    return state, done


def committed(state: FleetAllocations, room: SiteRoom, now: int) -> tuple[float, float]:
    """(up, down) kW every product in force uses at the room's site, fully activated at
    once (per product the larger of its share and what the site holds). The split keeps
    this within the site's room whenever what the site holds already fit (tests,
    diagnostics)."""
    return used_by_others(room, None, state.uses(now))
