"""The demo's scenario driver: plays the phases and incidents against the running fleet.

:class:`Driver` feeds frequency traces to every simulator and sends the scenario's
``MarketActivation``/``ReserveAssignment`` events (:class:`Producer`: encoded with the
project codec, keyed per the topic table), and applies each incident at its time: to a
site (``SimFleet.apply``) or, for ``worker_crash``, to the streams workers (``on_worker_crash``:
the demo's :class:`~flowerhub.demo.workers.WorkerPool` kills the leader). Each applied
frequency step and the fleet's power go to the phase's test rig log
(``flowerhub.demo.testlog``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from flowerhub.demo.armed import ImportMeter, arm, armed_kw, hold
from flowerhub.demo.scenario import (
    FrequencyPhase,
    HoldPhase,
    IncidentKind,
    OrderPhase,
    Scenario,
)
from flowerhub.demo.sims import SimFleet
from flowerhub.demo.testlog import RigLog

FLEET_ID = "flowerhub"
STEP_S = 0.1  # frequency trace update period (the simulators' register, read at each poll)


class DriverError(RuntimeError):
    """The scenario could not be played as written (the message says why)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Producer:
    """Encodes events with the project codec and sends them keyed per the topic table."""

    def __init__(self, kafka: KafkaSettings, prefix: str) -> None:
        self.prefix = prefix
        self.kafka = kafka
        self._producer = clients.producer(kafka)

    async def start(self) -> None:
        await clients.start(self._producer, self.kafka)

    async def stop(self) -> None:
        await clients.stop(self._producer)

    async def send(self, event: str, **fields: Any) -> dict[str, Any]:
        from contract.codec import encode, new_event
        from contract.topics import topic_for_event

        record = new_event(event, **fields)
        row = topic_for_event(event)
        await self._producer.send_and_wait(
            row.full_name(self.prefix), value=encode(event, record), key=row.key_of(record)
        )
        return record


