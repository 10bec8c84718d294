"""The MQTT boundary (issue 17): command latency through Mosquitto and the gateway, uplink
capacity of the gateway, and the bytes a home's link carries, each against the direct Kafka
path or the least a forwarder can do, measured in the same run.

1. Command produced on Kafka -> first Modbus write, p50/p99 (``BENCH_MQTT_SITES`` sites,
   ``BENCH_MQTT_ROUNDS`` rounds, the machinery of :mod:`bench.bench_bridge`): the same
   simulated sites served first by a bridge process on Kafka directly (the baseline), then
   by a bridge process on MQTT with a gateway process in between. Goal: p50 within +5 ms.
2. Uplink: ``BENCH_MQTT_HOMES`` lightweight homes (one MQTT client and certificate each,
   in two processes: :mod:`bench.mqtt_homes`) publish a SiteTelemetry at 1 Hz for
   ``BENCH_MQTT_UPLINK_S`` s at QoS 1; the gateway process turns them into Kafka records.
   Counted: every message the broker acknowledged is in Kafka (0 lost). Value: messages per
   CPU-second of the gateway process; baseline: the same for a raw forwarder
   (:mod:`bench.raw_mqtt_kafka`: no decoding, no checks, automatic PUBACKs) on the same
   homes' second run. Goal >= 0.5x. CPU per 1,000 msg/s is in the note.
3. Bytes per home per hour on the home's link: TCP payload (TLS included) of the bridge
   process's broker sockets, from the kernel's tcp_info (``ss -ti``), over
   ``BENCH_MQTT_LINK_S`` s, for a one-site bridge on MQTT against a one-site bridge on Kafka
   directly, side by side, while the fleet's commands flow (``FLEET_SITES`` sites, one
   command each every ``FLEET_PERIOD_S`` s: what a fleet setpoint fans out to; the Kafka
   bridge reads every site's commands, the MQTT home only its own). The Kafka bridge talks
   PLAINTEXT here (TLS would add to it).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

from bench import BenchResult
from bench.bench_bridge import (
    GAP_S,
    heartbeat_addresses,
    latencies,
    pct,
    produce,
    site_entry,
    start_bridge,
    stop,
    warm_up,
)
from bench.broker import bench_broker
from bench.simfleet import FleetSite, SimFleet
from contract.codec import default_codec
from contract.kafka import clients
from contract.kafka.admin import create_named_topics_sync
from contract.kafka.settings import KafkaSettings
from contract.topics import TOPICS
from edge.bridge.events import COMMAND, command_record
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import new_command
from flowerhub.broker.probe import end_offsets
from flowerhub.gateway.harness import GatewayProcess
from flowerhub.mqtt.launcher import MosquittoState, local_mosquitto
from flowerhub.mqtt.pki import issue_client

SITES = int(os.environ.get("BENCH_MQTT_SITES", "60"))
ROUNDS = int(os.environ.get("BENCH_MQTT_ROUNDS", "4"))
HOMES = int(os.environ.get("BENCH_MQTT_HOMES", "2000"))
UPLINK_S = float(os.environ.get("BENCH_MQTT_UPLINK_S", "30"))
LINK_S = float(os.environ.get("BENCH_MQTT_LINK_S", "30"))
PARTS = os.environ.get("BENCH_MQTT_PARTS", "latency,uplink,link").split(",")
FLEET_SITES = 1300
FLEET_PERIOD_S = 10.0
HOME_PROCS = 2


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_mqtt_bridge(
    mq: MosquittoState, sites: list[FleetSite], tmp: Path, topics: BridgeTopics, name: str
) -> subprocess.Popen[bytes]:
    for s in sites:
        issue_client(mq.pki, site_entry(s)["site_id"])
    cfg = {
        "bridge_id": f"{name}-{uuid.uuid4().hex[:6]}",
        "telemetry_interval_s": 1.0,
        "state_dir": str(tmp / f"{name}-state"),
        "outbox": {"dir": str(tmp / f"{name}-outbox")},
        "transport": "mqtt",
        "mqtt": {
            "host": "localhost",
            "port": mq.port,
            "ca_file": str(mq.pki.ca_file),
            "certs_dir": str(mq.pki.clients_dir),
        },
        "latency_trace": str(tmp / f"{name}-trace.jsonl"),
        "sites": [site_entry(s) for s in sites],
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    args = [sys.executable, "-m", "flowerhub.cli.bridge", "run", "--config", str(path)]
    args += ["--topic-prefix", topics.prefix, "--log-level", "ERROR"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL)


def measure_commands(fleet: SimFleet, kafka: KafkaSettings, topic: str, seed: int) -> list[float]:
    """First-write latencies (ms) of ROUNDS rounds of commands to every site."""
    warm_up(fleet, kafka, topic, 120.0 + SITES * 0.1)
    time.sleep(2.0)
    marks = {i: len(w) for i, w in fleet.dump().items()}
    order = list(range(SITES))
    random.Random(seed).shuffle(order)
    gap = max(GAP_S, 2.0 / SITES)  # a site's commands ~2 s apart: never inside its last one
    sent = asyncio.run(produce(kafka, topic, order, gap, rounds=ROUNDS, seed=seed))
    time.sleep(3.0)
    hb = heartbeat_addresses()
    got = latencies(sent, fleet.dump(), marks, {s.index: hb[s.oem] for s in fleet.sites})
    return [r[0] for rows in got.values() for r in rows]


def command_latency(
    kafka: KafkaSettings, mq: MosquittoState, tmp: Path
) -> tuple[list[float], list[float], str]:
    with SimFleet(SITES, 1) as fleet:
        topics = BridgeTopics(prefix=f"bm-{uuid.uuid4().hex[:8]}.")
        create_named_topics_sync(kafka, [t.full_name(topics.prefix) for t in TOPICS], 1)
        direct = start_bridge(kafka, fleet.sites, tmp, topics, "direct")
        try:
            base = measure_commands(fleet, kafka, topics.command_topic, 1)
        finally:
            stop(direct)
        gateway = GatewayProcess(mq, kafka, topics.prefix, tmp / "gateway-a.log", "ba").start()
        bridge = start_mqtt_bridge(mq, fleet.sites, tmp, topics, "mqtt")
        try:
            cpu0, t0 = cpu_s(gateway.proc.pid), time.monotonic()  # type: ignore[union-attr]
            via = measure_commands(fleet, kafka, topics.command_topic, 2)
            gw_cpu = (cpu_s(gateway.proc.pid) - cpu0) / (time.monotonic() - t0)  # type: ignore[union-attr]
        finally:
            stop(bridge)
            gateway.stop()
    return via, base, f"gateway CPU {gw_cpu:.0%} of a core meanwhile (telemetry of {SITES} sites)"


# ------------------------------------------------------------------------ uplink


def run_homes(mq: MosquittoState, start_in: float) -> tuple[list[subprocess.Popen[str]], int]:
    per = HOMES // HOME_PROCS
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "bench.mqtt_homes", "--first", str(i * per)),
                *("--count", str(per), "--port", str(mq.port), "--ca", str(mq.pki.ca_file)),
                *("--certs", str(mq.pki.clients_dir), "--duration", str(UPLINK_S)),
                *("--start-in", str(start_in)),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(HOME_PROCS)
    ]
    return procs, per * HOME_PROCS


def homes_done(procs: list[subprocess.Popen[str]]) -> tuple[int, int]:
    acked = failed = 0
    for p in procs:
        out, _ = p.communicate(timeout=UPLINK_S + 300)
        m = re.search(r"acked (\d+) failed (\d+)", out)
        if m is None:
            raise RuntimeError(f"homes process failed: {out[-500:]}")
        acked, failed = acked + int(m[1]), failed + int(m[2])
    return acked, failed


def count(kafka: KafkaSettings, topic: str, expect: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        n = int(sum(asyncio.run(end_offsets(kafka, topic)).values()))
        if n >= expect or time.monotonic() > deadline:
            return n
        time.sleep(1.0)


def window_cpu(pid: int, start_in: float) -> tuple[float, float]:
    """CPU seconds of ``pid`` over the homes' publishing window (from start_in, UPLINK_S)."""
    time.sleep(start_in)
    c0, t0 = cpu_s(pid), time.monotonic()
    time.sleep(UPLINK_S)
    return cpu_s(pid) - c0, time.monotonic() - t0


