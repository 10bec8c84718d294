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
   (``bridge run``; each site its own MQTT client), ``workers`` streams workers of one app
   (``streams worker``; two by default: they share the sites' partitions, one leads, and
   one that dies is restarted: ``flowerhub.demo.workers``), the archiver (``archive``) and
   the operations view (``ui``, its URL printed: ``flowerhub.demo.uichild``);
6. the scenario (``flowerhub.demo.driver``): frequency traces fed to every simulator plus a
   TEST / FREQUENCY_EVENT ``MarketActivation`` (the allocator arms the sites' droop),
   activation orders (``MarketActivation`` ORDER, the allocator sets site powers),
   incidents on their time (``worker_crash``: the leading worker killed);
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from contract.kafka.settings import KafkaSettings
from edge.bridge.config import MqttConfig
from flowerhub.demo.armed import worker_environment
from flowerhub.demo.driver import Driver, DriverError, Producer, wait_for_telemetry
from flowerhub.demo.fleet import SiteSpec, compose_fleet, describe, map_models
from flowerhub.demo.processes import Child, ChildError, MemoryMeter, spawn
from flowerhub.demo.results import AuditOutcome, SelfConsumption, run_audit
from flowerhub.demo.scenario import IncidentKind, Scenario
from flowerhub.demo.sims import SimFleet, SimStartError
from flowerhub.demo.testlog import RigLog, RigLogError, RigOutcome, judge_rig, write_rig_csv
from flowerhub.demo.watch import Death, watch_children
from flowerhub.demo.workers import Restart, WorkerPool, cancel
from streams.settings import AggregationSettings, AllocatorSettings

WARMUP_S = 6.0  # telemetry from every site before the first order (the allocator's site book)
#: The streams workers' settings of the run (``KEY=VALUE`` lines) in its run directory: a
#: worker re-run on a replay of the archive needs them to take the same decisions (README
#: "How to replay and debug").
WORKER_ENV_FILE = "streams-worker.env"


def drain_s(settings: AggregationSettings, allocator: AllocatorSettings) -> float:
    """How long the workers keep running once the bridges and the gateway stopped, so that
    a worker re-run on the run's replayed archive (which runs on) takes no decision the run
    did not: the last telemetry's windows close when their partitions' stream time passes
    their end plus the grace, and a silent partition's stream time follows the clock after
    ``idle_s`` (``streams.steps.site_partition``), so the longest window that holds the last
    record closes ``max(windows_s) + grace_s + idle_s`` after it at most; the homes, silent
    since the bridges stopped, give up their shares once their telemetry is older than
    ``telemetry_max_age_s`` (at the next whole-second re-split: 1 s more); 2 s more for the
    slices to reach the leader and its transaction to commit."""
    windows = max(settings.windows_s) + settings.grace_s + settings.idle_s
    stale = allocator.telemetry_max_age_s + settings.grace_s + settings.idle_s + 1.0
    return max(windows, stale) + 2.0


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
    workers: int = 2  # streams workers of the one app (supervised: one that dies restarts)


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
    self_consumption: SelfConsumption | None = None  # over the hold phases (armed homes)
    restarts: list[Restart] = field(default_factory=list)  # streams workers started again


class Progress:
    """Timestamped progress lines (seconds since the demo started)."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        if self.out is not None:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {message}", file=self.out, flush=True)


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
        self.workers: WorkerPool | None = None
        self.died: list[Death] = []
        self.broker_dir: Path | None = None
        self.broker_pids: list[int] = []
        self.mqtt_dir: Path | None = None
        self.mqtt_pids: list[int] = []
        self.meter = MemoryMeter(self._pids)
        self.ui_url: str | None = None

    def _running(self) -> list[Child]:
        return self.children + ([] if self.workers is None else self.workers.children)

    def _pids(self) -> list[int]:
        alive = [c.pid for c in self._running() if c.alive()]
        return alive + self.broker_pids + self.mqtt_pids

    def _sample(self) -> None:
        names = {c.pid: c.name for c in self._running()}
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
        crashes = [i for i in o.scenario.incidents if i.kind is IncidentKind.WORKER_CRASH]
        if crashes and o.workers < 2:
            raise DemoError(
                f"scenario {o.scenario.name} kills the leading streams worker: it needs "
                f"--workers 2 or more (got {o.workers})"
            )
        if o.workers < 1:
            raise DemoError(f"--workers must be >= 1, got {o.workers}")
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
        driver: Driver | None = None
        watcher: asyncio.Task[None] | None = None
        supervisor: asyncio.Task[None] | None = None
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
            assert self.workers is not None  # noqa: S101  # started with the children
            supervisor = asyncio.create_task(self.workers.supervise())
            from contract.topics import topic

            telemetry = topic("site.telemetry").full_name(self.prefix)
            try:
                await wait_for_telemetry(kafka, telemetry, len(specs), 60.0)
            except DriverError as exc:
                raise DemoError(str(exc)) from exc
            await asyncio.sleep(WARMUP_S)
            say("telemetry flowing; playing the scenario")
            producer = Producer(kafka, self.prefix)
            await producer.start()
            try:
                driver = Driver(
                    o.scenario,
                    fleet,
                    producer,
                    say,
                    o.speed,
                    on_worker_crash=self.workers.kill_leader,
                )
                rigs = driver.rigs
                await driver.run()
            except (DriverError, ChildError) as exc:
                raise DemoError(f"scenario: {exc}") from exc
            finally:
                await producer.stop()
            say("scenario done; stopping bridges, streams workers, archiver")
        finally:
            await cancel(watcher)
            await cancel(supervisor)
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
            died=self.died + ([] if self.workers is None else self.workers.died),
            restarts=[] if self.workers is None else self.workers.restarts,
            self_consumption=None if driver is None else driver.meter.result(),
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
        settings = worker_environment()
        (self.run_dir / WORKER_ENV_FILE).write_text(
            "".join(f"{k}={v}\n" for k, v in sorted(settings.items())), encoding="utf-8"
        )
        self.workers = WorkerPool(
            self.o.workers,
            [
                *connect,
                *("--prefix", self.prefix, "--app-id", f"demo-{self.run_id.lower()}"),
                *("--loglevel", "warn"),
            ],
            logs,
            self.run_dir,
            {**env, **settings},
            say,
        )
        try:
            await self.workers.start()
        except ChildError as exc:
            raise DemoError(f"streams workers: {exc}") from exc
        leader = self.workers.leader()
        say(
            f"streams workers ready: {self.o.workers} sharing the sites' partitions, "
            f"{leader.name if leader else '?'} leads (a worker that dies is restarted)"
        )
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
        """Stop children (bridges first, then the gateway; the workers once they closed the
        last windows: ``drain_s``; the archiver last), simulators, our brokers."""
        say = self.progress
        rank = {"gateway": 1, "archiver": 3}
        order = sorted(self.children, key=lambda c: rank.get(c.name, 0))
        for child in order:
            if child.name == "archiver":
                if self.workers is not None:  # the workers before the archiver
                    drain = drain_s(AggregationSettings(), AllocatorSettings())
                    say(f"streams workers: closing the last windows ({drain:.0f} s)")
                    await asyncio.sleep(drain)
                    for name, code in await self.workers.stop(30.0):
                        say(f"stopped {name} (exit {code})")
                await asyncio.sleep(3.0)  # the last telemetry and results reach the topics
            code = await asyncio.to_thread(
                child.stop, 10.0 if child.name.startswith("bridge") else 30.0
            )
            say(f"stopped {child.name} (exit {code})")
        if self.workers is not None:  # no archiver (it never started): the workers now
            for name, code in await self.workers.stop(30.0):
                say(f"stopped {name} (exit {code})")
        if fleet is not None:
            await fleet.stop()
        pids = [c.pid for c in self.children] + self.mqtt_pids
        pids += [] if self.workers is None else self.workers.every_pid()
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
