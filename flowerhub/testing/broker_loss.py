"""What a broker loss costs: the pipeline on the local 3-node cluster, one broker killed -9.

:func:`run_broker_loss` runs a bridge serving simulated sites (in-process, with the same
code as ``flowerhub bridge run``), a streams worker and an archiver (processes, as
``flowerhub streams worker`` / ``flowerhub archive``) on fresh topics created by the worker
with the cluster's replication rule, then for each role asked (``leader``: a broker leading
a telemetry partition that is not the controller; ``controller``: the active controller)
kills that broker with SIGKILL, measures the leader election, sends an order (a setpoint per
site, through the worker's filter) and waits for every site's CommandResult, and restarts the
broker. At the end it reads what happened from the bridge's acknowledgements, the log and the
archive: per topic the longest gap between acknowledged records around each kill, each
site's longest event-to-ack delay, duplicates in the log and in the archive, and telemetry
events lost (emitted by the bridge, neither archived nor still in its durable outbox).

Used by the cluster fault test (tests/integration/test_cluster_fault.py) and the benchmark
(bench/bench_broker_loss.py).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract.codec import decode, encode
from contract.kafka import clients
from contract.kafka.delivery import Outgoing
from contract.kafka.settings import KafkaSettings, settings_for
from flowerhub.broker.launcher import kill_node, restart_node
from flowerhub.broker.state import ClusterState

TELEMETRY = "SiteTelemetry"
FLOWING_S = 6.0  # a topic counts as flowing when a record was acked this soon before a kill
OEMS = ("huawei", "sungrow", "saj")
#: how long the archiver may take to archive the last telemetry once the bridge stopped
ARCHIVE_WAIT_S = 30.0


@dataclass
class KillRound:
    role: str
    victim: int
    killed_at: float  # monotonic
    election_s: float  # kill -> every watched partition led by a live broker
    order_sites: int = 0  # sites that answered the order sent after the kill
    order_s: float = 0.0  # order sent -> the last site's CommandResult


@dataclass
class LossReport:
    sites: int
    rounds: list[KillRound]
    gap_s: dict[str, list[float]]  # topic -> per kill: last ack before -> first ack after
    max_site_gap_s: float  # the longest gap between two acked telemetry records of a site
    #: the longest such gap with no kill inside it: what the machine's own load stalls a
    #: site, the floor the gaps around a kill are judged above
    max_quiet_gap_s: float
    max_delay_s: float  # the longest event (poll) -> Kafka ack delay of any telemetry record
    emitted: int  # telemetry events the bridge made
    archived: int  # distinct telemetry event ids in the archive
    lost: int  # emitted, never archived and not in the bridge's outbox either
    #: emitted and still in the bridge's durable outbox when it stopped (its stop is bounded:
    #: they go out at its next start, with their event ids): not lost
    in_outbox: int
    log_duplicates: dict[str, int]  # topic -> records whose event id was already in the log
    archive_duplicates: int  # telemetry rows sharing an event id in the archive
    notes: list[str] = field(default_factory=list)


@dataclass
class _Capture:
    acks: list[tuple[float, str, str, int]] = field(default_factory=list)  # t, topic, site, us
    emitted: Counter[str] = field(default_factory=Counter)
    emitted_ids: set[str] = field(default_factory=set)


@contextmanager
def _captured() -> Iterator[_Capture]:
    """Record the bridge's telemetry as emitted and each outbox record as acknowledged."""
    from edge.bridge.runtime import Bridge
    from edge.bridge.sink import EventSink

    cap = _Capture()
    emit, delivered = EventSink.emit, Bridge._delivered

    def emit_counted(self: EventSink, event_name: str, record: Any) -> tuple[str, bytes]:
        out = emit(self, event_name, record)
        if event_name == TELEMETRY:
            cap.emitted[str(record["site_id"])] += 1
            cap.emitted_ids.add(out[0])
        return out

    def delivered_timed(self: Bridge, records: list[Outgoing]) -> None:
        now = time.monotonic()
        for r in records:
            if r.topic.endswith("site.telemetry") and r.value is not None:
                rec = decode(r.value).record
                t = int(rec["event_time"].timestamp() * 1_000_000)
                cap.acks.append((now, r.topic, str(rec["site_id"]), t))
            else:
                cap.acks.append((now, r.topic, "", 0))
        delivered(self, records)

    EventSink.emit = emit_counted  # type: ignore[method-assign]
    Bridge._delivered = delivered_timed  # type: ignore[method-assign]
    try:
        yield cap
    finally:
        EventSink.emit = emit  # type: ignore[method-assign]
        Bridge._delivered = delivered  # type: ignore[method-assign]