def uplink(kafka: KafkaSettings, mq: MosquittoState, tmp: Path) -> tuple[BenchResult, BenchResult]:
    prefix = f"bu-{uuid.uuid4().hex[:8]}."
    create_named_topics_sync(kafka, [t.full_name(prefix) for t in TOPICS], 12)
    raw_topic = prefix + "raw-telemetry"
    create_named_topics_sync(kafka, [raw_topic], 12)
    for i in range(HOMES):
        issue_client(mq.pki, f"h{i:05d}")
    start_in = 15.0 + HOMES / 200  # every home connected before the first message
    gateway = GatewayProcess(mq, kafka, prefix, tmp / "gateway-b.log", "bb").start()
    try:
        procs, n = run_homes(mq, start_in)
        gw_cpu, gw_s = window_cpu(gateway.proc.pid, start_in)  # type: ignore[union-attr]
        acked, failed = homes_done(procs)
        in_kafka = count(kafka, f"{prefix}site.telemetry", acked, 60.0)
    finally:
        gateway.stop()
    files = mq.pki.gateway("raw")
    raw = subprocess.Popen(
        [
            *(sys.executable, "-m", "bench.raw_mqtt_kafka", "--port", str(mq.port)),
            *("--ca", str(mq.pki.ca_file), "--cert", str(files.cert), "--key", str(files.key)),
            *("--bootstrap", kafka.bootstrap_servers, "--topic", raw_topic),
            *("--client-id", "gateway@raw"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert raw.stdout is not None
        if "ready" not in raw.stdout.readline():
            raise RuntimeError("the raw forwarder did not start")
        procs, _ = run_homes(mq, start_in)
        raw_cpu, raw_s = window_cpu(raw.pid, start_in)
        raw_acked, _ = homes_done(procs)
        raw_kafka = count(kafka, raw_topic, raw_acked, 60.0)
    finally:
        stop(raw)  # type: ignore[arg-type]
    rate = n / 1.0  # messages per second offered (1 Hz each)
    gw_eff, raw_eff = acked / max(gw_cpu, 1e-9), raw_acked / max(raw_cpu, 1e-9)
    gw_per_k = gw_cpu / gw_s / (rate / 1000)
    raw_per_k = raw_cpu / raw_s / (rate / 1000)
    note = (
        f"{n} homes x 1 Hz for {UPLINK_S:.0f} s ({rate:.0f} msg/s offered) in {HOME_PROCS} "
        f"processes; broker acknowledged {acked}, {failed} failed; in Kafka {in_kafka} "
        f"({acked - in_kafka} lost); gateway CPU {gw_per_k:.1%} of a core per 1,000 msg/s, "
        f"raw forwarder {raw_per_k:.1%} ({raw_kafka} of {raw_acked} forwarded); "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    return (
        BenchResult(
            "gateway uplink, messages per CPU-second",
            gw_eff,
            "msg/cpu-s",
            raw_eff,
            ">= 0.5x the raw MQTT->Kafka forwarder, 0 lost, >= 2,000 homes",
            note=note,
        ),
        BenchResult(
            "gateway uplink, lost messages",
            float(acked - in_kafka),
            "messages",
            0.0,
            "0",
            higher_is_better=False,
            note=note,
        ),
    )


# -------------------------------------------------------------------- link bytes


def link_bytes(pid: int, ports: set[int]) -> int:
    """TCP payload sent + received by ``pid`` on connections to ``ports`` (tcp_info)."""
    out = subprocess.run(["ss", "-tinpH"], capture_output=True, text=True, check=True).stdout
    total, take = 0, False
    for line in out.splitlines():
        if not line.startswith(("\t", " ")):
            peer = line.split()[4] if len(line.split()) > 4 else ""
            take = (
                f"pid={pid}," in line
                and peer.rsplit(":", 1)[-1].isdigit()
                and int(peer.rsplit(":", 1)[-1]) in ports
            )
            continue
        if take:
            sent = re.search(r"bytes_sent:(\d+)", line)
            recv = re.search(r"bytes_received:(\d+)", line)
            total += int(sent[1]) if sent else 0
            total += int(recv[1]) if recv else 0
    return total


async def fleet_commands(kafka: KafkaSettings, topic: str, until: float) -> int:
    codec = default_codec()
    producer = clients.producer(kafka, linger_ms=20)
    await clients.start(producer, kafka)
    n = 0
    try:
        while time.monotonic() < until:
            t0 = time.monotonic()
            for i in range(FLEET_SITES):
                site = f"b{i:04d}"
                value = codec.encode(COMMAND, command_record(new_command(site, power_kw=1.0)))
                await producer.send(topic, value=value, key=site.encode())
                n += 1
            await producer.flush()
            await asyncio.sleep(max(0.0, FLEET_PERIOD_S - (time.monotonic() - t0)))
    finally:
        await clients.stop(producer)
    return n


def home_link(kafka: KafkaSettings, mq: MosquittoState, tmp: Path) -> BenchResult:
    with SimFleet(2, 1) as fleet:
        topics = BridgeTopics(prefix=f"bl-{uuid.uuid4().hex[:8]}.")
        create_named_topics_sync(kafka, [t.full_name(topics.prefix) for t in TOPICS], 12)
        gateway = GatewayProcess(mq, kafka, topics.prefix, tmp / "gateway-c.log", "bc").start()
        direct = start_bridge(kafka, fleet.sites[:1], tmp, topics, "link-kafka")
        home = start_mqtt_bridge(mq, fleet.sites[1:], tmp, topics, "link-mqtt")
        kafka_ports = {int(b.rsplit(":", 1)[1]) for b in kafka.bootstrap_servers.split(",")}
        try:
            time.sleep(15.0)  # both connected, first fleet round past
            until = time.monotonic() + LINK_S
            k0, m0 = link_bytes(direct.pid, kafka_ports), link_bytes(home.pid, {mq.port})
            t0 = time.monotonic()
            sent = asyncio.run(fleet_commands(kafka, topics.command_topic, until))
            span = time.monotonic() - t0
            k1, m1 = link_bytes(direct.pid, kafka_ports), link_bytes(home.pid, {mq.port})
        finally:
            stop(home)
            stop(direct)
            gateway.stop()
    per_hour = 3600.0 / span
    mqtt_h, kafka_h = (m1 - m0) * per_hour, (k1 - k0) * per_hour
    return BenchResult(
        "bytes per home per hour on the home's link",
        mqtt_h / 1e6,
        "MB/h",
        kafka_h / 1e6,
        "below the direct-Kafka bridge (the home reads only its own commands)",
        higher_is_better=False,
        note=(
            f"1 site, telemetry 1 Hz, {span:.0f} s measured while {sent} fleet commands "
            f"({FLEET_SITES} sites every {FLEET_PERIOD_S:.0f} s) flowed; MQTT over TLS "
            f"{mqtt_h / 1e6:.2f} MB/h, Kafka PLAINTEXT {kafka_h / 1e6:.2f} MB/h"
        ),
    )


def latency_results(via: list[float], base: list[float], gw_note: str) -> list[BenchResult]:
    note = (
        f"{SITES} simulated sites, {ROUNDS} rounds; through Mosquitto + gateway "
        f"{len(via)} commands, direct {len(base)}; direct p50 {statistics.median(base):.1f} "
        f"/ p99 {pct(base, 0.99):.1f} ms; {gw_note}; load average {os.getloadavg()[0]:.2f}"
    )
    return [
        BenchResult(
            "command->first write p50 via MQTT + gateway",
            statistics.median(via),
            "ms",
            statistics.median(base),
            "<= direct Kafka path + 5 ms",
            higher_is_better=False,
            note=note,
        ),
        BenchResult(
            "command->first write p99 via MQTT + gateway",
            pct(via, 0.99),
            "ms",
            pct(base, 0.99),
            "informational (the OEM maps' request gaps bound p99 on both paths)",
            higher_is_better=False,
            note=note,
        ),
    ]


def run() -> list[BenchResult]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmpdir,
        bench_broker(Path(tmpdir)) as kafka,
        # one gateway identity per part (a stopped gateway's session keeps its share of
        # the uplinks), one for the raw forwarder (its own share group)
        local_mosquitto(Path(tmpdir) / "mqtt", gateways=("ba", "bb", "bc", "raw")) as mq,
    ):
        tmp = Path(tmpdir)
        results: list[BenchResult] = []
        if "latency" in PARTS:
            results += latency_results(*command_latency(kafka, mq, tmp))
        if "uplink" in PARTS:
            results += uplink(kafka, mq, tmp)
        if "link" in PARTS:
            results.append(home_link(kafka, mq, tmp))
        return results


if __name__ == "__main__":
    for r in run():
        print(r.as_json())
