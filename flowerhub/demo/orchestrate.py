"""Run a whole fleet activation end to end on real components, then audit it.

``run_demo(options)``:

1. a Kafka broker: the project's local KRaft node (``flowerhub.broker``; ``--tls``: every
   client over SASL_SSL), or an existing cluster (``--bootstrap`` and the connection flags);
2. the topic table under a per-run prefix (``demo-<run>.``), so runs never mix on a cluster;
3. simulated homes (``SimFleet``: Modbus TCP servers on 127.0.0.1, in this process);
4. with ``transport="mqtt"`` (the default): the homes' MQTT broker (Mosquitto from
   ``flowerhub.mqtt``, TLS, its CA and one client certificate per site in
   ``<run>/mqtt/certs``) and the gateway (``gateway run``) between it and Kafka;
   ``transport="kafka"``: the bridges talk to Kafka directly, as before;
5. child processes, each a real ``flowerhub`` verb: one edge bridge per OEM map
   (``bridge run``; each site its own MQTT client), the streams worker (``streams worker``)
   the archiver (``archive``) and the operations view (``ui``, its URL printed:
   ``flowerhub.demo.uichild``);
6. the scenario: frequency traces fed to every simulator plus a TEST / FREQUENCY_EVENT
   ``MarketActivation`` (the allocator arms the sites' droop), activation orders
   (``MarketActivation`` ORDER, the allocator sets site powers), incidents on their time;
7. everything stopped (SIGTERM: the archiver flushes), the brokers too when they are ours;
8. ``flowerhub audit --log <archive> --out <report>``; the verdicts are compared with the
   scenario's expectations (``flowerhub.demo.results``).

Progress goes to ``progress`` (stderr from the CLI); the run directory keeps every log.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from edge.bridge.config import MqttConfig
from flowerhub.demo.fleet import SiteSpec, compose_fleet, describe, map_models
from flowerhub.demo.processes import Child, MemoryMeter, spawn
from flowerhub.demo.results import AuditOutcome, run_audit
from flowerhub.demo.scenario import FrequencyPhase, OrderPhase, Scenario
from flowerhub.demo.sims import SimFleet, SimStartError
from flowerhub.demo.testlog import RigLog, RigLogError, RigOutcome, judge_rig, write_rig_csv
from flowerhub.demo.watch import Death, watch_children

FLEET_ID = "flowerhub"
STEP_S = 0.1  # frequency trace update period (the simulators' register, read at each poll)
WARMUP_S = 6.0  # telemetry from every site before the first order (the allocator's site book)


class DemoError(RuntimeError):
    """The demo could not run (broker, child process, scenario); the message says where."""


@dataclass(frozen=True)
class DemoOptions:
    scenario: Scenario
    out: Path
    sites: int | None = None
    kafka: KafkaSettings | None = None  # an existing cluster; None: start a local broker
    tls: bool = False  # the local broker with TLS: every client over SASL_SSL
    speed: float = 1.0
    telemetry_interval_s: float = 1.0
    seed: int | None = None
    ui: bool = True  # flowerhub ui on the run's topics while it plays
    ui_port: int = 0  # 0: any free port
    transport: str = "mqtt"  # homes through Mosquitto and the gateway; "kafka": directly


@dataclass
class DemoResult:
    run_dir: Path
    archive: Path
    report: Path
    sites: list[SiteSpec]
    audit: AuditOutcome | None
    wall_s: float
    peak_rss_bytes: int
    leftover_pids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rig: list[RigOutcome] = field(default_factory=list)  # 10 Hz test rig log verdicts
    ui_url: str | None = None
    died: list[Death] = field(default_factory=list)  # children that exited while it played


class Progress:
    """Timestamped progress lines (seconds since the demo started)."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.out is not None:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", file=self.out, flush=True)


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
    ) -> None:
        self.scenario = scenario
        self.fleet = fleet
        self.producer = producer
        self.progress = progress
        self.speed = speed
        self.sent: list[dict[str, Any]] = []
        self.rigs: list[RigLog] = []  # applied frequency + simulators' power, per phase

    def _sleep_s(self, scenario_s: float) -> float:
        return max(0.0, scenario_s / self.speed)

    async def run(self) -> None:
        incidents = sorted(self.scenario.incidents, key=lambda i: i.at_s)
        t0 = time.monotonic()
        pending = asyncio.create_task(self._incidents(incidents, t0))
        try:
            for start, phase in self.scenario.phase_starts():
                wait = t0 + self._sleep_s(start) - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                if isinstance(phase, FrequencyPhase):
                    await self._frequency(phase)
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
                rig.add(time.monotonic() - t_start, f, self.fleet.power_kw())
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
        rig = RigLog(phase.name, product, test_type, capacity_mw, start_us, period_s=period)
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