async def _leaders(kafka: KafkaSettings, topics: list[str]) -> tuple[int, dict[str, list[int]]]:
    admin = clients.admin(kafka, request_timeout_ms=3000)
    await clients.start(admin, kafka)
    try:
        controller = int((await admin.describe_cluster())["controller_id"])
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return controller, {
        str(t["topic"]): [int(p["leader"]) for p in t["partitions"]] for t in described
    }


def _victim(kafka: KafkaSettings, role: str, telemetry: str) -> int:
    controller, leaders = asyncio.run(_leaders(kafka, [telemetry]))
    if role == "controller":
        return controller
    candidates = sorted(set(leaders[telemetry]) - {controller, -1})
    if not candidates:
        raise RuntimeError(f"no broker other than the controller leads {telemetry}")
    return candidates[0]


def _await_election(kafka: KafkaSettings, victim: int, topics: list[str], began: float) -> float:
    while time.monotonic() - began < 60:
        try:
            _, leaders = asyncio.run(_leaders(kafka, topics))
        except Exception:  # a request that reached the dead node: ask again
            time.sleep(0.1)
            continue
        if all(all(x >= 0 and x != victim for x in ls) for ls in leaders.values()):
            return time.monotonic() - began
        time.sleep(0.1)
    raise RuntimeError(f"no new leaders within 60 s of killing broker {victim}")


async def _produce(kafka: KafkaSettings, topic: str, pairs: list[tuple[bytes, bytes]]) -> None:
    async with clients.running(clients.producer(kafka), kafka) as producer:
        futures = [await producer.send(topic, value=v, key=k) for k, v in pairs]
        await asyncio.gather(*futures)


def _order(kafka: KafkaSettings, prefix: str, sites: list[str], tag: str, power_kw: float) -> None:
    from streams.testing.agents import setpoint_record

    now = time.time_ns() // 1000
    pairs = [
        (
            s.encode(),
            encode(
                "SiteSetpoint", setpoint_record(s, f"{tag}-{s}", now, power_kw, now + 600_000_000)
            ),
        )
        for s in sites
    ]
    asyncio.run(_produce(kafka, prefix + "site.setpoints", pairs))


def _answered(h: Any, command_ids: dict[str, str]) -> set[str]:
    """The sites whose CommandResult for their order's command id is in the log."""
    from edge.testing.harness import read_events

    async def read() -> list[dict[str, Any]]:
        return await read_events(h.kafka, h.topics.for_event("CommandResult"), _never, 2.0)

    wanted = {cid: site for site, cid in command_ids.items()}
    return {
        wanted[str(r["command_id"])] for r in asyncio.run(read()) if str(r["command_id"]) in wanted
    }


def _never(_: list[dict[str, Any]]) -> bool:
    return False


def _gaps(acks: list[tuple[float, str, str, int]], kills: list[float]) -> dict[str, list[float]]:
    """Per topic and kill: the last ack at or before the kill -> the first ack after it (for
    topics flowing at the kill)."""
    by_topic: dict[str, list[float]] = defaultdict(list)
    for t, topic, _, _ in acks:
        by_topic[topic.rsplit(".", 2)[-2] + "." + topic.rsplit(".", 1)[-1]].append(t)
    out: dict[str, list[float]] = {}
    for topic, times in by_topic.items():
        times.sort()
        per_kill = []
        for k in kills:
            before = [t for t in times if t <= k]
            after = [t for t in times if t > k]
            # a topic with no traffic just before the kill (command results between orders)
            # has no gap to speak of
            if before and after and k - before[-1] <= FLOWING_S:
                per_kill.append(after[0] - before[-1])
        out[topic] = per_kill
    return out


