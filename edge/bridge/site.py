"""One site's controller: commands through the safety gate to the HAL, telemetry and faults out.

It talks to the inverter only through the HAL capability protocol (``BatteryDevice``) and to
the outside only through an :class:`EventSink` (the outbox). Three coroutines run per site:
:meth:`SiteController.run_commands` (applies queued commands in order, STOP first; a command's
claim is on disk before its first write), :meth:`SiteController.run_telemetry` (polls at the
interval, tiered: :mod:`edge.bridge.polling`; publishes, enforces expiry, runs the armed droop)
and :meth:`SiteController.run_reserve` (while a reserve is armed, the frequency alone every
``reserve_poll_s``). Writes are serialised by one lock; set-power and droop writes leave out
registers the device already holds (:mod:`edge.bridge.registers`). Outcomes reach the disk in
the disk thread (:mod:`edge.bridge.diskwriter`); offsets are released once they are there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge.bridge.config import SafeMode, SiteConfig
from edge.bridge.diskwriter import DiskWriter, log_failure
from edge.bridge.droop import ReserveController, needs_write
from edge.bridge.events import (
    FAULT,
    RESULT,
    STATUS,
    TELEMETRY,
    LinkStatus,
    Outcome,
    TelemetryContext,
    fault_record,
    result_record,
    status_record,
    telemetry_record,
)
from edge.bridge.fastloop import run_reserve
from edge.bridge.idempotency import StoredCommand, Tracking
from edge.bridge.keepalive import Heartbeat, heartbeat_plan, keep_alive
from edge.bridge.link import CONTROLLED, Link, Rediscover
from edge.bridge.model import BridgeCommand, Kind, PowerLimits, Status
from edge.bridge.observe import CommandTrace, Written, observe
from edge.bridge.override import ResponseTiming
from edge.bridge.polling import TieredReader
from edge.bridge.registers import HeldRegisters
from edge.bridge.safety import Accepted, LiveLimits, Rejected, check, headroom, power_limits
from edge.bridge.scheduler import Action, CommandQueue, SiteState, decide
from edge.bridge.sink import EventSink
from edge.hal.capabilities import BatteryDevice
from edge.hal.errors import HalError, WriteRefusedError
from edge.hal.points import Command, Fault, Identity, Telemetry, WritePlan

log = logging.getLogger(__name__)

Persisted = Callable[[Tracking | None], None]

Trace = Callable[[CommandTrace], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class SiteController:
    """Everything the bridge does for one site."""

    def __init__(
        self,
        site: SiteConfig,
        device: BatteryDevice,
        *,
        writer: DiskWriter,
        sink: EventSink,
        telemetry_interval_s: float = 1.0,
        status_interval_s: float = 30.0,
        clock: Callable[[], datetime] = _utcnow,
        on_persisted: Persisted | None = None,
        rediscover: Rediscover | None = None,
    ) -> None:
        self.site = site
        self.link = Link(site.host, site.port, site.unit_id)
        self.rediscover = rediscover
        self.device = device
        self.reader = TieredReader(device)
        self.writer = writer
        self.store = writer.store
        self.sink = sink
        self.interval_s = telemetry_interval_s
        self.status_interval_s = status_interval_s
        self.clock = clock
        self.on_persisted = on_persisted or (lambda _t: None)
        self.timing = ResponseTiming(
            time_constant_s=site.response_time_constant_s,
            dead_time_s=site.response_dead_time_s,
            tolerance_kw=site.response_tolerance_kw,
        )
        self.queue = CommandQueue()
        self.state = SiteState()
        self.reserve = ReserveController()
        self.held = HeldRegisters(site.skip_held_writes_s)
        self.armed_event = asyncio.Event()  # wakes the reserve's fast loop
        self.written_mono = float("-inf")  # loop time of the last write (write gap)
        self.base_kw = 0.0
        self.last_written_kw: float | None = None
        self.identity: Identity | None = None
        self.telemetry: Telemetry | None = None
        self.faults: list[Fault] = []
        self.limits: PowerLimits | None = None
        self.droop_writes = 0
        self.reasserts = 0
        self._faults_at: datetime | None = None
        self.written_at: datetime | None = None
        self.reassert_at: datetime | None = None
        self.heartbeat = Heartbeat(site.keepalive_s)
        self.on_trace: Trace | None = None  # per command: stage instants (time.monotonic)
        self._received: dict[str, float] = {}
        self._tracking: dict[str, Tracking | None] = {}
        self._dups: dict[str, list[Tracking | None]] = {}
        self._claims: dict[str, asyncio.Future[StoredCommand | None]] = {}
        self._durable: dict[str, asyncio.Future[None]] = {}  # completions not yet on disk
        self.applied_seq = 0
        self._wake = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._observers: set[asyncio.Task[None]] = set()
        self._busy = False

    # ------------------------------------------------------------ commands in
    def submit(self, cmd: BridgeCommand, tracking: Tracking | None = None) -> None:
        """Take a command from the consumer: dedupe, refuse early, or queue it."""
        if cmd.command_id in self._dups:
            # Redelivered while still queued or in flight here: the first copy reports; this
            # offset is released together with it.
            self._dups[cmd.command_id].append(tracking)
            return
        stored = self.store.get(cmd.command_id)
        if stored is not None:
            if stored.completed and stored.result is not None and stored.result_event_id:
                # Re-send the stored result with its original event id (consumers dedupe).
                self.sink.append(RESULT, stored.site_id, stored.result_event_id, stored.result)
            elif not stored.completed:
                self.finish(
                    Outcome(
                        cmd.command_id,
                        cmd.site_id,
                        Status.FAILED,
                        requested_kw=cmd.power_kw,
                        reason="interrupted before its outcome was stored; "
                        "not applied again (at most once)",
                    ),
                    tracking,
                )
                return
            self._when_durable(cmd.command_id, [tracking])
            return
        now = self.clock()
        # Early refusal (foreign, expired) needs no live data; bounds are applied at write time.
        decision = check(cmd, self.site, now, power_limits(self.site, LiveLimits()))
        claim = self.writer.claim(cmd.command_id, cmd.site_id, cmd.valid_until, now, tracking)
        if isinstance(decision, Rejected):
            claim.add_done_callback(log_failure)  # its completion, queued after it, reports
            self.finish(self._rejected(cmd, decision.reason), tracking)
            return
        self._claims[cmd.command_id] = claim
        self._tracking[cmd.command_id] = tracking
        if self.on_trace is not None:
            self._received[cmd.command_id] = time.monotonic()
        self._dups[cmd.command_id] = []
        for old in self.queue.push(cmd):
            reason = f"superseded by {cmd.kind} {cmd.command_id} before it was applied"
            self._claims.pop(old.command_id).add_done_callback(log_failure)
            self._received.pop(old.command_id, None)
            self.finish(self._rejected(old, reason), self._tracking.pop(old.command_id, None))
        self._wake.set()

    @staticmethod
    def _rejected(cmd: BridgeCommand, reason: str) -> Outcome:
        return Outcome(
            cmd.command_id, cmd.site_id, Status.REJECTED, requested_kw=cmd.power_kw, reason=reason
        )

    def finish(self, outcome: Outcome, tracking: Tracking | None) -> None:
        record = result_record(outcome, self.clock())
        value = self.sink.codec.encode(RESULT, record)
        event_id = str(record["event_id"])
        # The result record first, then the completion: the group commit that makes the
        # completion durable fsyncs the outbox's critical lane after it (offsets wait for both).
        self.sink.append(RESULT, outcome.site_id, event_id, value)
        done = self.writer.complete(
            outcome.command_id,
            outcome.site_id,
            status=outcome.status.value,
            result_event_id=event_id,
            result=value,
            tracking=tracking,
        )
        self._durable[outcome.command_id] = done
        trackings = [tracking, *self._dups.pop(outcome.command_id, [])]
        done.add_done_callback(lambda f: self._persisted(outcome.command_id, f, trackings))

    def _persisted(
        self, command_id: str, done: asyncio.Future[None], trackings: list[Tracking | None]
    ) -> None:
        if self._durable.get(command_id) is done:
            del self._durable[command_id]
        if done.cancelled() or done.exception() is not None:
            # Not on disk: the offset is not committed; a redelivery finds the claim (at most
            # once) and reports the command FAILED.
            log.error(
                "site %s: outcome of %s not stored: %r",
                self.site.site_id,
                command_id,
                None if done.cancelled() else done.exception(),
            )
            return
        for t in trackings:
            self.on_persisted(t)

    def _when_durable(self, command_id: str, trackings: list[Tracking | None]) -> None:
        """Release offsets once the command's stored outcome is on disk (now, if it is)."""
        pending = self._durable.get(command_id)
        if pending is None or pending.done():
            for t in trackings:
                self.on_persisted(t)
            return
        pending.add_done_callback(lambda f: self._persisted(command_id, f, trackings))

    async def run_commands(self) -> None:
        """Apply queued commands one at a time, forever (STOP jumps the queue)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (cmd := self.queue.pop()) is not None:
                self._busy = True
                tracking = self._tracking.pop(cmd.command_id, None)
                claim = self._claims.pop(cmd.command_id, None)
                try:
                    if claim is not None:
                        await claim  # at most once: the claim is on disk before any write
                    await self.apply(cmd, tracking, claimed=time.monotonic())
                except Exception as exc:  # a bug must not stop the site: report, go on
                    log.exception("site %s: command %s", self.site.site_id, cmd.command_id)
                    failed = Outcome(cmd.command_id, cmd.site_id, Status.FAILED, reason=repr(exc))
                    with contextlib.suppress(Exception):
                        self.finish(failed, tracking)
                finally:
                    self._busy = False

    # --------------------------------------------------------------- applying
    def _live_limits(self) -> PowerLimits:
        tel = self.telemetry
        live = LiveLimits(
            soc_pct=tel.soc_pct if tel else None,
            bms_max_charge_kw=tel.max_charge_kw if tel else None,
            bms_max_discharge_kw=tel.max_discharge_kw if tel else None,
        )
        rated = self.identity.rated_power_kw if self.identity else None
        return power_limits(self.site, live, rated, rated)

    def _hal_command(self, cmd: BridgeCommand, decision: Accepted, now: datetime) -> Command:
        if cmd.kind is Kind.SET_POWER:
            return Command.set_power(decision.written_kw or 0.0)
        if cmd.kind is Kind.STOP:
            # "Zero power now": the map's idle sequence holds 0 kW under remote control. (A
            # map's stop sequence may hand the site back to self-consumption instead, which
            # keeps the battery moving; that is what SAFE_MODE is for.)
            return Command.set_power(0.0)
        if cmd.kind is Kind.SAFE_MODE:
            return self._safe_command()
        # ARM_RESERVE: hold the base, plus the response at the frequency measured now.
        if cmd.reserve is None:  # BridgeCommand refuses this at construction
            raise WriteRefusedError("ARM_RESERVE without reserve parameters")
        self.reserve.arm(cmd.reserve, cmd.valid_until, cmd.command_id)
        freq = self.telemetry.frequency_hz if self.telemetry else None
        target = self.reserve.target(self.base_kw, freq, now, self._live_limits())
        return Command.set_power(target.total_kw)

    def _safe_command(self) -> Command:
        if self.site.safe_mode is SafeMode.SELF_CONSUMPTION:
            return Command.safe_mode()
        return Command.set_power(0.0)  # STANDBY: hold zero

    async def apply(
        self, cmd: BridgeCommand, tracking: Tracking | None = None, claimed: float | None = None
    ) -> None:
        """Gate -> plan -> write -> (observe in the background) -> CommandResult."""
        received = self._received.pop(cmd.command_id, None)
        now = self.clock()
        if self.telemetry is None:  # no poll yet: read now, bounds need SoC and BMS limits
            try:
                self.telemetry = await self.reader.read()
            except HalError as exc:
                self.link.failed(exc)
        self.limits = self._live_limits() if self.telemetry is not None else None
        decision = check(cmd, self.site, now, self.limits)
        if isinstance(decision, Rejected):
            self.finish(self._rejected(cmd, decision.reason), tracking)
            return
        if cmd.kind in (Kind.STOP, Kind.SAFE_MODE):
            self.reserve.disarm()
        async with self._write_lock:
            try:
                hal_cmd = self._hal_command(cmd, decision, now)
                plan = self.device.plan_command(hal_cmd)
            except WriteRefusedError as exc:
                self.finish(self._rejected(cmd, f"refused by the register map: {exc}"), tracking)
                return
            if cmd.kind in (Kind.SET_POWER, Kind.ARM_RESERVE):
                plan = self.held.trim(plan)  # a power update is one write, not the sequence
                plan = self.heartbeat.ride_along(plan, heartbeat_plan(self), now)
            start_kw = self._battery_kw()
            sent = time.monotonic()
            try:
                await self.device.apply(plan)
                self.held.wrote(plan)
                self.heartbeat.wrote(plan, heartbeat_plan(self), now)
            except HalError as exc:
                self.held.forget()
                self.link.failed(exc)
                self.finish(
                    Outcome(
                        cmd.command_id,
                        cmd.site_id,
                        Status.FAILED,
                        requested_kw=decision.requested_kw,
                        written_kw=hal_cmd.power_kw,
                        reason=f"write failed: {exc}",
                        register_writes=len(plan.writes),
                    ),
                    tracking,
                )
                return
            acked = self.written_at = self.clock()
            self.written_mono = asyncio.get_running_loop().time()
        if self.on_trace is not None and received is not None:
            site_id = self.site.site_id
            claim_t = claimed if claimed is not None else received
            self.on_trace(
                CommandTrace(site_id, cmd.command_id, received, claim_t, sent, time.monotonic())
            )
        latency_ms = (acked - cmd.event_time).total_seconds() * 1000.0
        self._after_write(cmd, hal_cmd)
        self.applied_seq += 1
        written = Written(cmd, decision, hal_cmd, start_kw, len(plan.writes), acked, tracking)
        task = asyncio.create_task(observe(self, written, latency_ms))
        self._observers.add(task)
        task.add_done_callback(self._observers.discard)

    def _after_write(self, cmd: BridgeCommand, hal_cmd: Command) -> None:
        if cmd.kind is Kind.SAFE_MODE:
            self.state = SiteState(None, in_safe_mode=True)
            self.base_kw = 0.0
            self.last_written_kw = None
            return
        if cmd.kind is Kind.SET_POWER:
            self.base_kw = hal_cmd.power_kw
        elif cmd.kind is Kind.STOP:
            self.base_kw = 0.0
        self.last_written_kw = hal_cmd.power_kw
        self.state = SiteState(cmd, in_safe_mode=False)
        if self.reserve.armed is not None:
            self.armed_event.set()  # the fast loop starts once the arm command is in force

    def _battery_kw(self) -> float:
        tel = self.telemetry
        return tel.battery_power_kw if tel and tel.battery_power_kw is not None else 0.0

    @property
    def idle(self) -> bool:
        """No command queued, being written or being observed."""
        return not (
            len(self.queue)
            or self._busy
            or self._observers
            or self._wake.is_set()
            or any(not f.done() for f in self._durable.values())
        )

    async def stop_observers(self) -> None:
        """Shutdown: stop read-backs still waiting (their commands stay CLAIMED on disk: a
        redelivery reports them FAILED, never writes them again)."""
        for task in list(self._observers):
            task.cancel()
        await asyncio.gather(*self._observers, return_exceptions=True)

    async def drain(self, poll_s: float = 0.02) -> None:
        """Wait until every submitted command has its outcome (tests, shutdown)."""
        while not self.idle:  # noqa: ASYNC110  # idle has three sources; polling is simplest
            await asyncio.sleep(poll_s)

    # -------------------------------------------------------------- telemetry
    def link_state(self) -> str:
        return self.link.state(polled=self.telemetry is not None)

    @property
    def errors(self) -> int:
        return self.link.errors

    @property
    def port(self) -> int:
        return self.link.port

    async def _maybe_rediscover(self, now: datetime) -> None:
        """OFFLINE with a known serial: look for the device elsewhere (rate limited)."""
        if self.rediscover is None or self.identity is None or self.link_state() != "OFFLINE":
            return
        serial = self.identity.serial
        every = self.site.rediscover_every_s
        found = await self.link.rediscover_if_due(self.rediscover, serial, now, every)
        if found is not None:
            log.info("site %s: %s found at %s:%s", self.site.site_id, serial, *found)

    async def run_telemetry(self, phase_s: float = 0.0) -> None:
        """Poll every interval, the first poll ``phase_s`` late (staggers a bridge's sites)."""
        loop = asyncio.get_running_loop()
        if phase_s > 0:
            await asyncio.sleep(phase_s)
        next_at = loop.time()
        while True:
            try:
                await self.tick()
            except Exception:  # e.g. OutboxFullError: keep polling and enforcing
                log.exception("site %s: telemetry tick", self.site.site_id)
            next_at += self.interval_s
            delay = next_at - loop.time()
            if delay < 0:
                next_at, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    async def tick(self) -> None:
        """One poll: read, publish, enforce expiry, run the droop."""
        now = self.clock()
        t0 = asyncio.get_running_loop().time()
        try:
            if self.identity is None:
                self.identity = await self.device.identify()
            tel = await self.reader.read()
            faults = self.faults
            if self._since(now, self._faults_at) >= self.site.fault_interval_s:
                faults, self._faults_at = await self.device.read_faults(), now
        except HalError as exc:
            self.link.failed(exc)
            await self._maybe_rediscover(now)
            self._publish_status(now)
            return
        self.link.ok((asyncio.get_running_loop().time() - t0) * 1000.0)
        self.telemetry = tel
        if tel.mode not in CONTROLLED:
            self.held.forget()  # out of remote control: its registers are not ours any more
        self.limits = self._live_limits()
        if {f.code for f in faults} != {f.code for f in self.faults}:
            self.sink.emit(FAULT, fault_record(self.site.site_id, faults, self.faults, now))
            self.writer.sync(bulk=False).add_done_callback(log_failure)  # critical: on disk now
            self.faults = list(faults)
        await self._enforce(now, tel)
        up, down = headroom(self.limits, tel.battery_power_kw or 0.0)
        ctx = TelemetryContext(
            headroom_up_kw=up,
            headroom_down_kw=down,
            max_discharge_kw=self.limits.max_discharge_kw,
            max_charge_kw=self.limits.max_charge_kw,
            setpoint_kw=self.last_written_kw,
            active_command_id=self.state.active.command_id if self.state.active else None,
            reserve_armed=self.reserve.product(now),
            faulted=bool(self.faults),
        )
        self.sink.emit(TELEMETRY, telemetry_record(self.site.site_id, self.identity, tel, ctx, now))
        self._publish_status(now)

    async def _enforce(self, now: datetime, tel: Telemetry) -> None:
        self.reserve.expire(now)
        if decide(self.state, now, len(self.queue)) is Action.REVERT_TO_SAFE_MODE:
            log.info("site %s: command expired, back to safe mode", self.site.site_id)
            self.reserve.disarm()
            await self.write(self._safe_command())
            self.state = SiteState(None, in_safe_mode=True)
            self.base_kw, self.last_written_kw = 0.0, None
            return
        if self.state.in_safe_mode:
            return
        if await keep_alive(self, now, tel) or self.reserve.armed is None or self.limits is None:
            return
        target = self.reserve.target(self.base_kw, tel.frequency_hz, now, self.limits)
        if needs_write(self.last_written_kw, target.total_kw, self.site.min_step_kw):
            await self.droop_write(target.total_kw)

    async def run_reserve(self) -> None:
        """The armed reserve's fast frequency loop (:func:`edge.bridge.fastloop.run_reserve`)."""
        await run_reserve(self)

    async def droop_write(self, target_kw: float) -> None:
        """Write the droop target (only what changes) and remember it."""
        if await self.write(Command.set_power(target_kw), trim=True):
            self.last_written_kw = target_kw
            self.droop_writes += 1

    def _since(self, now: datetime, t: datetime | None) -> float:
        return float("inf") if t is None else (now - t).total_seconds()

    async def write(self, cmd: Command, *, trim: bool = False) -> bool:
        """Plan and write ``cmd``; ``trim``: leave out writes the device already holds."""
        try:
            plan = self.device.plan_command(cmd)
        except HalError as exc:
            self.link.failed(exc)
            return False
        return await self.apply_plan(self.held.trim(plan) if trim else plan)

    async def apply_plan(self, plan: WritePlan) -> bool:
        async with self._write_lock:
            try:
                await self.device.apply(plan)
                self.held.wrote(plan)
                self.heartbeat.wrote(plan, heartbeat_plan(self), self.clock())
            except HalError as exc:
                self.held.forget()
                self.link.failed(exc)
                return False
            self.written_mono = asyncio.get_running_loop().time()
        self.written_at = self.clock()
        return True

    def _publish_status(self, now: datetime) -> None:
        link, ident = self.link, self.identity
        st = LinkStatus(
            state=self.link_state(),
            host=link.host,
            port=link.port,
            unit_id=link.unit_id,
            serial=ident.serial if ident else None,
            error_count=link.errors,
            last_error=link.last_error,
            rtt_ms=link.rtt_ms,
            outbox_depth=self.sink.outbox.depth,
            outbox_dropped=self.sink.outbox.dropped,
        )
        if link.status_due(st, now, self.status_interval_s):
            self.sink.emit(STATUS, status_record(self.site.site_id, st, now))
