"""Edge bridge on a real broker against real simulated inverters (Modbus TCP): commands in,
register writes, CommandResult out. One bridge process serves five simulated sites, with its
``/metrics`` served (parsed with prometheus_client's parser: the series move as things
happen)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from contract.enums import CommandKind, Product
from contract.kafka.admin import create_named_topics_sync as create_topics
from contract.kafka.settings import KafkaSettings
from contract.records import ReserveArm
from contract.testing.metrics import Scrape, scrape
from edge.bridge.model import BridgeCommand
from edge.bridge.sink import BridgeTopics
from edge.sim.battery import BatteryParams
from edge.testing.harness import (
    SimBridge,
    SimSpec,
    free_port,
    new_command,
    produce_commands,
    read_events,
)
from tests import leakcheck

pytestmark = pytest.mark.integration

MOVED_PORT = free_port()
OEM_SITES = {"hw": "huawei", "sg": "sungrow", "sj": "saj"}
SPECS = [
    *(SimSpec(site, oem) for site, oem in OEM_SITES.items()),
    SimSpec("low", "huawei", soc_pct=8.0, site={"soc_reserve_min_pct": 10.0}),
    SimSpec("fcr", "sungrow"),
    SimSpec("stp", "huawei"),
    SimSpec("mb", "saj"),
    SimSpec("hb", "sungrow"),
    SimSpec(
        "mv",
        "sungrow",
        site={
            "rediscover_hosts": "127.0.0.1",
            "rediscover_ports": [MOVED_PORT],
            "rediscover_every_s": 1.0,
        },
    ),
]


@pytest.fixture(scope="module")
def fleet(kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimBridge]:
    topics = BridgeTopics(prefix=f"bridge-{uuid.uuid4().hex[:8]}.")
    create_topics(kafka, [topics.command_topic, *topics.outgoing()], 1)
    harness = SimBridge(
        SPECS,
        kafka=kafka,
        state=tmp_path_factory.mktemp("bridge"),
        topics=topics,
        telemetry_interval_s=0.25,
        # a brisk battery keeps the suite fast; OEM time constants are exercised in the bench
        battery=BatteryParams(tau_s=0.4, dead_time_s=0.2),
        metrics=True,
    )
    with leakcheck.shared_service("bridge fleet"), harness:
        yield harness


def send(fleet: SimBridge, cmds: list[BridgeCommand], key: str | None = None) -> None:
    asyncio.run(produce_commands(fleet.kafka, fleet.topics.command_topic, cmds, key=key))


def results(fleet: SimBridge, command_ids: set[str], timeout: float = 30.0) -> dict[str, Any]:
    """The latest CommandResult per command id (waits until all are there)."""

    def done(recs: list[dict[str, Any]]) -> bool:
        return command_ids <= {r["command_id"] for r in recs}

    topic = fleet.topics.for_event("CommandResult")
    recs = asyncio.run(read_events(fleet.kafka, topic, done, timeout))
    out = {r["command_id"]: r for r in recs if r["command_id"] in command_ids}
    assert set(out) == command_ids, f"missing results for {command_ids - set(out)}"
    return out


def writes(fleet: SimBridge, site: str) -> int:
    return fleet.do(lambda: len(fleet.sims[site].write_log))


def metrics(fleet: SimBridge) -> Scrape:
    assert fleet.metrics_url is not None
    return scrape(fleet.metrics_url)


LATENCY = "flowerhub_bridge_command_latency_seconds_count"
RESULTS = "flowerhub_bridge_command_results_total"


@pytest.mark.parametrize("site", sorted(OEM_SITES))
def test_command_to_modbus_writes_to_result_each_oem(fleet: SimBridge, site: str) -> None:
    before, seen = writes(fleet, site), metrics(fleet)
    oem = OEM_SITES[site]
    cmd = new_command(site, CommandKind.SET_POWER, 2.0)
    send(fleet, [cmd])
    res = results(fleet, {cmd.command_id})[cmd.command_id]
    assert res["status"] == "APPLIED", (res["status"], res["reason"])
    now = metrics(fleet)
    assert now.value(LATENCY, oem=oem) == seen.value(LATENCY, oem=oem) + 1
    assert now.value(RESULTS, oem=oem, status="APPLIED") == (
        seen.value(RESULTS, oem=oem, status="APPLIED") + 1
    )
    assert now.value("flowerhub_modbus_requests_total", oem=oem) > seen.value(
        "flowerhub_modbus_requests_total", oem=oem
    )
    assert res["written_kw"] == 2.0
    assert res["register_writes"] >= 1
    assert writes(fleet, site) - before >= res["register_writes"]
    assert res["measured_kw"] == pytest.approx(2.0, abs=0.5)
    assert res["latency_ms"] is not None
    assert res["latency_ms"] > 0
    # the inverter really runs at the commanded power
    assert fleet.do(lambda: fleet.sims[site].battery.power_kw) == pytest.approx(2.0, abs=0.5)


def test_expired_command_is_rejected_without_writes(fleet: SimBridge) -> None:
    before = writes(fleet, "hw")
    cmd = new_command("hw", CommandKind.SET_POWER, 1.0, valid_s=-5.0)
    send(fleet, [cmd])
    res = results(fleet, {cmd.command_id})[cmd.command_id]
    assert res["status"] == "REJECTED"
    assert "expired" in res["reason"]
    assert res["register_writes"] == 0
    assert writes(fleet, "hw") == before


def test_foreign_site_is_rejected_and_not_ours_is_skipped(fleet: SimBridge) -> None:
    before = {s: writes(fleet, s) for s in OEM_SITES}
    foreign = new_command("someone-else", CommandKind.SET_POWER, 1.0)
    not_ours = new_command("someone-else", CommandKind.SET_POWER, 1.0)
    probe = new_command(
        "sj", CommandKind.SET_POWER, 0.5
    )  # ordered after both: proves they were read
    send(fleet, [foreign], key="sj")  # keyed to an owned site, body names another
    send(fleet, [not_ours, probe])
    got = results(fleet, {foreign.command_id, probe.command_id})
    assert got[foreign.command_id]["status"] == "REJECTED"
    assert "not served here" in got[foreign.command_id]["reason"]
    fleet.drain()
    topic = fleet.topics.for_event("CommandResult")
    everything = asyncio.run(read_events(fleet.kafka, topic, lambda _r: False, 2.0))
    assert not_ours.command_id not in {r["command_id"] for r in everything}
    # (hw: no heartbeat writes in its map, so any write there would be a command's)
    assert writes(fleet, "hw") == before["hw"]


def test_out_of_range_power_is_clamped_and_reported(fleet: SimBridge) -> None:
    cmd = new_command("sg", CommandKind.SET_POWER, -50.0)
    send(fleet, [cmd])
    res = results(fleet, {cmd.command_id})[cmd.command_id]
    assert res["status"] == "CLAMPED"
    assert res["requested_kw"] == -50.0
    assert res["written_kw"] == -5.0
    assert res["likely_cause"] == "SITE_LIMIT"
    assert res["measured_kw"] == pytest.approx(-5.0, abs=0.6)


def test_stop_overtakes_queued_set_power(fleet: SimBridge) -> None:
    first = new_command("stp", CommandKind.SET_POWER, 1.5)
    queued = new_command("stp", CommandKind.SET_POWER, 3.7)
    stop = new_command("stp", CommandKind.STOP)
    send(fleet, [first, queued, stop])
    got = results(fleet, {first.command_id, queued.command_id, stop.command_id})
    assert got[queued.command_id]["status"] == "REJECTED"
    assert "superseded by STOP" in got[queued.command_id]["reason"]
    assert got[stop.command_id]["status"] == "APPLIED", got[stop.command_id]["reason"]
    assert got[stop.command_id]["written_kw"] == 0.0
    # the queued 3.7 kW never reached the inverter
    log = fleet.do(lambda: list(fleet.sims["stp"].write_log))
    assert all(3700 not in w.values for w in log)
    assert fleet.do(lambda: fleet.sims["stp"].battery.power_kw) == pytest.approx(0.0, abs=0.3)


def test_min_soc_discharge_is_clamped_with_measured_power(fleet: SimBridge) -> None:
    # PV may have charged it since the start: put it back below the reserve, let a poll see it
    fleet.do(lambda: setattr(fleet.sims["low"].battery, "soc_pct", 8.0))
    time.sleep(3 * fleet.telemetry_interval_s)
    cmd = new_command("low", CommandKind.SET_POWER, 3.0)
    send(fleet, [cmd])
    res = results(fleet, {cmd.command_id})[cmd.command_id]
    assert res["status"] in ("CLAMPED", "OVERRIDDEN")
    assert res["likely_cause"] == "SOC_LIMIT"
    assert res["written_kw"] == 0.0
    assert res["measured_kw"] is not None
    assert res["measured_kw"] <= 0.3
    assert res["measured_soc_pct"] == pytest.approx(8.0, abs=0.5)


def test_armed_fcr_d_responds_to_frequency_without_commands(fleet: SimBridge) -> None:
    arm = new_command(
        "fcr",
        CommandKind.ARM_RESERVE,
        reserve=ReserveArm(Product.FCR_D_UP, 4.0, 49.9, 49.5),
        valid_s=120.0,
    )
    send(fleet, [arm])
    assert results(fleet, {arm.command_id})[arm.command_id]["status"] in ("APPLIED", "CLAMPED")
    bridge = fleet.bridge
    assert bridge is not None
    consumed = bridge.stats.consumed
    site = bridge.sites["fcr"]

    def delivered() -> float:
        """Battery power - the site's baseline (its own self-consumption, computed by the
        bridge from the same readings): the response on top of what the home does."""
        return fleet.do(lambda: fleet.sims["fcr"].battery.power_kw - site.shared.last_baseline_kw)

    fleet.do(lambda: fleet.sims["fcr"].set_frequency(49.7))  # half-way: 2 kW up
    deadline = time.monotonic() + 15
    power = 0.0
    while time.monotonic() < deadline:
        power = delivered()
        if abs(power - 2.0) < 0.3:
            break
        time.sleep(0.2)
    assert power == pytest.approx(2.0, abs=0.3)
    fleet.do(lambda: fleet.sims["fcr"].set_frequency(49.4))  # beyond full activation: 4 kW
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        power = delivered()
        if abs(power - 4.0) < 0.3:
            break
        time.sleep(0.2)
    assert power == pytest.approx(4.0, abs=0.3)
    assert bridge.stats.consumed == consumed  # no command event was involved
    assert bridge.sites["fcr"].reserve.droop_writes >= 2
    # telemetry says what is armed
    topic = fleet.topics.for_event("SiteTelemetry")
    tel = asyncio.run(
        read_events(
            fleet.kafka,
            topic,
            lambda rs: any(r["site_id"] == "fcr" and r["reserve_armed"] == "FCR_D_UP" for r in rs),
            10.0,
        )
    )
    armed = [r for r in tel if r["site_id"] == "fcr" and r["reserve_armed"] == "FCR_D_UP"]
    assert armed
    assert {r["armed_fcr_d_up_kw"] for r in armed} == {4.0}  # per product, beside the legacy
    assert all(r["baseline_kw"] is not None for r in armed)
    fleet.do(lambda: fleet.sims["fcr"].set_frequency(50.0))
    send(fleet, [stop := new_command("fcr", CommandKind.STOP)])
    results(fleet, {stop.command_id})
    assert fleet.do(lambda: dict(bridge.sites["fcr"].reserve.armed)) == {}


def _wait(pred: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_modbus_loss_is_reported_then_recovered(fleet: SimBridge) -> None:
    bridge = fleet.bridge
    assert bridge is not None
    site, sim = bridge.sites["mb"], fleet.sims["mb"]
    _wait(lambda: fleet.do(site.link_state) == "ONLINE", 30, "the first poll")
    errors = "flowerhub_modbus_errors_total"
    up = metrics(fleet)
    fleet.call(sim.stop())
    try:
        _wait(lambda: fleet.do(site.link_state) == "OFFLINE", 30, "the link to go OFFLINE")
        assert fleet.do(lambda: site.shared.link.errors) >= 3
        down = metrics(fleet)
    finally:
        fleet.call(sim.start())
    _wait(lambda: fleet.do(site.link_state) == "ONLINE", 30, "the link to come back")
    # the Modbus errors of the site's OEM moved (the other OEMs' did not); the site counted
    # OFFLINE while it was, ONLINE again after
    assert down.value(errors, oem="saj") >= up.value(errors, oem="saj") + 3
    assert down.value(errors, oem="saj", kind="unreachable") > 0
    for oem in ("huawei", "sungrow"):
        assert down.value(errors, oem=oem) == up.value(errors, oem=oem), oem
    assert down.value("flowerhub_bridge_sites", oem="saj", state="OFFLINE") == 1
    assert metrics(fleet).value("flowerhub_bridge_sites", oem="saj", state="OFFLINE") == 0

    def seen(recs: list[dict[str, Any]]) -> list[str]:
        return [r["state"] for r in recs if r["site_id"] == "mb"]

    def done(recs: list[dict[str, Any]]) -> bool:
        states = seen(recs)
        return "OFFLINE" in states and "ONLINE" in states[states.index("OFFLINE") :]

    topic = fleet.topics.for_event("DeviceStatus")
    recs = asyncio.run(read_events(fleet.kafka, topic, done, 30.0))
    assert done(recs), seen(recs)
    offline = next(r for r in recs if r["site_id"] == "mb" and r["state"] == "OFFLINE")
    assert offline["last_error"]
    assert offline["error_count"] >= 1


def test_device_that_moved_is_rediscovered_by_serial(fleet: SimBridge) -> None:
    bridge = fleet.bridge
    assert bridge is not None
    site, sim = bridge.sites["mv"], fleet.sims["mv"]
    _wait(lambda: fleet.do(site.link_state) == "ONLINE", 30, "the first poll (serial known)")
    fleet.call(sim.move_to("127.0.0.1", MOVED_PORT))  # DHCP gave the dongle a new address
    _wait(lambda: fleet.do(site.link_state) == "REDISCOVERED", 40, "rediscovery")
    assert fleet.do(lambda: site.shared.link.port) == MOVED_PORT
    before = writes(fleet, "mv")
    cmd = new_command("mv", CommandKind.SET_POWER, 1.0)
    send(fleet, [cmd])
    assert results(fleet, {cmd.command_id})[cmd.command_id]["status"] == "APPLIED"
    assert writes(fleet, "mv") > before

    def done(recs: list[dict[str, Any]]) -> bool:
        return any(r["site_id"] == "mv" and r["state"] == "REDISCOVERED" for r in recs)

    topic = fleet.topics.for_event("DeviceStatus")
    recs = asyncio.run(read_events(fleet.kafka, topic, done, 20.0))
    moved = [r for r in recs if r["site_id"] == "mv" and r["state"] == "REDISCOVERED"]
    assert moved
    assert moved[0]["port"] == MOVED_PORT


def test_inverter_leaving_remote_control_gets_the_setpoint_back(fleet: SimBridge) -> None:
    """The firmware drops remote control (heartbeat timeout, forced-mode timer): the bridge
    sees it in telemetry and re-writes the command in force, no cloud round trip."""
    bridge = fleet.bridge
    assert bridge is not None
    site, sim = bridge.sites["hb"], fleet.sims["hb"]
    cmd = new_command("hb", CommandKind.SET_POWER, 2.0)
    send(fleet, [cmd])
    assert results(fleet, {cmd.command_id})[cmd.command_id]["status"] == "APPLIED"
    fleet.do(lambda: sim.advance(25.0))  # 25 s of silence: past the 20 s heartbeat timeout
    keepalive = site.polling.keepalive
    _wait(lambda: fleet.do(lambda: keepalive.reasserts) >= 1, 20, "the setpoint to be re-written")
    _wait(lambda: abs(fleet.do(lambda: sim.battery.power_kw) - 2.0) < 0.3, 20, "power back at 2 kW")


def test_undecodable_bytes_become_a_dead_letter_with_the_original(fleet: SimBridge) -> None:
    """Random bytes keyed to a site of this bridge: a DeadLetter on ``deadletter`` with the
    reason and the original bytes (as the streams worker does), nothing applied, and the
    bridge goes on serving commands."""
    garbage = bytes(range(256)) * 3 + uuid.uuid4().bytes
    seen = metrics(fleet).value("flowerhub_dead_letters_total")

    async def produce() -> None:
        from contract.kafka import clients

        async with clients.running(clients.producer(fleet.kafka), fleet.kafka) as producer:
            await producer.send_and_wait(fleet.topics.command_topic, value=garbage, key=b"hw")

    asyncio.run(produce())

    def found(recs: list[dict[str, Any]]) -> bool:
        return any(r["original"] == garbage for r in recs)

    letters = asyncio.run(
        read_events(fleet.kafka, fleet.topics.dead_letter_topic(), found, timeout_s=30)
    )
    (letter,) = [r for r in letters if r["original"] == garbage]
    assert letter["source_topic"] == fleet.topics.command_topic
    assert letter["key"] == b"hw"
    assert letter["consumer"].startswith("edge-bridge-")
    assert letter["error_type"], letter
    assert letter["reason"], letter
    page = metrics(fleet)  # counted by its consumer and error type
    labels = {"consumer": letter["consumer"], "error_type": letter["error_type"]}
    assert page.value("flowerhub_dead_letters_total") == seen + 1
    assert page.value("flowerhub_dead_letters_total", **labels) >= 1
    assert page.value("flowerhub_bridge_commands_received_total", outcome="undecodable") >= 1
    # the bridge still answers a valid command afterwards
    cmd = new_command("hw", CommandKind.SET_POWER, 0.5)
    send(fleet, [cmd])
    assert results(fleet, {cmd.command_id})[cmd.command_id]["status"] in ("APPLIED", "CLAMPED")


def test_metrics_has_every_series_of_the_bridge(fleet: SimBridge) -> None:
    """One page of the running bridge's /metrics: per OEM Modbus requests and errors, sites
    by link state, outbox, uplink delivery, command consumer lag, command stages."""
    cmd = new_command("stp", CommandKind.SET_POWER, 1.0)
    send(fleet, [cmd])
    results(fleet, {cmd.command_id})
    page = metrics(fleet)
    for oem in ("huawei", "sungrow", "saj"):
        assert page.value("flowerhub_modbus_requests_total", oem=oem) > 0, oem
        assert page.value("flowerhub_modbus_request_duration_seconds_count", oem=oem) > 0
        for kind in ("timeout", "unreachable", "exception", "malformed"):
            assert page.samples("flowerhub_modbus_errors_total", oem=oem, kind=kind), kind
        assert page.value("flowerhub_bridge_sites", oem=oem) == sum(
            1 for s in SPECS if s.oem == oem
        )
    assert page.types["flowerhub_bridge_command_latency_seconds"] == "histogram"
    for stage in ("claim", "plan", "write"):
        assert page.value("flowerhub_bridge_command_stage_seconds_count", stage=stage) >= 1
    for gauge in ("flowerhub_outbox_events", "flowerhub_outbox_bytes"):
        assert page.samples(gauge), gauge
    assert page.value("flowerhub_outbox_limit_events") == 200_000
    assert page.value("flowerhub_bridge_uplink_events_total") > 0
    assert page.value("flowerhub_bridge_uplink_up") == 1
    assert page.value("flowerhub_kafka_records_acked_total") > 0
    lag = page.samples("flowerhub_consumer_lag_records", topic=fleet.topics.command_topic)
    assert lag, "no lag series for the command topic"
    assert page.value("flowerhub_bridge_commands_received_total", outcome="accepted") >= 1
    assert page.value("flowerhub_bridge_info", uplink="kafka") == 1