class Driver:
    """Plays the scenario against the running fleet."""

    def __init__(
        self,
        scenario: Scenario,
        fleet: SimFleet,
        producer: Producer,
        progress: Callable[[str], None],
        speed: float,
        *,
        on_worker_crash: Callable[[], Awaitable[str]] | None = None,
    ) -> None:
        self.scenario = scenario
        self.fleet = fleet
        self.producer = producer
        self.progress = progress
        self.speed = speed
        self.on_worker_crash = on_worker_crash
        self.sent: list[dict[str, Any]] = []
        self.rigs: list[RigLog] = []  # applied frequency + simulators' power, per phase
        self.meter = ImportMeter()  # the armed homes' import over the hold phases

    def _sleep_s(self, scenario_s: float) -> float:
        return max(0.0, scenario_s / self.speed)

    async def run(self) -> None:
        incidents = sorted(self.scenario.incidents, key=lambda i: i.at_s)
        t0 = time.monotonic()
        pending = asyncio.create_task(self._incidents(incidents, t0))
        try:
            n, span = len(self.fleet.specs), self._sleep_s(self.scenario.duration_s)
            self.sent += await arm(
                self.scenario.reserves,
                self.producer,
                fleet_id=FLEET_ID,
                sites=n,
                duration_s=span,
                progress=self.progress,
            )
            for start, phase in self.scenario.phase_starts():
                wait = t0 + self._sleep_s(start) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if isinstance(phase, FrequencyPhase):
                    await self._frequency(phase)
                elif isinstance(phase, HoldPhase):
                    await hold(phase, self.fleet, self.meter, self.progress, self.speed)
                else:
                    await self._order(phase)
            end = t0 + self._sleep_s(self.scenario.duration_s) - time.monotonic()
            if end > 0:
                await asyncio.sleep(end)
            await pending
        finally:
            pending.cancel()
            self.fleet.set_frequency(50.0)

    async def _incidents(self, incidents: list[Any], t0: float) -> None:
        for incident in incidents:
            wait = t0 + self._sleep_s(incident.at_s) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if incident.kind is IncidentKind.WORKER_CRASH:
                if self.on_worker_crash is None:
                    raise DriverError("a worker_crash incident needs the demo's streams workers")
                self.progress(f"incident: {await self.on_worker_crash()}")
                continue
            self.progress(f"incident: {await self.fleet.apply(incident)}")

    async def _frequency(self, phase: FrequencyPhase) -> None:
        n = len(self.fleet.specs)
        capacity_mw = phase.capacity_kw_per_site * n / 1000.0
        start = _now()
        duration = dt.timedelta(seconds=self._sleep_s(phase.duration_s))
        kind = "FREQUENCY_EVENT" if phase.product.value == "FFR" else "TEST"
        self.fleet.set_frequency(phase.frequency_at(0.0))
        if phase.ffr_activation_hz is not None:
            self.sent.append(
                await self.producer.send(
                    "ReserveAssignment",
                    fleet_id=FLEET_ID,
                    assignment_id=f"demo-{phase.name}-{uuid.uuid4().hex[:8]}",
                    product=phase.product.value,
                    capacity_mw=capacity_mw,
                    valid_from=start,
                    valid_until=start + duration,
                    f_start_hz=phase.ffr_activation_hz,
                    f_full_hz=phase.ffr_activation_hz,
                    deadband_hz=0.0,
                )
            )
        record = await self.producer.send(
            "MarketActivation",
            fleet_id=FLEET_ID,
            activation_id=f"demo-{phase.name}-{uuid.uuid4().hex[:8]}",
            product=phase.product.value,
            kind=kind,
            requested_mw=capacity_mw,
            start_time=start,
            end_time=start + duration,
            test_name=phase.name,
            baseline_mw=0.0,
        )
        self.sent.append(record)
        self.progress(
            f"phase {phase.name}: {phase.product.value} {kind}, {capacity_mw:.3f} MW armed, "
            f"{phase.duration_s:.0f} s trace"
        )
        rig = self._rig(phase, kind, capacity_mw)
        t_start = time.monotonic()
        last_report = -10.0
        while True:
            t = (time.monotonic() - t_start) * self.speed
            if t > phase.duration_s:
                break
            f = phase.frequency_at(t)
            self.fleet.set_frequency(f)
            if rig is not None:
                rig.add(
                    time.monotonic() - t_start, f, self.fleet.power_kw(), self.fleet.own_mode_kw()
                )
            if t - last_report >= 10.0:
                last_report = t
                self.progress(
                    f"  {phase.name} {100 * t / phase.duration_s:3.0f}%  f={f:.3f} Hz  "
                    f"fleet {self.fleet.power_kw() / 1000:+.4f} MW"
                )
            await asyncio.sleep(STEP_S)
        self.fleet.set_frequency(phase.frequency_at(phase.duration_s))

    def _rig(self, phase: FrequencyPhase, kind: str, capacity_mw: float) -> RigLog | None:
        """The phase's test rig log (``flowerhub.demo.testlog``), t = 0 now."""
        from analytics.audit.extract import AuditInputError, activation_test_type
        from contract.enums import Product

        product = Product(phase.product.value)
        try:
            test_type, period = activation_test_type(kind, product, phase.name)
        except AuditInputError as exc:
            self.progress(f"  {phase.name}: no test rig log ({exc})")
            return None
        start_us = round(_now().timestamp() * 1e6)
        others = armed_kw(self.scenario.reserves, len(self.fleet.specs))
        rig = RigLog(phase.name, product, test_type, capacity_mw, start_us, period, others)
        self.rigs.append(rig)
        return rig

    async def _order(self, phase: OrderPhase) -> None:
        n = len(self.fleet.specs)
        self.fleet.set_frequency(50.0)
        await asyncio.sleep(self._sleep_s(phase.lead_in_s))
        requested_mw = phase.requested_kw_per_site * n / 1000.0
        baseline_mw = self.fleet.power_kw() / 1000.0
        start = _now()
        record = await self.producer.send(
            "MarketActivation",
            fleet_id=FLEET_ID,
            activation_id=f"demo-{phase.name}-{uuid.uuid4().hex[:8]}",
            product=phase.product.value,
            kind="ORDER",
            requested_mw=requested_mw,
            start_time=start,
            end_time=start + dt.timedelta(seconds=self._sleep_s(phase.duration_s)),
            test_name=None,
            baseline_mw=round(baseline_mw, 6),
        )
        self.sent.append(record)
        self.progress(
            f"phase {phase.name}: {phase.product.value} ORDER {requested_mw:+.3f} MW on a "
            f"baseline of {baseline_mw:+.4f} MW for {phase.duration_s:.0f} s"
        )
        t_start = time.monotonic()
        while (elapsed := time.monotonic() - t_start) < self._sleep_s(phase.duration_s):
            self.progress(
                f"  {phase.name} {elapsed:5.0f} s  fleet {self.fleet.power_kw() / 1000:+.4f} MW"
            )
            await asyncio.sleep(min(10.0, self._sleep_s(phase.duration_s) - elapsed))


async def wait_for_telemetry(kafka: KafkaSettings, topic: str, sites: int, timeout_s: float) -> int:
    """Until the telemetry topic holds at least 2 events per site; returns the count."""
    from flowerhub.broker.probe import end_offsets

    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = sum((await end_offsets(kafka, topic)).values())
        if count >= 2 * sites:
            return count
        await asyncio.sleep(0.5)
    raise DriverError(f"only {count} telemetry events from {sites} sites in {timeout_s:.0f} s")
