"""A site's command pipeline: submit, dedupe, claim, apply, observe, finish.

* :meth:`CommandPipeline.submit` takes a command from the consumer: a redelivery of one still
  queued or in flight waits for the first copy's outcome; one already stored re-sends its
  stored result (or, claimed but never completed, is reported FAILED: at most once); early
  refusals (foreign site, expired) are reported at once; the rest is claimed on disk and
  queued (STOP and SAFE_MODE overtake, :class:`edge.bridge.scheduler.CommandQueue`).
* :meth:`CommandPipeline.run` applies queued commands one at a time: the claim is durable
  before the first write; the gate (:func:`edge.bridge.safety.check`) with live limits; what
  the command makes of what is in force (:func:`edge.bridge.effects.effect`: arms, disarms
  and orders per product, clamped to the room there is); the power that gives
  (:meth:`edge.bridge.reserve.ReserveLoop.target`), or the hand-back to the site's own mode
  when nothing is left in force; the plan and its writes under the write path's lock (a
  power update leaves out what the device holds and carries its heartbeat); then the
  read-back (:func:`edge.bridge.observe.observe`) in the background. What is in force changes
  only once the writes went out.
* :meth:`CommandPipeline.finish` appends the CommandResult and the completion; the consumer's
  offsets are released (``on_persisted``) only once the completion is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from contract.enums import CommandKind, CommandStatus
from edge.bridge.diskwriter import DiskWriter, log_failure
from edge.bridge.effects import Effect, Room, effect
from edge.bridge.events import RESULT, Outcome, result_record
from edge.bridge.idempotency import StoredCommand, Tracking
from edge.bridge.model import BridgeCommand
from edge.bridge.observe import CommandTrace, Written, observe
from edge.bridge.safety import Accepted, LiveLimits, Rejected, check, power_limits
from edge.bridge.scheduler import CommandQueue
from edge.bridge.shared import SiteShared
from edge.bridge.sink import EventSink
from edge.bridge.stack import InForce, Target
from edge.hal.errors import HalError, WriteRefusedError
from edge.hal.points import Command

log = logging.getLogger(__name__)

Persisted = Callable[[Tracking | None], None]

Trace = Callable[[CommandTrace], None]
Reported = Callable[[Outcome], None]


class Targeting(Protocol):
    """What the pipeline asks of the reserve loop (:class:`edge.bridge.reserve.ReserveLoop`)."""

    def target(
        self, frequency_hz: float | None, now: datetime, in_force: InForce | None = None
    ) -> Target: ...

    def in_force(self) -> None: ...


def _accepted(
    cmd: BridgeCommand, eff: Effect, target: Target | None, written_kw: float | None
) -> Accepted:
    """What the read-back judges: the power written and, when something was clamped, what and
    why (the command's own clamp first, else the bounds cutting the sum)."""
    cause, reason = eff.cause, eff.reason
    if cause is None and target is not None and target.cause is not None:
        cause = target.cause
        raw = target.baseline_kw + sum(target.wanted.values(), 0.0)
        reason = f"baseline + responses + orders {raw:.3f} kW bounded by {cause}"
    return Accepted(cmd, eff.requested_kw, written_kw, cause, reason)


def _rejected(cmd: BridgeCommand, reason: str) -> Outcome:
    return Outcome(
        cmd.command_id,
        cmd.site_id,
        CommandStatus.REJECTED,
        requested_kw=cmd.power_kw,
        reason=reason,
    )


class CommandPipeline:
    """One site's commands from the consumer to their stored outcome."""

    def __init__(
        self,
        shared: SiteShared,
        reserve: Targeting,
        *,
        writer: DiskWriter,
        sink: EventSink,
        on_persisted: Persisted | None = None,
    ) -> None:
        self._shared = shared
        self._reserve = reserve
        self._writer = writer
        self._store = writer.store
        self._sink = sink
        self._on_persisted = on_persisted or (lambda _t: None)
        self.on_trace: Trace | None = None  # per command: stage instants (time.monotonic)
        self.on_outcome: Reported | None = None  # per outcome reported (edge.bridge.metrics)
        self._queue = CommandQueue()
        self._received: dict[str, float] = {}
        self._tracking: dict[str, Tracking | None] = {}
        self._dups: dict[str, list[Tracking | None]] = {}
        self._claims: dict[str, asyncio.Future[StoredCommand | None]] = {}
        self._durable: dict[str, asyncio.Future[None]] = {}  # completions not yet on disk
        self._observers: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._busy = False
        self.applied = 0  # commands whose writes went out

    @property
    def queued(self) -> int:
        """Commands received and not yet being applied."""
        return len(self._queue)

    @property
    def applying(self) -> bool:
        """A command is being applied right now."""
        return self._busy

    # ------------------------------------------------------------ commands in
    def submit(self, cmd: BridgeCommand, tracking: Tracking | None = None) -> None:
        """Take a command from the consumer: dedupe, refuse early, or queue it."""
        if self._seen(cmd.command_id, cmd.site_id, cmd.power_kw, tracking):
            return
        site = self._shared.site
        now = self._shared.clock()
        # Early refusal (foreign, expired) needs no live data; bounds are applied at write time.
        decision = check(cmd, site, now, power_limits(site, LiveLimits()))
        claim = self._writer.claim(cmd.command_id, cmd.site_id, cmd.valid_until, now, tracking)
        if isinstance(decision, Rejected):
            claim.add_done_callback(log_failure)  # its completion, queued after it, reports
            self.finish(_rejected(cmd, decision.reason), tracking)
            return
        self._claims[cmd.command_id] = claim
        self._tracking[cmd.command_id] = tracking
        if self.on_trace is not None:
            self._received[cmd.command_id] = time.monotonic()
        self._dups[cmd.command_id] = []
        for old in self._queue.push(cmd):
            reason = f"superseded by {cmd.kind} {cmd.command_id} before it was applied"
            self._claims.pop(old.command_id).add_done_callback(log_failure)
            self._received.pop(old.command_id, None)
            self.finish(_rejected(old, reason), self._tracking.pop(old.command_id, None))
        self._wake.set()

    def refuse(
        self,
        command_id: str,
        site_id: str,
        valid_until: datetime,
        reason: str,
        tracking: Tracking | None = None,
    ) -> None:
        """A command the bridge cannot act on (invalid for it, ``reason`` says why): REJECTED,
        claimed like any other so a redelivery re-sends the same result."""
        if self._seen(command_id, site_id, None, tracking):
            return
        now = self._shared.clock()
        claim = self._writer.claim(command_id, site_id, valid_until, now, tracking)
        claim.add_done_callback(log_failure)  # its completion, queued after it, reports
        outcome = Outcome(command_id, site_id, CommandStatus.REJECTED, reason=reason)
        self.finish(outcome, tracking)

    def _seen(
        self, command_id: str, site_id: str, power_kw: float | None, tracking: Tracking | None
    ) -> bool:
        """A command id seen before: its first copy's outcome answers (True), never a write."""
        if command_id in self._dups:
            # Redelivered while still queued or in flight here: the first copy reports; this
            # offset is released together with it.
            self._dups[command_id].append(tracking)
            return True
        stored = self._store.get(command_id)
        if stored is None:
            return False
        if stored.completed and stored.result is not None and stored.result_event_id:
            # Re-send the stored result with its original event id (consumers dedupe).
            self._sink.append(RESULT, stored.site_id, stored.result_event_id, stored.result)
        elif not stored.completed:
            self.finish(
                Outcome(
                    command_id,
                    site_id,
                    CommandStatus.FAILED,
                    requested_kw=power_kw,
                    reason="interrupted before its outcome was stored; "
                    "not applied again (at most once)",
                ),
                tracking,
            )
            return True
        self._when_durable(command_id, [tracking])
        return True

    # ------------------------------------------------------------ outcomes out
    def finish(self, outcome: Outcome, tracking: Tracking | None) -> None:
        """Report ``outcome`` and store the completion; offsets follow once it is on disk."""
        record = result_record(outcome, self._shared.clock())
        value = self._sink.codec.encode(RESULT, record)
        event_id = str(record["event_id"])
        # The result record first, then the completion: the group commit that makes the
        # completion durable fsyncs the outbox's critical lane after it (offsets wait for both).
        self._sink.append(RESULT, outcome.site_id, event_id, value)
        done = self._writer.complete(
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
        if self.on_outcome is not None:
            self.on_outcome(outcome)

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
                self._shared.site.site_id,
                command_id,
                None if done.cancelled() else done.exception(),
            )
            return
        for t in trackings:
            self._on_persisted(t)

    def _when_durable(self, command_id: str, trackings: list[Tracking | None]) -> None:
        """Release offsets once the command's stored outcome is on disk (now, if it is)."""
        pending = self._durable.get(command_id)
        if pending is None or pending.done():
            for t in trackings:
                self._on_persisted(t)
            return
        pending.add_done_callback(lambda f: self._persisted(command_id, f, trackings))

    # --------------------------------------------------------------- applying
    async def run(self) -> None:
        """Apply queued commands one at a time, forever (STOP jumps the queue)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while (cmd := self._queue.pop()) is not None:
                self._busy = True
                tracking = self._tracking.pop(cmd.command_id, None)
                claim = self._claims.pop(cmd.command_id, None)
                try:
                    if claim is not None:
                        await claim  # at most once: the claim is on disk before any write
                    await self.apply(cmd, tracking, claimed=time.monotonic())
                except Exception as exc:  # a bug must not stop the site: report, go on
                    log.exception("site %s: command %s", self._shared.site.site_id, cmd.command_id)
                    failed = Outcome(
                        cmd.command_id, cmd.site_id, CommandStatus.FAILED, reason=repr(exc)
                    )
                    with contextlib.suppress(Exception):
                        self.finish(failed, tracking)
                finally:
                    self._busy = False

    def _hal_command(
        self, cmd: BridgeCommand, eff: Effect, now: datetime
    ) -> tuple[Command, Target | None]:
        """The device command of an effect: the hand-back when nothing is left in force, else
        the power to hold (baseline + responses at the frequency measured now + orders)."""
        if eff.in_force.empty:
            return self._shared.safe_command(), None
        if cmd.kind is CommandKind.STOP:
            # "Zero power now": the map's idle sequence holds 0 kW under remote control. (A
            # map's stop sequence may hand the site back to self-consumption instead, which
            # keeps the battery moving; that is what SAFE_MODE is for.)
            return Command.set_power(0.0), None
        tel = self._shared.telemetry
        target = self._reserve.target(tel.frequency_hz if tel else None, now, eff.in_force)
        return Command.set_power(target.total_kw), target

    async def apply(
        self, cmd: BridgeCommand, tracking: Tracking | None = None, claimed: float | None = None
    ) -> None:
        """Gate -> effect -> plan -> write -> (observe in the background) -> CommandResult."""
        sh = self._shared
        received = self._received.pop(cmd.command_id, None)
        now = sh.clock()
        if sh.telemetry is None:  # no poll yet: read now, bounds need SoC and BMS limits
            try:
                sh.telemetry = await sh.device.read_due_telemetry()
            except HalError as exc:
                sh.link.failed(exc)
        sh.limits = sh.live_limits() if sh.telemetry is not None else None
        decision = check(cmd, sh.site, now, sh.limits)
        if isinstance(decision, Rejected):
            self.finish(_rejected(cmd, decision.reason), tracking)
            return
        current = sh.setpoint.in_force.expire(now)
        within = sh.bounds()
        room = Room(sh.baseline(now, current, within).kw, within, sh.energy())
        eff = effect(cmd, current, room, now)
        if isinstance(eff, str):
            self.finish(_rejected(cmd, eff), tracking)
            return
        async with sh.path.lock:
            try:
                hal_cmd, target = self._hal_command(cmd, eff, now)
                if target is not None:  # not STOP (the whole idle sequence), not a hand-back
                    # a power update is one write, not the sequence; the heartbeat rides along
                    plan = sh.device.plan_update(hal_cmd, now, carry_heartbeat=True)
                else:
                    plan = sh.device.plan_command(hal_cmd)
            except WriteRefusedError as exc:
                self.finish(_rejected(cmd, f"refused by the register map: {exc}"), tracking)
                return
            start_kw = sh.battery_kw()
            sent = time.monotonic()
            try:
                acked = await sh.path.send(plan, now)
                acked_mono = sh.path.written_mono
            except HalError as exc:
                self.finish(
                    Outcome(
                        cmd.command_id,
                        cmd.site_id,
                        CommandStatus.FAILED,
                        requested_kw=eff.requested_kw,
                        written_kw=hal_cmd.power_kw,
                        reason=f"write failed: {exc}",
                        register_writes=len(plan.writes),
                    ),
                    tracking,
                )
                return
        if self.on_trace is not None and received is not None:
            site_id = sh.site.site_id
            claim_t = claimed if claimed is not None else received
            self.on_trace(
                CommandTrace(site_id, cmd.command_id, received, claim_t, sent, time.monotonic())
            )
        latency_ms = (acked - cmd.event_time).total_seconds() * 1000.0
        written = None if eff.in_force.empty else hal_cmd.power_kw  # None: handed back
        sh.setpoint.commanded(cmd, eff.in_force, written, acked)
        self._reserve.in_force()  # the fast loop starts once an arm is in force
        self.applied += 1
        accepted = _accepted(cmd, eff, target, written)
        task = asyncio.create_task(
            self._observe(
                Written(
                    cmd,
                    accepted,
                    hal_cmd,
                    start_kw,
                    len(plan.writes),
                    acked,
                    tracking,
                    self.applied,
                    acked_mono=acked_mono,
                ),
                latency_ms,
            )
        )
        self._observers.add(task)
        task.add_done_callback(self._observers.discard)

    async def _observe(self, written: Written, latency_ms: float) -> None:
        outcome = await observe(self._shared, written, latency_ms, lambda: self.applied)
        self.finish(outcome, written.tracking)

    # --------------------------------------------------------------- lifecycle
    @property
    def idle(self) -> bool:
        """No command queued, being written or being observed, every outcome on disk."""
        return not (
            len(self._queue)
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
