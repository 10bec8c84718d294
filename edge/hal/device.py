"""A battery inverter behind a register map: the `SiteDevice` the bridge talks to.

Generic over every map: identification, coalesced telemetry reads, fault decoding, write
plans and their application. Nothing here names an OEM or a register number.

Timing: :meth:`Device.identify` picks the firmware variant (site config, else the firmware
string) and the connection type (site config, else the firmware string or unit id, else the
link already in force) and hands their timing to the transport, in force from the next
request on. A timing value the caller set on the transport itself (different from what the
map gives for the link in force, e.g. a doctor's ``--settle``) stays.

What the bridge asks of a device it controls lives here too, so the bridge never sees a
register, a block or the transport: "the telemetry due at this poll" (tiered polling,
:mod:`edge.hal.tiers`), "the frequency alone", "this power update's writes, without what the
device holds and with the heartbeat taken along", "the heartbeat if one is due" and "write
this plan" (held registers and heartbeat bookkeeping, :mod:`edge.hal.control`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime

from edge.hal.blocks import Block, Span, plan_blocks
from edge.hal.capabilities import LinkCounts
from edge.hal.control import ControlPolicy, WriteBook
from edge.hal.decode import (
    Value,
    canonical,
    decode_faults,
    decode_telemetry,
    fault_points,
    telemetry_points,
    values_from_bank,
)
from edge.hal.errors import HalError, UnknownModelError
from edge.hal.planner import PlanContext, plan_command, plan_heartbeat
from edge.hal.points import CanonicalPoint, Command, Fault, Identity, Telemetry, WritePlan
from edge.hal.registermap import TIMING_FIELDS, RegisterMap
from edge.hal.tiers import TieredPolling
from edge.hal.transport import ModbusTransport


class Device:
    """One inverter (and its battery) reached through one transport."""

    def __init__(
        self,
        rmap: RegisterMap,
        transport: ModbusTransport,
        *,
        variant: str | None = None,
        link: str | None = None,
        policy: ControlPolicy | None = None,
    ) -> None:
        """``variant`` / ``link``: the site config's choice (else identification decides);
        ``policy``: held-register and heartbeat timing (:mod:`edge.hal.control`)."""
        if variant is not None:
            rmap.with_variant(variant)  # an unknown name fails here (MapError), not later
        self.configured_variant = variant
        self.configured_link = link
        profile = rmap.timing.links[rmap.connection.link].values()
        self.pinned = {
            name: getattr(transport.connection, name)
            for name in TIMING_FIELDS
            if getattr(transport.connection, name) != profile[name]
        }
        """Timing the caller set on the transport (kept whatever link or variant applies)."""
        if link is not None:
            rmap = rmap.with_link(link)
        self.base_map = rmap
        self.rmap = rmap
        self.transport = transport
        if link is not None:
            transport.apply_timing(rmap.connection.model_copy(update=self.pinned))
        self.identity: Identity | None = None
        self.last_telemetry: Telemetry | None = None
        self.polling = TieredPolling()
        self.book = WriteBook(policy or ControlPolicy())
        self._blocks: dict[tuple[str, ...], list[Block]] = {}  # per point set, for self._planned
        self._planned: RegisterMap | None = None

    # ------------------------------------------------------------------ reads
    def blocks_for(self, names: Iterable[str]) -> list[Block]:
        """The coalesced reads covering ``names`` (planned once per point set and map)."""
        if self.rmap is not self._planned:  # first use, or identify() switched the variant
            self._planned = self.rmap
            self._blocks.clear()
        key = tuple(names)
        blocks = self._blocks.get(key)
        if blocks is None:
            blocks = self._blocks[key] = self._plan_blocks(key)
        return blocks

    def _plan_blocks(self, names: Iterable[str]) -> list[Block]:
        spans = [
            Span(self.rmap.point(n).table, self.rmap.point(n).address, self.rmap.point(n).count)
            for n in names
        ]
        conn = self.rmap.connection
        return plan_blocks(spans, conn.max_registers_per_read, conn.max_read_gap)

    async def read_bank(self, names: Iterable[str]) -> dict[tuple[str, int], int]:
        bank: dict[tuple[str, int], int] = {}
        for block in self.blocks_for(names):
            regs = await self.transport.read(block.table, block.address, block.count)
            for i, reg in enumerate(regs):
                bank[(block.table, block.address + i)] = reg
        return bank

    async def read_points(self, names: Iterable[str]) -> dict[str, Value]:
        names = list(dict.fromkeys(names))
        return values_from_bank(self.rmap, names, await self.read_bank(names))

    # --------------------------------------------------------------- identify
    async def identify(self) -> Identity:
        ident = self.base_map.identification
        names = [ident.model, ident.serial, ident.firmware]
        if ident.rated_power:
            names.append(ident.rated_power)
        values = await self.read_points(names)
        model = resolve_model(self.base_map, values[ident.model])
        firmware = _text(values[ident.firmware])
        rated = values.get(ident.rated_power) if ident.rated_power else None
        rated_kw = None
        if isinstance(rated, float | int):
            unit = self.base_map.point(ident.rated_power or "").unit
            rated_kw = rated / 1000.0 if unit == "W" else float(rated)
        variant = self.configured_variant or self.base_map.variant_for_firmware(firmware)
        link = (
            self.configured_link
            or self.base_map.link_for(firmware, self.transport.unit_id)
            or self.base_map.connection.link
        )
        rmap = self.base_map.with_variant(variant) if variant else self.base_map
        self.rmap = rmap.with_link(link)
        self.transport.apply_timing(self.rmap.connection.model_copy(update=self.pinned))
        self.identity = Identity(
            oem=self.base_map.oem,
            model=model,
            serial=_text(values[ident.serial]),
            firmware=firmware,
            rated_power_kw=rated_kw,
            variant=variant,
            link=link,
        )
        return self.identity

    # -------------------------------------------------------------- telemetry
    async def read_telemetry(self) -> Telemetry:
        values = await self.read_points(telemetry_points(self.rmap))
        self.last_telemetry = decode_telemetry(self.rmap, values)
        return self.last_telemetry

    async def read_faults(self) -> list[Fault]:
        return decode_faults(self.rmap, await self.read_bank(fault_points(self.rmap)))

    # ---------------------------------------------------------------- control
    def plan_context(self) -> PlanContext:
        tel = self.last_telemetry
        return PlanContext(
            rated_power_kw=self.identity.rated_power_kw if self.identity else None,
            max_charge_kw=tel.max_charge_kw if tel else None,
            max_discharge_kw=tel.max_discharge_kw if tel else None,
        )

    def plan_command(self, cmd: Command) -> WritePlan:
        return plan_command(self.rmap, cmd, self.plan_context())

    def plan_heartbeat(self) -> WritePlan | None:
        return plan_heartbeat(self.rmap, self.plan_context())

    async def apply(self, plan: WritePlan) -> None:
        for write in plan.writes:
            await self.transport.write(write.fc, write.address, list(write.values))
            if write.delay_after_s:
                await asyncio.sleep(write.delay_after_s)

    async def read_setpoint_readback(self) -> float | None:
        """The battery power the inverter currently holds as its command (kW, + discharge)."""
        rb = self.rmap.control.readback
        names = [rb.direction.point]
        for src in (rb.charge_power, rb.discharge_power):
            names += [t.point for t in src.terms] + ([src.times] if src.times else [])
        values = await self.read_points(names)
        raw = values.get(rb.direction.point)
        if not isinstance(raw, float | int):
            return None
        direction = rb.direction.values.get(int(raw))
        if direction is None:
            return None
        if direction == 0:
            return 0.0
        src = rb.discharge_power if direction > 0 else rb.charge_power
        magnitude = canonical(self.rmap, src, values)
        return None if magnitude is None else direction * abs(magnitude)

    # -------------------------------------------- what the bridge asks of a controlled device
    async def read_due_telemetry(self) -> Telemetry:
        """One tiered poll: the points due now read, the rest at their latest value (HalError
        propagates; the poll counter only moves on success)."""
        rmap = self.rmap
        values = await self.read_points(self.polling.due(rmap))
        tel = self.polling.polled(rmap, values)
        self.last_telemetry = tel  # plan context (live limits), as read_telemetry does
        return tel

    async def read_frequency(self) -> float | None:
        """Grid frequency alone (one short read): an armed reserve's fast loop."""
        rmap = self.rmap
        names = self.polling.frequency_points(rmap)
        if not names:
            return None
        return self.polling.frequency(rmap, await self.read_points(names))

    def telemetry_ages_s(self) -> dict[CanonicalPoint, float]:
        """How old each canonical point's latest polled value is, seconds."""
        return self.polling.ages_s()

    @property
    def write_gap_s(self) -> float:
        """The map's minimum time between two writes."""
        return self.rmap.connection.write_gap_s

    def plan_update(self, cmd: Command, now: datetime, *, carry_heartbeat: bool) -> WritePlan:
        """``cmd``'s writes without those whose registers already hold the value (a power update
        is one write, not the OEM's whole sequence); ``carry_heartbeat``: the heartbeat taken
        along after them when it is getting old. WriteRefusedError as :meth:`plan_command`."""
        plan = self.plan_command(cmd)
        return self.book.update(plan, self._heartbeat(), now, carry=carry_heartbeat)

    def plan_keepalive(self, now: datetime) -> WritePlan | None:
        """The standalone heartbeat if one is due now (None: not due, or the map has none)."""
        return self.book.keepalive(self._heartbeat(), now)

    async def write(self, plan: WritePlan, now: datetime) -> None:
        """Apply ``plan`` and remember what the registers hold; a failed write (HalError,
        re-raised) leaves nothing trusted."""
        try:
            await self.apply(plan)
        except (HalError, asyncio.CancelledError):  # some registers may hold new values
            self.book.failed()
            raise
        self.book.wrote(plan, self._heartbeat(), now)

    def forget_held(self) -> None:
        """The registers may not hold our values any more (the inverter left remote control, a
        read-back disagreed): the next update writes its whole sequence."""
        self.book.failed()

    def link_counts(self) -> LinkCounts:
        """The transport's counts (``LinkCounters``: the bridge's /metrics)."""
        st = self.transport.stats
        return LinkCounts(st.requests, dict(st.errors), st.connects, st.replies, st.rtt_sum_s)

    def _heartbeat(self) -> WritePlan | None:
        try:
            return self.plan_heartbeat()
        except HalError:  # a heartbeat the plan context cannot fill: none to track
            return None


def _text(value: Value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return str(value)


def resolve_model(rmap: RegisterMap, value: Value) -> str:
    """Model point value -> model name; an unknown model is an error, never a default."""
    header = rmap.header
    if isinstance(value, str):
        for info in header.models:
            if info.name == value:
                return value
        if any(value.startswith(p) for p in header.model_prefixes):
            return value
        raise UnknownModelError(f"{rmap.oem}: model {value!r} is not covered by {rmap.file}")
    if isinstance(value, float | int):
        for info in header.models:
            if info.code is not None and info.code == int(value):
                return info.name
        raise UnknownModelError(f"{rmap.oem}: model code {int(value):#06x} is not in {rmap.file}")
    raise UnknownModelError(f"{rmap.oem}: model point is not available")