async def _wait_for_telemetry(
    kafka: KafkaSettings, topic: str, sites: int, timeout_s: float
) -> int:
    """Until the telemetry topic holds at least 2 events per site; returns the count."""
    from flowerhub.broker.probe import end_offsets

    deadline = time.monotonic() + timeout_s
    count = 0
    while time.monotonic() < deadline:
        count = sum((await end_offsets(kafka, topic)).values())
        if count >= 2 * sites:
            return count
        await asyncio.sleep(0.5)
    raise DemoError(f"only {count} telemetry events from {sites} sites in {timeout_s:.0f} s")


class Demo:
    """One demo run: owns the broker (when started here), the simulators and the children."""

    def __init__(self, options: DemoOptions, progress: TextIO | None) -> None:
        self.o = options
        self.progress = Progress(progress)
        run_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:4]
        self.run_id = run_id
        self.run_dir = (options.out / f"{options.scenario.name}-{run_id}").resolve()
        self.prefix = f"demo-{run_id.lower()}."
        self.children: list[Child] = []
        self.died: list[Death] = []
        self.broker_dir: Path | None = None
        self.broker_pids: list[int] = []
        self.mqtt_dir: Path | None = None
        self.mqtt_pids: list[int] = []
        self.meter = MemoryMeter(self._pids)
        self.ui_url: str | None = None

    def _pids(self) -> list[int]:
        return [c.pid for c in self.children if c.alive()] + self.broker_pids + self.mqtt_pids

    def _sample(self) -> None:
        names = {c.pid: c.name for c in self.children}
        names.update(dict.fromkeys(self.broker_pids, "kafka"))
        names.update(dict.fromkeys(self.mqtt_pids, "mosquitto"))
        self.meter.sample(names)

    def _start_mqtt(self, site_ids: list[str]) -> MqttConfig:
        """Mosquitto in ``<run>/mqtt`` with a certificate per site and one gateway identity."""
        from flowerhub.mqtt.launcher import MqttBrokerError, start_mosquitto
        from flowerhub.mqtt.pki import issue_client

        self.mqtt_dir = self.run_dir / "mqtt"
        try:
            state = start_mosquitto(self.mqtt_dir, gateways=("1",))
        except MqttBrokerError as exc:
            raise DemoError(f"local MQTT broker: {exc}") from exc
        self.mqtt_pids = [state.pid]
        self.mqtt_address = state.address
        for site_id in site_ids:
            issue_client(state.pki, site_id)
        return MqttConfig(
            host="localhost",
            port=state.port,
            ca_file=state.pki.ca_file,
            certs_dir=state.pki.clients_dir,
            session_expiry_s=3600,
            reconnect_min_s=0.2,
            reconnect_max_s=5.0,
        )

    def _stop_mqtt(self) -> None:
        from flowerhub.mqtt.launcher import stop_mosquitto

        if self.mqtt_dir is not None:
            stop_mosquitto(self.mqtt_dir)
            self.mqtt_pids = []

    async def _meter_loop(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(1.0)

    def _start_broker(self) -> KafkaSettings:
        from flowerhub.broker.launcher import BrokerError, start_cluster
        from flowerhub.broker.state import kafka_settings

        self.broker_dir = self.run_dir / "kafka"
        try:
            state = start_cluster(1, self.broker_dir, tls=self.o.tls)
        except BrokerError as exc:
            raise DemoError(f"local Kafka broker: {exc}") from exc
        self.broker_pids = [n.pid for n in state.nodes]
        return kafka_settings(state)  # SASL_SSL with --tls

    def _stop_broker(self) -> None:
        from flowerhub.broker.launcher import stop_cluster

        if self.broker_dir is not None:
            stop_cluster(self.broker_dir)
            self.broker_pids = []

    async def run(self) -> DemoResult:  # noqa: PLR0915  # one linear story, kept in one place
        t0 = time.monotonic()
        o, say = self.o, self.progress
        sites_n = o.sites or o.scenario.fleet.sites
        o.scenario.check_fleet_size(sites_n)
        specs = compose_fleet(sites_n, seed=o.seed or o.scenario.fleet.seed, models=map_models())
        self.run_dir.mkdir(parents=True, exist_ok=True)
        archive, report = self.run_dir / "archive", self.run_dir / "report"
        say(f"scenario {o.scenario.name} ({o.scenario.duration_s / o.speed:.0f} s); {self.run_dir}")
        say(f"fleet: {describe(specs)}")
        sims = SimFleet(specs)
        sims.check_incidents(o.scenario.incidents)
        meter = asyncio.create_task(self._meter_loop())
        fleet: SimFleet | None = None
        audit: AuditOutcome | None = None
        notes: list[str] = []
        rigs: list[RigLog] = []
        watcher: asyncio.Task[None] | None = None
        try:
            if o.kafka is not None:
                kafka = o.kafka
                say(f"Kafka: using {kafka.describe()}")
            else:
                say("Kafka: starting the local KRaft broker" + (" with TLS" if o.tls else ""))
                kafka = await asyncio.to_thread(self._start_broker)
                say(f"Kafka: {kafka.describe()}")
            fleet = sims
            try:
                await fleet.start()
            except SimStartError as exc:
                raise DemoError(f"simulators: {exc}") from exc
            say(f"simulators: {len(fleet.sims)} Modbus servers on 127.0.0.1")
            mqtt = None
            if o.transport == "mqtt":
                mqtt = await asyncio.to_thread(self._start_mqtt, [s.site_id for s in specs])
                say(
                    f"MQTT: Mosquitto on mqtts://{self.mqtt_address}, "
                    f"{len(specs)} site certificates in {self.mqtt_dir}"
                )
            await self._start_children(kafka, fleet, archive, mqtt)
            watcher = asyncio.create_task(watch_children(self.children, say, self.died))
            from contract.topics import topic

            telemetry = topic("site.telemetry").full_name(self.prefix)
            await _wait_for_telemetry(kafka, telemetry, len(specs), 60.0)
            await asyncio.sleep(WARMUP_S)
            say("telemetry flowing; playing the scenario")
            producer = Producer(kafka, self.prefix)
            await producer.start()
            try:
                driver = Driver(o.scenario, fleet, producer, say, o.speed)
                rigs = driver.rigs
                await driver.run()
            finally:
                await producer.stop()
            say("scenario done; stopping bridges, streams worker, archiver")
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            leftovers = await self._shutdown(fleet)
            meter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await meter
        say("running the audit")
        audit = await asyncio.to_thread(
            run_audit, archive, report, self.run_dir / "logs", o.telemetry_interval_s, self.prefix
        )
        if audit.error:
            notes.append(audit.error)
        rig = await asyncio.to_thread(self._judge_rigs, rigs, report / "rig", notes)
        return DemoResult(
            run_dir=self.run_dir,
            archive=archive,
            report=report,
            sites=specs,
            audit=audit,
            wall_s=time.monotonic() - t0,
            peak_rss_bytes=self.meter.peak_bytes,
            leftover_pids=leftovers,
            notes=notes,
            rig=rig,
            ui_url=self.ui_url,
            died=self.died,
        )

    @staticmethod
    def _judge_rigs(rigs: list[RigLog], directory: Path, notes: list[str]) -> list[RigOutcome]:
        """Judge each rig log and write it as an SvK CSV under ``directory``."""
        from analytics.svkcsv import SvkCsvError

        out = []
        for log in rigs:
            out.append(judge_rig(log))
            try:
                write_rig_csv(log, directory)
            except (RigLogError, SvkCsvError, OSError) as exc:
                notes.append(f"test rig log {log.phase} not written: {exc}")
        return out

    async def _start_children(
        self, kafka: KafkaSettings, fleet: SimFleet, archive: Path, mqtt: MqttConfig | None
    ) -> None:
        # every child gets the whole connection as flags, the password (if any) in its env
        say, logs, env = self.progress, self.run_dir / "logs", kafka.environment()
        connect = kafka.arguments()
        self.children.append(
            spawn(
                "streams-worker",
                [
                    "streams",
                    "worker",
                    *connect,
                    "--prefix",
                    self.prefix,
                    "--app-id",
                    f"demo-{self.run_id.lower()}",
                    "--loglevel",
                    "warn",
                ],
                logs,
                cwd=self.run_dir,
                env=env,
            )
        )
        from streams.app import READY_MESSAGE

        await asyncio.to_thread(self.children[-1].wait_for, READY_MESSAGE, 120.0)
        say("streams worker ready (topics created, agents running)")
        archiver = spawn(
            "archiver",
            [
                *("archive", "--out", str(archive), *connect, "--prefix"),
                *(self.prefix, "--flush-interval", "2"),
            ],
            logs,
            cwd=self.run_dir,
            env=env,
        )
        self.children.append(archiver)
        await asyncio.to_thread(archiver.wait_for, "archiving", 60.0)
        say("archiver running")
        if mqtt is not None:
            await self._start_gateway(mqtt, connect, env)
        configs = fleet.write_bridge_configs(
            self.run_dir / "bridges", self.o.telemetry_interval_s, mqtt=mqtt
        )
        for path in configs:
            name = path.stem
            self.children.append(
                spawn(
                    name,
                    [
                        *("bridge", "run", "--config", str(path), *connect),
                        *("--topic-prefix", self.prefix, "--log-level", "WARNING"),
                    ],
                    logs,
                    cwd=self.run_dir,
                    env=env,
                )
            )
        for child in self.children[-len(configs) :]:
            await asyncio.to_thread(child.wait_for, "site(s)", 60.0)
        say(f"edge bridges: {len(configs)} processes ({', '.join(p.stem for p in configs)})")
        if self.o.ui:
            from flowerhub.demo.uichild import start_live_ui

            ui, self.ui_url = await asyncio.to_thread(
                start_live_ui, connect, self.prefix, self.run_dir, self.o.ui_port, env
            )
            self.children.append(ui)
            say(f"UI: {self.ui_url}  (live while the scenario plays)")

    async def _start_gateway(self, mqtt: MqttConfig, connect: list[str], env: Any) -> None:
        from flowerhub.mqtt.pki import Pki

        files = Pki(mqtt.ca_file.parent).gateway("1")
        gateway = spawn(
            "gateway",
            [
                *("gateway", "run", "--name", "1", "--mqtt", f"{mqtt.host}:{mqtt.port}"),
                *("--mqtt-ca", str(mqtt.ca_file), "--mqtt-cert", str(files.cert)),
                *("--mqtt-key", str(files.key), *connect, "--topic-prefix", self.prefix),
                *("--group-id", f"demo-gateway-{self.run_id.lower()}"),
            ],
            self.run_dir / "logs",
            cwd=self.run_dir,
            env=env,
        )
        self.children.append(gateway)
        await asyncio.to_thread(gateway.wait_for, "connected to", 60.0)
        self.progress("gateway running (MQTT <-> Kafka)")

    async def _shutdown(self, fleet: SimFleet | None) -> list[int]:
        """Stop children (bridges first, then the gateway, archiver last), simulators, our
        brokers."""
        say = self.progress
        rank = {"gateway": 1, "streams-worker": 2, "archiver": 3}
        order = sorted(self.children, key=lambda c: rank.get(c.name, 0))
        for child in order:
            if child.name == "archiver":
                await asyncio.sleep(3.0)  # the last telemetry and results reach the topics
            code = await asyncio.to_thread(
                child.stop, 10.0 if child.name.startswith("bridge") else 30.0
            )
            say(f"stopped {child.name} (exit {code})")
        if fleet is not None:
            await fleet.stop()
        pids = [c.pid for c in self.children] + self.mqtt_pids
        if self.mqtt_dir is not None:
            await asyncio.to_thread(self._stop_mqtt)
            say("MQTT broker stopped")
        if self.broker_dir is not None:
            await asyncio.to_thread(self._stop_broker)
            say("Kafka broker stopped")
        from flowerhub.demo.processes import rss_bytes

        return [p for p in pids if rss_bytes(p) > 0]


def run_demo(options: DemoOptions, progress: TextIO | None = None) -> DemoResult:
    """Run the demo (see module doc); blocks until the audit is written."""
    if options.speed <= 0:
        raise DemoError(f"--speed must be > 0, got {options.speed}")
    return asyncio.run(Demo(options, progress).run())