def _site_figures(
    acks: list[tuple[float, str, str, int]], kills: list[float]
) -> tuple[float, float, float]:
    """The longest gap between a site's consecutive telemetry acks, the longest of those
    with no kill inside, and the longest poll -> ack delay, over the rounds (from the first
    kill on)."""
    start = kills[0] - 5.0 if kills else 0.0
    per_site: dict[str, list[float]] = defaultdict(list)
    delay = 0.0
    offset = time.time() - time.monotonic()  # monotonic ack times against wall-clock polls
    for t, _topic, site, event_us in acks:
        if not site or t < start:
            continue
        per_site[site].append(t)
        delay = max(delay, t + offset - event_us / 1_000_000)
    gap = quiet = 0.0
    for times in per_site.values():
        times.sort()
        for a, b in itertools.pairwise(times):
            gap = max(gap, b - a)
            if not any(a <= k <= b for k in kills):
                quiet = max(quiet, b - a)
    return gap, quiet, delay


def _in_outbox(directory: Path) -> set[str]:
    """The event ids still in the stopped bridge's durable outbox."""
    from edge.bridge.outbox import Outbox

    if not directory.is_dir():
        return set()
    outbox = Outbox(directory)
    try:
        return {r.event_id for r in outbox.pending()}
    finally:
        outbox.close()


def _archiver_caught_up(archive: Path, emitted: set[str], within_s: float) -> None:
    """Wait (up to ``within_s``) until the archive holds every telemetry event emitted: the
    archiver flushes every second, later on a loaded machine; what is still missing then
    counts as lost."""
    deadline = time.monotonic() + within_s
    time.sleep(2.0)  # at least one flush after the last record
    while time.monotonic() < deadline:
        try:
            archived, _ = _archived(archive)
        except Exception:  # no part file yet, or one being renamed: again
            archived = set()
        if emitted <= archived:
            return
        time.sleep(1.0)


def _log_duplicates(kafka: KafkaSettings, topics: list[str]) -> dict[str, int]:
    from flowerhub.broker.probe import read_to_end

    records = asyncio.run(read_to_end(kafka, topics, timeout_s=60))
    seen: dict[str, set[str]] = defaultdict(set)
    dup: Counter[str] = Counter()
    for r in records:
        if r.value is None:
            continue
        event = decode(r.value)
        if event.name == "TelemetryWatermark":
            continue  # the workers' (one written again when not read back in time)
        event_id = str(event.record["event_id"])
        if event_id in seen[r.topic]:
            dup[r.topic] += 1
        seen[r.topic].add(event_id)
    return {t: dup[t] for t in topics}


def _archived(archive: Path) -> tuple[set[str], int]:
    """Distinct telemetry event ids in the archive and the rows sharing an id."""
    from analytics.db import connect

    con = connect(archive)
    try:
        rows = con.execute("SELECT CAST(event_id AS VARCHAR) FROM site_telemetry").fetchall()
    finally:
        con.close()
    ids = [str(r[0]) for r in rows]
    return set(ids), len(ids) - len(set(ids))


def _kill_round(
    h: Any,
    kafka: KafkaSettings,
    data_dir: Path,
    role: str,
    *,
    tag: str,
    watched: list[str],
    power_kw: float,
) -> KillRound:
    """Kill the broker of ``role``, time the election, send an order to every site and wait
    (60 s at most) for their CommandResults."""
    from streams.steps.ids import command_id_for

    prefix, names = h.topics.prefix, [spec.site_id for spec in h.specs]
    victim = _victim(kafka, role, h.topics.telemetry_topic())
    began = time.monotonic()
    kill_node(data_dir, victim)
    kill = KillRound(role, victim, began, _await_election(kafka, victim, watched, began))
    ids = {n: command_id_for(n, f"{tag}-{n}") for n in names}
    sent = time.monotonic()
    _order(kafka, prefix, names, tag, power_kw)
    answered: set[str] = set()
    while time.monotonic() - sent < 60 and len(answered) < len(names):
        answered = _answered(h, ids)
    kill.order_sites = len(answered)
    kill.order_s = time.monotonic() - sent
    return kill


