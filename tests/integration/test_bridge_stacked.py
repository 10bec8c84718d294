"""Stacked products on simulated homes through a real broker (Modbus TCP, Kafka): FCR-N and
FCR-D up armed together respond at once to 49.7 Hz, each visible in the telemetry; a 6 kW
sauna moves the headroom while the battery keeps covering the home; bad input is clamped or
rejected with the reason, never dropped. Early evening in every home (load above PV)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from contract.codec import default_codec
from contract.enums import CommandKind, Product
from contract.kafka import clients
from contract.kafka.admin import create_named_topics_sync as create_topics
from contract.kafka.settings import KafkaSettings
from contract.products import CURVES, curve_fraction
from contract.records import ReserveArm
from edge.bridge.events import COMMAND, command_record
from edge.bridge.model import BridgeCommand
from edge.bridge.sink import BridgeTopics
from edge.sim.battery import BatteryParams
from edge.testing.harness import SimBridge, SimSpec, new_command, produce_commands, read_events
from tests import leakcheck

pytestmark = pytest.mark.integration

FCRN = ReserveArm(Product.FCR_N, 2.0, 50.0, 49.9, 0.0, True)
FCRD_UP = ReserveArm(Product.FCR_D_UP, 3.0, 49.9, 49.5)
SPECS = [
    SimSpec("stk", "sungrow"),
    SimSpec("spk", "sungrow", site={"grid": {"fuse_a": 16}}),
    SimSpec("bad", "huawei", site={"grid": {"import_limit_kw": 2.5, "export_limit_kw": 20.0}}),
]


@pytest.fixture(scope="module")
def homes(kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimBridge]:
    topics = BridgeTopics(prefix=f"stacked-{uuid.uuid4().hex[:8]}.")
    create_topics(kafka, [topics.command_topic, *topics.outgoing()], 1)
    harness = SimBridge(
        SPECS,
        kafka=kafka,
        state=tmp_path_factory.mktemp("stacked"),
        topics=topics,
        telemetry_interval_s=0.5,
        # 8 kW each way, a brisk response: room for three products and a sauna
        battery=BatteryParams(
            capacity_kwh=15.0, max_charge_kw=8.0, max_discharge_kw=8.0, tau_s=0.4, dead_time_s=0.2
        ),
        start_time_of_day_s=18 * 3600.0,
    )
    with leakcheck.shared_service("stacked homes"), harness:  # outbox segments roll
        yield harness


def send(homes: SimBridge, cmds: list[BridgeCommand]) -> None:
    asyncio.run(produce_commands(homes.kafka, homes.topics.command_topic, cmds))


def results(homes: SimBridge, ids: set[str], timeout: float = 30.0) -> dict[str, Any]:
    topic = homes.topics.for_event("CommandResult")

    def done(recs: list[dict[str, Any]]) -> bool:
        return ids <= {r["command_id"] for r in recs}

    recs = asyncio.run(read_events(homes.kafka, topic, done, timeout))
    got = {r["command_id"]: r for r in recs if r["command_id"] in ids}
    assert set(got) == ids, f"no result for {ids - set(got)}"
    return got


def telemetry_until(
    homes: SimBridge,
    site: str,
    pred: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
    *,
    skip: int = 0,
) -> dict[str, Any]:
    """The first telemetry record of ``site`` for which ``pred`` holds, after ``skip`` such
    records (waits for one)."""
    topic = homes.topics.telemetry_topic()

    def done(recs: list[dict[str, Any]]) -> bool:
        return sum(1 for r in recs if r["site_id"] == site and pred(r)) > skip

    recs = asyncio.run(read_events(homes.kafka, topic, done, timeout))
    hits = [r for r in recs if r["site_id"] == site and pred(r)]
    assert len(hits) > skip, f"no telemetry of {site} as expected within {timeout} s"
    return hits[skip]


def wait(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_fcr_n_and_fcr_d_up_respond_at_once_each_visible(homes: SimBridge) -> None:
    arms = [
        new_command("stk", CommandKind.ARM_RESERVE, reserve=FCRN, valid_s=300.0),
        new_command("stk", CommandKind.ARM_RESERVE, reserve=FCRD_UP, valid_s=300.0),
    ]
    send(homes, arms)
    got = results(homes, {c.command_id for c in arms})
    assert {r["status"] for r in got.values()} == {"APPLIED"}, got
    bridge = homes.bridge
    assert bridge is not None
    site, sim = bridge.sites["stk"], homes.sims["stk"]
    homes.do(lambda: sim.set_frequency(49.7))
    want = 2.0 + 1.5  # FCR-N fully activated at <= 49.9 Hz, FCR-D up half-way 49.9 -> 49.5

    def delivered() -> float:
        return homes.do(lambda: sim.battery.power_kw - site.shared.last_baseline_kw)

    wait(lambda: abs(delivered() - want) < 0.3, 15, "both responses on top of the baseline")
    # the first sample at 49.7 Hz shows the setpoint in force when its registers were read
    # (the poll writes the response after reading; it shows in the next sample)
    rec = telemetry_until(
        homes,
        "stk",
        lambda r: r["frequency_hz"] is not None and abs(r["frequency_hz"] - 49.7) < 0.005,
        skip=1,
    )
    assert (rec["armed_fcr_n_kw"], rec["armed_fcr_d_up_kw"]) == (2.0, 3.0)
    assert rec["reserve_armed"] == "FCR_N"  # the legacy one-product field: the first armed
    f = rec["frequency_hz"]
    each = {
        "FCR_N": rec["armed_fcr_n_kw"] * curve_fraction(CURVES[Product.FCR_N], f),
        "FCR_D_UP": rec["armed_fcr_d_up_kw"] * curve_fraction(CURVES[Product.FCR_D_UP], f),
    }
    assert each == pytest.approx({"FCR_N": 2.0, "FCR_D_UP": 1.5}, abs=0.05)
    # what the bridge writes is the baseline plus both (min_step_kw and the baseline's drift)
    assert rec["setpoint_kw"] - rec["baseline_kw"] == pytest.approx(sum(each.values()), abs=0.15)
    assert rec["baseline_kw"] > 0  # early evening: the battery is covering the home's load
    homes.do(lambda: sim.set_frequency(50.0))
    send(homes, [stop := new_command("stk", CommandKind.STOP)])
    results(homes, {stop.command_id})


def test_a_sauna_moves_the_headroom_and_the_battery_keeps_covering_the_home(
    homes: SimBridge,
) -> None:
    arm = new_command(
        "spk",
        CommandKind.ARM_RESERVE,
        reserve=ReserveArm(Product.FCR_D_UP, 2.0, 49.9, 49.5),
        valid_s=300.0,
    )
    send(homes, [arm])
    assert results(homes, {arm.command_id})[arm.command_id]["status"] == "APPLIED"
    sim = homes.sims["spk"]
    time.sleep(1.5)  # the battery follows the baseline (tau 0.4 s)
    before = telemetry_until(
        homes, "spk", lambda r: r["armed_fcr_d_up_kw"] == 2.0 and r["event_time"] is not None
    )
    homes.do(lambda: sim.switch_load(6.0))
    after = telemetry_until(
        homes,
        "spk",
        lambda r: (
            r["load_kw"] > before["load_kw"] + 5.0
            and abs(r["battery_power_kw"] - r["baseline_kw"]) < 0.2  # the battery has followed
        ),
    )
    # the baseline (self-consumption) covers the sauna as far as the 8 kW battery goes
    gain = min(8.0, after["load_kw"] - after["pv_power_kw"]) - before["baseline_kw"]
    assert after["baseline_kw"] - before["baseline_kw"] == pytest.approx(gain, abs=0.3)
    # which leaves that much less room upwards (what the allocator hands out), more downwards
    assert after["headroom_up_kw"] == pytest.approx(
        max(0.0, before["headroom_up_kw"] - gain), abs=0.3
    )
    assert after["headroom_down_kw"] > before["headroom_down_kw"] + 1.0
    # the home's own import does not rise beyond what the battery cannot cover
    uncovered = max(0.0, after["load_kw"] - after["pv_power_kw"] - 8.0)
    assert -after["grid_power_kw"] <= max(0.0, -before["grid_power_kw"]) + uncovered + 0.3
    homes.do(lambda: sim.switch_load(0.0))
    send(homes, [stop := new_command("spk", CommandKind.STOP)])
    results(homes, {stop.command_id})


def test_bad_input_is_clamped_or_rejected_with_the_reason(homes: SimBridge) -> None:
    big = new_command(
        "bad",
        CommandKind.ARM_RESERVE,
        reserve=ReserveArm(Product.FCR_D_UP, 20.0, 49.9, 49.5),
        valid_s=300.0,
    )
    fused = new_command(
        "bad",
        CommandKind.ARM_RESERVE,
        reserve=ReserveArm(Product.FCR_D_DOWN, 5.0, 50.1, 50.5),
        valid_s=300.0,
    )
    stale = new_command(
        "bad",
        CommandKind.ARM_RESERVE,
        reserve=ReserveArm(Product.FCR_D_UP, 1.0, 49.9, 49.5),
        now=big.event_time - timedelta(seconds=5),  # issued before the arm in force
    )
    wrong = new_command("bad", CommandKind.ORDER, 1.0, product=Product.MFRR)
    send(homes, [big, fused, stale])
    record = command_record(wrong)
    record["product"] = "FCR_N"  # an ORDER for a frequency product: not for the bridge

    async def produce_raw() -> None:
        async with clients.running(clients.producer(homes.kafka), homes.kafka) as producer:
            value = default_codec().encode(COMMAND, record)
            await producer.send_and_wait(homes.topics.command_topic, value=value, key=b"bad")

    asyncio.run(produce_raw())
    got = results(homes, {big.command_id, fused.command_id, stale.command_id, wrong.command_id})
    up = got[big.command_id]
    assert up["status"] == "CLAMPED", up
    assert up["likely_cause"] == "SITE_LIMIT"
    assert "FCR_D_UP capacity 20.000 kW clamped to" in up["reason"]
    down = got[fused.command_id]
    assert down["status"] == "CLAMPED", down
    assert down["likely_cause"] == "GRID_LIMIT"  # the 2.5 kW import limit, not the battery
    assert "(GRID_LIMIT)" in down["reason"]
    assert got[stale.command_id]["status"] == "REJECTED"
    assert "the later one stays" in got[stale.command_id]["reason"]
    assert got[wrong.command_id]["status"] == "REJECTED"
    assert "ORDER needs product one of AFRR, MFRR" in got[wrong.command_id]["reason"]
    rec = telemetry_until(homes, "bad", lambda r: r["armed_fcr_d_down_kw"] > 0)
    assert 0 < rec["armed_fcr_d_up_kw"] < 20.0  # what it holds: the clamped capacities
    assert 0 < rec["armed_fcr_d_down_kw"] < 5.0
    bridge = homes.bridge
    assert bridge is not None
    assert bridge.stats.refused >= 1
