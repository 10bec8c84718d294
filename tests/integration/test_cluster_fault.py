"""3 brokers: a node dies mid-stream and no acknowledged event is lost.

The cluster is the project's own (flowerhub.broker, 3 combined broker+controller nodes,
replication factor 3, min.insync.replicas 2), started here whatever KAFKA_BOOTSTRAP_SERVERS
says, because the test kills one of its nodes.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# aiokafka has no py.typed (unused-ignore: pyproject may list it later)
from aiokafka.errors import KafkaError  # type: ignore[import-untyped,unused-ignore]

from contract.kafka import clients
from contract.kafka.admin import create_named_topics_sync as create_topics
from contract.kafka.settings import KafkaSettings, settings_for
from flowerhub.broker.launcher import kill_node, local_cluster, restart_node
from flowerhub.broker.probe import read_to_end
from flowerhub.broker.state import ClusterState, processes_using
from tests import leakcheck

EVENTS = 3000
PARTITIONS = 3
VICTIM = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterState]:
    data = tmp_path_factory.mktemp("cluster3")
    with (
        leakcheck.shared_service("3-broker cluster"),
        local_cluster(nodes=3, data_dir=data) as state,
    ):
        yield state
    assert processes_using(data) == []


@pytest.mark.integration
@pytest.mark.cluster
def test_kcat_lists_three_brokers(cluster: ClusterState) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make java` installs it (Debian package kcat)"
    listing = subprocess.run(
        [kcat, "-L", "-b", cluster.bootstrap, "-m", "10"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    assert " 3 brokers:" in listing, listing
    for node in cluster.nodes:
        assert f"broker {node.node_id} at 127.0.0.1:{node.broker_port}" in listing, listing


async def produce_while_killing(state: ClusterState, topic: str) -> tuple[set[int], int]:
    """Send EVENTS ids with acks=all; SIGKILL node VICTIM half-way. Acked ids, failed count."""
    kafka = settings_for(state.bootstrap)
    producer = clients.producer(  # acks=all, idempotent: the project's defaults
        kafka,
        request_timeout_ms=10_000,
        retry_backoff_ms=100,
        linger_ms=2,
    )
    await clients.start(producer, kafka)
    acked: set[int] = set()
    failed = 0

    async def send_one(event_id: int) -> None:
        nonlocal failed
        try:
            await (await producer.send(topic, key=str(event_id).encode(), value=b"%d" % event_id))
        except KafkaError:
            failed += 1  # not acknowledged: the producer told us, nothing was promised
        else:
            acked.add(event_id)

    try:
        pending: list[asyncio.Task[None]] = []
        for event_id in range(EVENTS):
            pending.append(asyncio.create_task(send_one(event_id)))
            if event_id == EVENTS // 2:  # crash with sends in flight
                await asyncio.to_thread(kill_node, Path(state.data_dir), VICTIM)
            if len(pending) >= 200:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return acked, failed


@pytest.mark.integration
@pytest.mark.cluster
def test_every_acknowledged_event_survives_a_killed_broker(cluster: ClusterState) -> None:
    topic = "fault-events"
    create_topics(settings_for(cluster.bootstrap), [topic], PARTITIONS, replication_factor=3)

    acked, failed = asyncio.run(produce_while_killing(cluster, topic))
    assert len(acked) + failed == EVENTS
    # With 2 of 3 replicas left, min.insync.replicas=2 still holds: writes go on.
    assert len(acked) >= EVENTS * 0.9, f"only {len(acked)} acked, {failed} failed"

    # Read with one node down, then again after it rejoined and caught up.
    for phase in ("one node down", "node restarted"):
        records = asyncio.run(read_to_end(settings_for(cluster.bootstrap), [topic], timeout_s=60))
        ids = [int(r.value or b"-1") for r in records]
        missing = acked - set(ids)
        assert not missing, (
            f"{phase}: {len(missing)} acknowledged ids lost, e.g. {sorted(missing)[:10]}"
        )
        assert len(ids) == len(set(ids)), f"{phase}: duplicates despite idempotence"
        if phase == "one node down":
            restart_node(Path(cluster.data_dir), VICTIM)
            asyncio.run(wait_for_full_isr(settings_for(cluster.bootstrap), topic))


async def wait_for_full_isr(kafka: KafkaSettings, topic: str, within: float = 60.0) -> None:
    """Wait until the restarted node is back in sync on every partition (ISR of 3)."""
    admin = clients.admin(kafka)
    await clients.start(admin, kafka)
    try:
        deadline = time.monotonic() + within
        while True:
            (described,) = await admin.describe_topics([topic])
            isr = sorted(len(p["isr"]) for p in described["partitions"])
            if isr == [3] * PARTITIONS:
                return
            assert time.monotonic() < deadline, f"ISR sizes {isr} never all reached 3"
            await asyncio.sleep(0.25)
    finally:
        await admin.close()