def run_broker_loss(
    cluster: ClusterState,
    workdir: Path,
    *,
    sites: int = 30,
    roles: tuple[str, ...] = ("leader", "controller"),
    interval_s: float = 1.0,
    settle_s: float = 6.0,
    partitions: int = 6,
) -> LossReport:
    """Run the scenario of the module doc on ``cluster`` (3 nodes, all up); every node is up
    again at the end."""
    from edge.bridge.sink import BridgeTopics
    from edge.testing.harness import SimBridge, SimSpec
    from streams.settings import StreamsSettings
    from streams.worker_process import streams_worker

    kafka = settings_for(cluster.bootstrap)
    run = uuid.uuid4().hex[:6]
    prefix = f"loss-{run}."
    names = [f"site-{i:03d}" for i in range(sites)]
    settings = StreamsSettings(
        bootstrap_servers=cluster.bootstrap, app_id=f"loss-{run}", topic_prefix=prefix
    )
    data_dir = Path(cluster.data_dir)
    topics = BridgeTopics(prefix=prefix)
    watched = [topics.telemetry_topic(), topics.command_topic, prefix + "fleet.state"]
    rounds: list[KillRound] = []
    archive = workdir / "archive"
    notes: list[str] = []
    with _captured() as cap, streams_worker(settings, workdir, partitions=partitions) as worker:
        archive_log = (workdir / "archiver.log").open("wb")
        archiver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "flowerhub.cli",
                "archive",
                "--bootstrap",
                cluster.bootstrap,
                "--prefix",
                prefix,
                "--out",
                str(archive),
                "--flush-interval",
                "1",
            ],
            stdout=archive_log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
        h = SimBridge(
            [SimSpec(n, OEMS[i % len(OEMS)]) for i, n in enumerate(names)],
            kafka=kafka,
            state=workdir / "bridge",
            topics=topics,
            telemetry_interval_s=interval_s,
        )
        try:
            with h:
                time.sleep(settle_s)
                for number, role in enumerate(roles):
                    worker.check_alive()
                    rounds.append(
                        _kill_round(
                            h,
                            kafka,
                            data_dir,
                            role,
                            tag=f"o{number}-{run}",
                            watched=watched,
                            # each order differs by more than the filter's threshold: written
                            power_kw=1.0 + 1.5 * (number % 2),
                        )
                    )
                    time.sleep(settle_s)
                    restart_node(data_dir, rounds[-1].victim)
                    time.sleep(settle_s)
                h.stop_bridge()
            _archiver_caught_up(archive, cap.emitted_ids, ARCHIVE_WAIT_S)
        finally:
            archiver.send_signal(signal.SIGTERM)
            try:
                archiver.wait(30)
            except subprocess.TimeoutExpired:
                archiver.kill()
                archiver.wait()
                notes.append("archiver killed after 30 s")
            archive_log.close()
    archived, archive_dups = _archived(archive)
    pending = _in_outbox(workdir / "bridge" / "outbox") - archived
    kills = [r.killed_at for r in rounds]
    gap, quiet, delay = _site_figures(cap.acks, kills)
    return LossReport(
        sites=sites,
        rounds=rounds,
        gap_s=_gaps(cap.acks, kills),
        max_site_gap_s=gap,
        max_quiet_gap_s=quiet,
        max_delay_s=delay,
        emitted=len(cap.emitted_ids),
        archived=len(archived),
        lost=len(cap.emitted_ids - archived - pending),
        in_outbox=len(pending),
        log_duplicates=_log_duplicates(kafka, [topics.telemetry_topic(), topics.command_topic]),
        archive_duplicates=archive_dups,
        notes=notes,
    )
