"""Run a bridge against simulated inverters in a background thread: tests, benchmarks, demos.

``SimBridge`` starts one simulated inverter per site (``edge.sim``) and a :class:`Bridge` in
their own event loop on a daemon thread; the caller talks Kafka from its own loop with
:func:`produce_commands` / :func:`read_events`. Real broker, real Modbus TCP, nothing faked.
With ``mqtt`` the bridge talks MQTT (each site its own client certificate) and a gateway
must run between the MQTT broker and Kafka. With ``metrics`` the bridge serves ``/metrics``
on a free loopback port of its loop (``SimBridge.metrics_url``), as ``flowerhub bridge run
--metrics-port 0`` does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import uuid
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from contract.codec import default_codec
from contract.enums import CommandKind, Product
from contract.kafka import clients
from contract.kafka.cliargs import options_of
from contract.kafka.settings import KafkaSettings
from contract.metrics import MetricsServer, metrics_settings
from contract.records import ReserveArm
from edge.bridge.config import (
    BatteryLimits,
    BridgeConfig,
    MqttConfig,
    OutboxConfig,
    SiteConfig,
    Transport,
)
from edge.bridge.events import COMMAND, command_record
from edge.bridge.metrics import BridgeMetrics
from edge.bridge.model import BridgeCommand
from edge.bridge.runtime import Bridge
from edge.bridge.sink import BridgeTopics
from edge.hal.maps import load_all
from edge.sim.battery import BatteryParams
from edge.sim.server import SimInverter

T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class SimSpec:
    """One simulated site: its OEM map, starting SoC and site-config overrides."""

    site_id: str
    oem: str
    soc_pct: float = 50.0
    site: dict[str, Any] = field(default_factory=dict)


def site_config(spec: SimSpec, sim: SimInverter) -> SiteConfig:
    """A site config matching the simulator (response timing from its battery model)."""
    p = sim.battery.params
    data: dict[str, Any] = {
        "site_id": spec.site_id,
        "oem": spec.oem,
        "host": sim.host,
        "port": sim.port,
        "unit_id": sim.unit_id,
        "rated_power_kw": 10.0,
        "battery": BatteryLimits(
            max_charge_kw=p.max_charge_kw,
            max_discharge_kw=p.max_discharge_kw,
            capacity_kwh=p.capacity_kwh,
        ),
        "response_time_constant_s": p.tau_s,
        "response_dead_time_s": p.dead_time_s,
        # a simulator answers like the inverter's own LAN port (map timing.links)
        "link": "lan" if "lan" in sim.rmap.timing.links else None,
    }
    data.update(spec.site)
    return SiteConfig.model_validate(data)


class SimBridge:
    """Simulators + one bridge on a private event loop thread."""

    def __init__(
        self,
        specs: Sequence[SimSpec],
        *,
        kafka: KafkaSettings,
        state: Path,
        topics: BridgeTopics,
        bridge_id: str | None = None,
        telemetry_interval_s: float = 0.5,
        battery: BatteryParams | None = None,
        mqtt: MqttConfig | None = None,
        start_time_of_day_s: float = 12 * 3600.0,
        metrics: bool = False,
    ) -> None:
        self.specs = list(specs)
        self.mqtt = mqtt  # given: the bridge talks MQTT (through a gateway), else Kafka
        self.kafka = kafka
        self.state = state
        self.topics = topics
        self.bridge_id = bridge_id or f"sim-{uuid.uuid4().hex[:8]}"
        self.telemetry_interval_s = telemetry_interval_s
        self.battery = battery
        self.start_time_of_day_s = start_time_of_day_s  # the simulated homes' clock (PV, load)
        self.sims: dict[str, SimInverter] = {}
        self.bridge: Bridge | None = None
        self.metrics = metrics
        self.metrics_url: str | None = None  #: while the bridge runs, with ``metrics``
        self._metrics_server: MetricsServer | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stop: asyncio.Event | None = None
        self._run: concurrent.futures.Future[None] | None = None

    # ------------------------------------------------------------- threading
    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run a coroutine on the bridge's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def do(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run a plain function on the bridge's loop (simulator control, reading state)."""

        async def wrap() -> T:
            return fn()

        return self.call(wrap(), timeout)

    # --------------------------------------------------------------- life
    def start_sims(self) -> None:
        self._thread.start()
        maps = load_all()

        async def start() -> None:
            for i, spec in enumerate(self.specs):
                sim = SimInverter(
                    maps[spec.oem],
                    port=free_port(),
                    soc_pct=spec.soc_pct,
                    seed=i,
                    battery=self.battery,
                    start_time_of_day_s=self.start_time_of_day_s,
                )
                await sim.start()
                self.sims[spec.site_id] = sim

        self.call(start())

    def config(self) -> BridgeConfig:
        return BridgeConfig(
            bridge_id=self.bridge_id,
            sites=[site_config(s, self.sims[s.site_id]) for s in self.specs],
            telemetry_interval_s=self.telemetry_interval_s,
            status_interval_s=5.0,
            state_dir=self.state / "state",
            outbox=OutboxConfig(dir=self.state / "outbox", fsync_interval_s=0.5),
            kafka=options_of(self.kafka),  # for a bridge process run from this config
            transport=Transport.KAFKA if self.mqtt is None else Transport.MQTT,
            mqtt=self.mqtt,
        )

    def start_bridge(self, timeout: float = 60.0) -> Bridge:
        """(Re)start the bridge process part; returns once its consumer owns its partitions."""

        async def make() -> tuple[Bridge, asyncio.Event]:
            bridge = Bridge(self.config(), topics=self.topics, kafka=self.kafka)
            if self.metrics:
                registry = BridgeMetrics(bridge).registry
                server = MetricsServer(registry, metrics_settings(port=0), "bridge")
                self.metrics_url = await server.start()
                self._metrics_server = server
            return bridge, asyncio.Event()

        bridge, stop = self.call(make())
        self.bridge, self._stop = bridge, stop
        self._run = asyncio.run_coroutine_threadsafe(bridge.run(stop), self._loop)
        self.call(asyncio.wait_for(bridge.ready.wait(), timeout), timeout + 5)
        return bridge

    def stop_bridge(self) -> None:
        if self._stop is not None and self._run is not None:
            stop = self._stop
            self._loop.call_soon_threadsafe(stop.set)
            self._run.result(60)
        server, self._metrics_server, self.metrics_url = self._metrics_server, None, None
        if server is not None:
            self.call(server.stop())
        self.bridge, self._stop, self._run = None, None, None

    def close(self) -> None:
        self.stop_bridge()

        async def stop_sims() -> None:
            for sim in self.sims.values():
                await sim.stop()
            await asyncio.sleep(0.2)  # let closed transports run their close callbacks

        if self._thread.is_alive():
            self.call(stop_sims())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> SimBridge:
        self.start_sims()
        self.start_bridge()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every site has the outcome of every command it received."""
        bridge = self.bridge
        if bridge is None:
            return

        async def all_idle() -> None:
            for ctl in bridge.sites.values():
                await ctl.drain()

        self.call(asyncio.wait_for(all_idle(), timeout), timeout + 5)


def new_command(
    site_id: str,
    kind: CommandKind = CommandKind.SET_POWER,
    power_kw: float | None = None,
    *,
    valid_s: float = 120.0,
    reserve: ReserveArm | None = None,
    product: Product | None = None,
    command_id: str | None = None,
    now: datetime | None = None,
) -> BridgeCommand:
    t = now or datetime.now(UTC)
    return BridgeCommand(
        command_id=command_id or f"cmd-{uuid.uuid4().hex[:12]}",
        site_id=site_id,
        kind=kind,
        event_time=t,
        valid_until=t + timedelta(seconds=valid_s),
        power_kw=power_kw,
        reserve=reserve,
        event_id=str(uuid.uuid4()),
        issued_by="harness",
        product=product,
    )


async def produce_commands(
    kafka: KafkaSettings,
    topic: str,
    commands: Iterable[BridgeCommand],
    *,
    key: str | None = None,
) -> None:
    """Produce SiteCommand events keyed by site id (or ``key``), in order, acks=all."""
    codec = default_codec()
    async with clients.running(clients.producer(kafka), kafka) as producer:
        for cmd in commands:
            rec = command_record(cmd)
            rec["event_id"] = str(uuid.uuid4())  # a redelivery is a new event, same command id
            value = codec.encode(COMMAND, rec)
            await producer.send_and_wait(topic, value=value, key=(key or cmd.site_id).encode())


async def read_events(
    kafka: KafkaSettings,
    topic: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout_s: float = 30.0,
) -> list[dict[str, Any]]:
    """Read a topic from the start until ``done(records)`` or the timeout; decoded records."""
    codec = default_codec()
    out: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with clients.running(clients.consumer(kafka, topic), kafka) as consumer:
        while not done(out) and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out += [codec.decode(r.value).record for r in records]
    return out
