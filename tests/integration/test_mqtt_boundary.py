"""The MQTT boundary on a real Mosquitto and a real Kafka: who may read and write what, bad
input dead-lettered, and the faults of issue 17 (gateway killed with -9, Mosquitto
restarted, a home offline) losing nothing and writing no command twice.

The home's offline span is ``FLOWERHUB_MQTT_OFFLINE_S`` (15 s by default; the issue's 60 s
changes no assertion: every command sent meanwhile expires before it ends but the last)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contract.codec import default_codec
from contract.kafka.admin import create_named_topics_sync
from contract.kafka.settings import KafkaSettings
from contract.mqtt.client import MqttClient, MqttConnectError, MqttRefusedError
from contract.mqtt.layout import Channel, site_topic
from contract.testing.metrics import Scrape, scrape
from contract.testing.strategies import site_telemetry_example
from contract.topics import TOPICS
from edge.bridge.config import MqttConfig
from edge.bridge.events import RESULT, TELEMETRY
from edge.bridge.sink import BridgeTopics
from edge.testing.harness import SimBridge, SimSpec, new_command, produce_commands
from flowerhub.broker.tls import write_ca
from flowerhub.gateway.harness import (
    CuttableLink,
    GatewayProcess,
    connected,
    read_raw,
    site_settings,
)
from flowerhub.mqtt.launcher import (
    MosquittoState,
    local_mosquitto,
    restart_mosquitto,
)
from flowerhub.mqtt.pki import issue_client

pytestmark = pytest.mark.integration

CODEC = default_codec()
OFFLINE_S = float(os.environ.get("FLOWERHUB_MQTT_OFFLINE_S", "15"))


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoState]:
    with local_mosquitto(tmp_path_factory.mktemp("mqtt"), gateways=("t1", "t2")) as state:
        yield state


@pytest.fixture
def prefix(kafka: KafkaSettings, unique_name: Any) -> str:
    p = str(unique_name("mq"))[-40:].lstrip("-.") + "."
    create_named_topics_sync(kafka, [t.full_name(p) for t in TOPICS], 2)
    return p


@pytest.fixture
def gateway(
    mosquitto: MosquittoState, kafka: KafkaSettings, prefix: str, tmp_path: Path
) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(mosquitto, kafka, prefix, tmp_path / "gateway.log", metrics=True).start()
    try:
        yield gw
    finally:
        gw.stop()


def telemetry(site_id: str, **fields: Any) -> bytes:
    rec = site_telemetry_example(site_id=site_id, event_id=str(uuid.uuid4()), **fields)
    return CODEC.encode("SiteTelemetry", rec)


def mqtt_config(mq: MosquittoState, sites: list[str], port: int | None = None) -> MqttConfig:
    for site_id in sites:
        issue_client(mq.pki, site_id)
    return MqttConfig(
        host="127.0.0.1",
        port=port or mq.port,
        ca_file=mq.pki.ca_file,
        certs_dir=mq.pki.clients_dir,
        session_expiry_s=600,
        keepalive_s=5,
        connect_timeout_s=3.0,
        reconnect_min_s=0.2,
        reconnect_max_s=1.0,
    )


def wait_for(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


# ------------------------------------------------------------------ identity and ACL


def test_a_home_can_neither_read_nor_write_another_homes_topics(
    mosquitto: MosquittoState, kafka: KafkaSettings, prefix: str, gateway: GatewayProcess
) -> None:
    async def run() -> tuple[list[Any], list[Any], list[Any]]:
        a = await connected(mosquitto, "home-a", clean_start=True)
        b = await connected(mosquitto, "home-b", clean_start=True)
        # Mosquitto 2.0 grants the SUBACK and checks read access on every delivery
        await a.subscribe([site_topic("home-b", Channel.COMMANDS), "fh/v1/site/+/commands"])
        await b.subscribe([site_topic("home-b", Channel.COMMANDS)])
        with pytest.raises(MqttRefusedError, match="Not authorized") as refused:
            await a.publish(site_topic("home-b", Channel.TELEMETRY), telemetry("home-b"))
        assert refused.value.code == 0x87
        with pytest.raises(MqttRefusedError):  # not even its own commands topic
            await a.publish(site_topic("home-a", Channel.COMMANDS), b"x")
        await a.publish(site_topic("home-a", Channel.TELEMETRY), telemetry("home-a"))
        cmd = new_command("home-b", power_kw=1.0)
        await produce_commands(kafka, f"{prefix}site.commands", [cmd])
        got_b = await asyncio.wait_for(b.messages.get(), 30)
        await asyncio.sleep(1.0)  # room for a wrong delivery to A
        got_a = [a.messages.get_nowait() for _ in range(a.messages.qsize())]
        tel = await read_raw(kafka, f"{prefix}site.telemetry", lambda r: len(r) >= 1, 15)
        await asyncio.sleep(1.0)
        tel = await read_raw(kafka, f"{prefix}site.telemetry", lambda r: False, 2)
        await a.disconnect()
        await b.disconnect()
        return [got_b], got_a, tel

    got_b, got_a, tel = asyncio.run(run())
    assert got_b[0].topic == "fh/v1/site/home-b/commands"
    assert got_a == []  # A's subscriptions to B's commands delivered nothing
    assert [r.key for r in tel] == [b"home-a"]  # B's "telemetry" from A never reached Kafka
    # /metrics: the one command consumed and published, the one uplink acknowledged
    assert gateway.metrics_url is not None
    page = scrape(gateway.metrics_url)
    assert page.value("flowerhub_gateway_downlink_received_total") == 1
    assert page.value("flowerhub_gateway_downlink_published_total") == 1
    assert page.value("flowerhub_gateway_uplink_acknowledged_total") == 1
    assert page.value("flowerhub_dead_letters_total") == 0


def test_no_certificate_a_wrong_ca_or_plain_tcp_is_refused(
    mosquitto: MosquittoState, tmp_path: Path
) -> None:
    good = site_settings(mosquitto, "home-c")

    async def attempt(settings: Any) -> str:
        with pytest.raises(MqttConnectError) as err:
            await MqttClient(settings, client_id="home-c").connect()
        return f"{err.value}"

    no_cert = good.model_copy(update={"cert_file": None, "key_file": None})
    assert "wants a client certificate" in asyncio.run(attempt(no_cert))
    other_ca = write_ca(tmp_path / "other-ca.pem", "another CA")
    assert "not trusted" in asyncio.run(attempt(good.model_copy(update={"ca_file": other_ca})))
    # a client certificate from another CA: the broker refuses the handshake
    from flowerhub.mqtt.pki import ensure_ca

    rogue = issue_client(ensure_ca(tmp_path / "rogue"), "home-c")
    rogue_settings = good.model_copy(update={"cert_file": rogue.cert, "key_file": rogue.key})
    asyncio.run(attempt(rogue_settings))
    # plain TCP: an MQTT CONNECT in clear gets no CONNACK, the connection is closed
    connect = bytes.fromhex("101000044d5154540502003c000003") + b"\x00\x03abc"
    with socket.create_connection(("127.0.0.1", mosquitto.port), 5) as sock:
        sock.settimeout(5)
        sock.sendall(connect)
        try:
            answer = sock.recv(16)
        except (ConnectionResetError, TimeoutError):
            answer = b""
    assert not answer.startswith(b"\x20")  # no CONNACK: the listener speaks TLS only


# ----------------------------------------------------------------------- bad input


def test_bad_uplinks_are_dead_lettered_and_nothing_else_is_lost(
    mosquitto: MosquittoState, kafka: KafkaSettings, prefix: str, gateway: GatewayProcess
) -> None:
    good = [telemetry("home-d") for _ in range(20)]
    bad = {
        "garbage": b"\x00garbage",
        "truncated": telemetry("home-d")[:-9],
        "wrong schema": CODEC.encode("SiteCommand", CODEC.decode(_command_bytes("home-d")).record),
        "site mismatch": telemetry("home-x"),
    }
    topic = site_topic("home-d", Channel.TELEMETRY)

    async def run() -> tuple[list[Any], list[Any]]:
        d = await connected(mosquitto, "home-d", clean_start=True)
        for i, value in enumerate(good):
            await d.publish(topic, value)
            if i % 5 == 0:
                await d.publish(topic, list(bad.values())[i // 5])
        await d.disconnect()
        dead = await read_raw(kafka, f"{prefix}deadletter", lambda r: len(r) >= len(bad), 30)
        tel = await read_raw(kafka, f"{prefix}site.telemetry", lambda r: len(r) >= len(good), 30)
        return dead, tel

    dead, tel = asyncio.run(run())
    assert [r.value for r in tel] == good  # all of them, in order, bytes unchanged
    letters = [CODEC.decode(r.value).record for r in dead]
    assert [d["original"] for d in letters] == list(bad.values())
    assert {d["source_topic"] for d in letters} == {f"mqtt:{topic}"}
    reasons = [f"{d['error_type']}: {d['reason']}" for d in letters]
    assert "WrongChannelError" in reasons[2]
    assert "SiteMismatchError: topic names site 'home-d'" in reasons[3]
    assert all(d["consumer"] == "gateway@t1" for d in letters)
    assert gateway.alive()
    # the gateway's /metrics (parsed by prometheus_client): dead letters by error type, the
    # uplink's counts; every message PUBACKed once Kafka acknowledged it
    assert gateway.metrics_url is not None
    url = gateway.metrics_url
    sent = len(good) + len(bad)
    pages: list[Scrape] = []

    def acknowledged() -> bool:
        pages.append(scrape(url))
        return pages[-1].value("flowerhub_gateway_uplink_acknowledged_total") == sent

    wait_for(acknowledged, 15, "every uplink acknowledged on /metrics")
    now = pages[-1]
    dlq = "flowerhub_dead_letters_total"
    assert now.value(dlq, consumer="gateway@t1") == len(bad)
    assert now.value(dlq, error_type="WrongChannelError") == 1
    assert now.value(dlq, error_type="SiteMismatchError") == 1
    assert now.value("flowerhub_gateway_uplink_received_total") == sent
    produced = now.value("flowerhub_gateway_uplink_produced_total", topic=f"{prefix}site.telemetry")
    assert produced == len(good)
    assert now.value("flowerhub_gateway_uplink_in_hand") == 0
    assert now.value("flowerhub_gateway_connected") == 1
    assert now.value("flowerhub_gateway_sessions_total") == 1
    assert now.has("flowerhub_gateway_session_failures")
    assert now.has("flowerhub_consumer_lag_records")
    assert now.value("flowerhub_gateway_info", name="t1", identity="gateway@t1") == 1


def _command_bytes(site_id: str) -> bytes:
    from edge.bridge.events import COMMAND, command_record

    return CODEC.encode(COMMAND, command_record(new_command(site_id, power_kw=1.0)))


def test_two_gateways_share_the_uplinks_and_one_leaving_loses_nothing(
    mosquitto: MosquittoState, kafka: KafkaSettings, prefix: str, tmp_path: Path
) -> None:
    one = GatewayProcess(mosquitto, kafka, prefix, tmp_path / "gw1.log", "t1").start()
    two = GatewayProcess(mosquitto, kafka, prefix, tmp_path / "gw2.log", "t2").start()
    values = [telemetry("home-e") for _ in range(120)]
    topic = site_topic("home-e", Channel.TELEMETRY)

    async def publish(batch: list[bytes]) -> None:
        e = await connected(mosquitto, "home-e", clean_start=True)
        for value in batch:
            await e.publish(topic, value)
            await asyncio.sleep(0.01)
        await e.disconnect()

    try:
        asyncio.run(publish(values[:60]))
        two.stop()  # scaled down: it leaves, the broker sends everything to the other one
        asyncio.run(publish(values[60:]))
        tel = asyncio.run(
            read_raw(kafka, f"{prefix}site.telemetry", lambda r: len(r) >= len(values), 30)
        )
    finally:
        one.stop()
        two.stop()
    assert sorted(r.value for r in tel) == sorted(values)  # all, none twice
    shares = [
        int(line.split("uplink_in=")[1].split(",")[0])
        for log in (tmp_path / "gw1.log", tmp_path / "gw2.log")
        for line in log.read_text().splitlines()
        if "uplink_in=" in line
    ]
    assert len(shares) == 2
    assert all(n > 0 for n in shares), shares  # both took a share while both ran
    assert sum(shares) == len(values)


# -------------------------------------------------------------------------- faults


def _results_by_command(records: list[Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in records:
        rec = CODEC.decode(r.value).record
        out.setdefault(rec["command_id"], set()).add(rec["event_id"])
    return out


def test_gateway_killed_mid_stream_loses_nothing_and_writes_no_command_twice(
    mosquitto: MosquittoState, kafka: KafkaSettings, prefix: str, tmp_path: Path
) -> None:
    topics = BridgeTopics(prefix=prefix)
    gw = GatewayProcess(mosquitto, kafka, prefix, tmp_path / "gateway.log")
    specs = [SimSpec("kill-1", "huawei"), SimSpec("kill-2", "sungrow")]
    commands = [new_command(s.site_id, power_kw=float(i % 4)) for i in range(15) for s in specs]
    h = SimBridge(
        specs,
        kafka=kafka,
        state=tmp_path / "bridge",
        topics=topics,
        mqtt=mqtt_config(mosquitto, [s.site_id for s in specs]),
        telemetry_interval_s=0.2,
    )
    try:
        gw.start()
        h.start_sims()
        bridge = h.start_bridge()
        asyncio.run(produce_commands(kafka, topics.command_topic, commands[:10]))
        gw.kill9()  # mid-stream: commands and telemetry in flight
        asyncio.run(produce_commands(kafka, topics.command_topic, commands[10:20]))
        time.sleep(1.0)
        gw.start()  # the same name: its MQTT session and the consumer group's offsets
        asyncio.run(produce_commands(kafka, topics.command_topic, commands[20:]))
        results = asyncio.run(
            read_raw(
                kafka,
                topics.for_event(RESULT),
                lambda r: len(_results_by_command(r)) >= len(commands),
                60,
            )
        )
        h.stop_bridge()
        emitted = bridge.sink.emitted.get(TELEMETRY, 0)
        left = [r for r in bridge.outbox.pending(100_000) if r.topic.endswith("telemetry")]
        tel = asyncio.run(
            read_raw(
                kafka,
                topics.telemetry_topic(),
                lambda r: len({x.value for x in r}) >= emitted - len(left),
                30,
            )
        )
    finally:
        gw.stop()
        h.close()
    by_command = _results_by_command(results)
    assert set(by_command) == {c.command_id for c in commands}  # every command reached home
    # a redelivered command re-sends its stored result: one outcome, one Modbus write each
    assert all(len(ids) == 1 for ids in by_command.values()), by_command
    unique = {r.value for r in tel}
    assert len(unique) == emitted - len(left)  # every acknowledged uplink reached Kafka
    assert not {r.value for r in left} & unique


def test_mosquitto_restart_bridges_and_gateway_reconnect_by_themselves(
    kafka: KafkaSettings, prefix: str, tmp_path: Path
) -> None:
    # a Mosquitto of its own: the restarted broker is a new process this test starts and stops
    # (the module's shared broker would change identity under the other tests)
    with local_mosquitto(tmp_path / "mqtt", gateways=("t1",)) as mosquitto:
        gateway = GatewayProcess(mosquitto, kafka, prefix, tmp_path / "gateway.log").start()
        try:
            _restart_and_reconnect(mosquitto, kafka, prefix, gateway, tmp_path)
        finally:
            gateway.stop()  # local_mosquitto stops the restarted broker (its state file)


def _restart_and_reconnect(
    mosquitto: MosquittoState,
    kafka: KafkaSettings,
    prefix: str,
    gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    topics = BridgeTopics(prefix=prefix)
    with SimBridge(
        [SimSpec("restart-1", "saj")],
        kafka=kafka,
        state=tmp_path / "bridge",
        topics=topics,
        mqtt=mqtt_config(mosquitto, ["restart-1"]),
        telemetry_interval_s=0.2,
    ) as h:
        bridge = h.bridge
        assert bridge is not None
        assert bridge.mqtt is not None
        link = bridge.mqtt
        wait_for(lambda: bridge.stats.sent > 3, 20, "telemetry over MQTT")
        restarted = restart_mosquitto(Path(mosquitto.data_dir))
        assert restarted.port == mosquitto.port
        connects = link.connects
        wait_for(lambda: link.connects > connects, 30, "the bridge to reconnect")
        cmd = new_command("restart-1", power_kw=2.0)
        asyncio.run(produce_commands(kafka, topics.command_topic, [cmd]))
        results = asyncio.run(
            read_raw(
                kafka,
                topics.for_event(RESULT),
                lambda r: cmd.command_id in _results_by_command(r),
                45,
            )
        )
        sent = bridge.stats.sent
        wait_for(lambda: bridge.stats.sent > sent + 3, 20, "telemetry to flow again")
    assert cmd.command_id in _results_by_command(results)
    assert gateway.alive()


def test_a_home_offline_gets_the_latest_valid_command_and_drains_its_outbox_in_order(
    mosquitto: MosquittoState,
    kafka: KafkaSettings,
    prefix: str,
    gateway: GatewayProcess,
    tmp_path: Path,
) -> None:
    topics = BridgeTopics(prefix=prefix)
    link = CuttableLink(mosquitto.port)
    h = SimBridge(
        [SimSpec("away-1", "huawei")],
        kafka=kafka,
        state=tmp_path / "bridge",
        topics=topics,
        telemetry_interval_s=0.5,
    )
    h.start_sims()
    port = h.call(link.start())
    h.mqtt = mqtt_config(mosquitto, ["away-1"], port)
    try:
        bridge = h.start_bridge()
        wait_for(lambda: bridge.stats.sent > 2, 20, "telemetry over MQTT")
        h.call(link.cut())
        expiring = [new_command("away-1", power_kw=p, valid_s=3.0) for p in (1.0, 2.0)]
        asyncio.run(produce_commands(kafka, topics.command_topic, expiring))
        time.sleep(OFFLINE_S)
        latest = new_command("away-1", power_kw=3.0, valid_s=120.0)
        asyncio.run(produce_commands(kafka, topics.command_topic, [latest]))
        time.sleep(1.0)  # the gateway has published it into the home's session
        queued = bridge.outbox.depth
        h.call(link.restore())
        results = asyncio.run(
            read_raw(
                kafka,
                topics.for_event(RESULT),
                lambda r: latest.command_id in _results_by_command(r),
                45,
            )
        )
        wait_for(lambda: bridge.outbox.depth <= 2, 30, "the outbox to drain")
        h.stop_bridge()
        emitted = bridge.sink.emitted.get(TELEMETRY, 0)
        left = bridge.outbox.depth
        tel = asyncio.run(
            read_raw(
                kafka,
                topics.telemetry_topic(),
                lambda r: len({x.value for x in r}) >= emitted - left,
                30,
            )
        )
    finally:
        h.stop_bridge()
        h.call(link.cut())
        h.close()
    assert queued >= OFFLINE_S / 0.5 - 2  # telemetry waited in the outbox meanwhile
    statuses = {
        CODEC.decode(r.value).record["command_id"]: CODEC.decode(r.value).record["status"]
        for r in results
    }
    assert statuses[latest.command_id] == "APPLIED"
    for old in expiring:  # not delivered (expired on the broker) or refused as expired
        assert statuses.get(old.command_id, "EXPIRED") != "APPLIED"
    times = [CODEC.decode(r.value).record["event_time"] for r in tel]
    first = list(dict.fromkeys(zip(times, (r.value for r in tel), strict=True)))
    assert [t for t, _ in first] == sorted(t for t, _ in first)  # in order, gaps none
    assert len(first) >= emitted - left
    assert Counter(r.value for r in tel).most_common(1)[0][1] <= 2  # at most a resend
