"""Admin helpers on any cluster: wait for the brokers, list partitions, create topics.

The project never relies on broker-side auto creation (off on the local broker and in
docker-compose), so every topic, Faust's changelog and assignor topics included, is created
through :func:`create_topics` (rows of the topic table, under a prefix) or
:func:`create_named_topics` (ad-hoc names: tests, benches, replay copies of topics outside
the table). Both go through one creation path: same replication rule, same error handling,
same wait for partition leaders, same :class:`CreateReport`.

Replication follows the cluster (issue 15): a new topic gets replication min(3, brokers)
and ``min.insync.replicas`` min(2, replication) unless the caller names either
(:func:`replication_for`, :func:`min_insync_for`), so on the local 3-node cluster and in
docker-compose one broker may die without a partition going offline or an acknowledged
record being lost. :func:`check_replication` finds existing topics below that rule and
:func:`warn_under_replicated` tells a service's log at start, with the commands that fix it.

Async functions for code already in an event loop; :func:`run_sync` runs one from plain
code, also from inside a running loop (a fresh loop on a helper thread).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

# aiokafka ships no py.typed (unused-ignore: pyproject may list it later)
from aiokafka.admin import NewTopic  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped, unused-ignore]

from contract.kafka.clients import admin, metadata_client, start, stop
from contract.kafka.settings import KafkaSettings
from contract.topics import TOPICS, Topic, TopicError, check_topic_name

T = TypeVar("T")

TOPIC_ALREADY_EXISTS = 36  # Kafka error code
MIN_INSYNC = "min.insync.replicas"
# Kafka's rule of thumb for durability with one broker lost (replication 3, ISR 2): Kafka's
# documentation, "Availability and Durability Guarantees" (docs/design.html#design_ha)
DEFAULT_MAX_REPLICATION = 3
DEFAULT_MAX_MIN_INSYNC = 2


@dataclass(frozen=True)
class ClusterInfo:
    broker_ids: tuple[int, ...]
    controller_id: int
    cluster_id: str | None


@dataclass(frozen=True)
class CreateReport:
    """What a creation did: full (prefixed) names, in the order asked for."""

    created: tuple[str, ...]
    existing: tuple[str, ...]
    replication_factor: int = 1
    min_insync_replicas: int = 1
    under_replicated: tuple[ReplicationShortfall, ...] = ()


@dataclass(frozen=True)
class TopicSpec:
    """One topic to create: full name, partitions and topic-level configs."""

    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a fresh loop on a helper thread and return its result."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="flowerhub-kafka-admin", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def describe_cluster(kafka: KafkaSettings, request_timeout_s: float = 5.0) -> ClusterInfo:
    client = admin(kafka, request_timeout_ms=int(request_timeout_s * 1000))
    await start(client, kafka)
    try:
        raw = await client.describe_cluster()
    finally:
        await stop(client)
    brokers = tuple(sorted(int(b["node_id"]) for b in raw["brokers"]))
    return ClusterInfo(brokers, int(raw["controller_id"]), raw.get("cluster_id"))


class _DropConnectErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable connect")


@contextmanager
def _quiet_connect_errors() -> Iterator[None]:
    """While polling a starting broker, refused connections are expected, not errors."""
    logger = logging.getLogger("aiokafka")
    drop = _DropConnectErrors()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


async def wait_for_brokers_async(
    kafka: KafkaSettings,
    expected: int,
    timeout_s: float,
    keep_going: Callable[[], bool] = lambda: True,
) -> ClusterInfo:
    """Poll metadata until ``expected`` brokers are listed.

    Raises TimeoutError after ``timeout_s`` s, ConnectionError as soon as ``keep_going()`` is
    false (e.g. a node process exited), each with the last error seen.
    """
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    with _quiet_connect_errors():
        while True:
            if not keep_going():
                raise ConnectionError(f"a broker process exited while waiting ({last})")
            try:
                info = await describe_cluster(kafka, request_timeout_s=3.0)
            except (TimeoutError, KafkaError, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if len(info.broker_ids) >= expected and info.controller_id >= 0:
                    return info
                last = f"{len(info.broker_ids)} of {expected} brokers listed {info.broker_ids}"
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"no {expected} brokers at {kafka.describe()} within {timeout_s:.0f} s: {last}"
                )
            await asyncio.sleep(0.25)


def wait_for_brokers(
    kafka: KafkaSettings,
    expected: int,
    timeout_s: float,
    keep_going: Callable[[], bool] = lambda: True,
) -> ClusterInfo:
    return run_sync(lambda: wait_for_brokers_async(kafka, expected, timeout_s, keep_going))


async def topic_partitions(
    kafka: KafkaSettings, topics: Iterable[str] | None = None
) -> dict[str, int]:
    """Topic -> partition count for those of ``topics`` that exist (every topic when None);
    one metadata request."""
    client = metadata_client(kafka)
    await start(client, kafka)
    try:
        cluster = await client.fetch_all_metadata()
    finally:
        await stop(client)
    wanted = set(cluster.topics()) if topics is None else set(topics)
    found: dict[str, int] = {}
    for name in sorted(wanted):
        partitions = cluster.partitions_for_topic(name)
        if partitions:
            found[name] = len(partitions)
    return found


async def require_partitions(kafka: KafkaSettings, topics: Sequence[str]) -> dict[str, int]:
    """:func:`topic_partitions` of ``topics``; TopicError naming the ones that do not exist."""
    found = await topic_partitions(kafka, topics)
    missing = [t for t in topics if t not in found]
    if missing:
        raise TopicError(f"topics missing on {kafka.describe()}: {', '.join(missing)}")
    return found


def replication_for(brokers: int, requested: int | None) -> int:
    """The replication factor of a new topic: ``requested``, or min(3, brokers) when None
    (1 on the local broker, 3 on the local 3-node cluster and in docker-compose)."""
    if requested is None:
        return max(1, min(DEFAULT_MAX_REPLICATION, brokers))
    if requested < 1:
        raise TopicError(f"replication factor must be >= 1, got {requested}")
    return requested


def min_insync_for(replication: int, requested: int | None) -> int:
    """``min.insync.replicas`` of a new topic: ``requested``, or min(2, replication) when
    None (with replication 3 a write survives one broker lost; 1 on a single broker)."""
    if requested is None:
        return max(1, min(DEFAULT_MAX_MIN_INSYNC, replication))
    if requested < 1:
        raise TopicError(f"min.insync.replicas must be >= 1, got {requested}")
    if requested > replication:
        raise TopicError(
            f"min.insync.replicas {requested} > replication factor {replication}: "
            "no write could ever be acknowledged"
        )
    return requested


@dataclass(frozen=True)
class ReplicationShortfall:
    """An existing topic below the replication rule for the cluster it is on."""

    topic: str
    replication: int  # the smallest replica count of its partitions
    min_insync: int
    want_replication: int
    want_min_insync: int
    partitions: int
    offline: tuple[int, ...] = ()  # partitions without a leader right now

    def describe(self) -> str:
        parts = []
        if self.replication < self.want_replication:
            parts.append(f"replication {self.replication} < {self.want_replication}")
        if self.min_insync < self.want_min_insync:
            parts.append(f"min.insync.replicas {self.min_insync} < {self.want_min_insync}")
        if self.offline:
            parts.append(f"partitions without a leader: {list(self.offline)}")
        return f"{self.topic}: {', '.join(parts)}"

    def fix_commands(self, bootstrap: str) -> list[str]:
        """Kafka's own tools that bring the topic up to the rule (the reassignment plan for
        more replicas comes from ``flowerhub topics check --plan FILE``)."""
        out: list[str] = []
        if self.replication < self.want_replication:
            out.append(
                f"flowerhub topics check --bootstrap {bootstrap} --plan reassign.json && "
                f"kafka-reassign-partitions.sh --bootstrap-server {bootstrap} "
                "--reassignment-json-file reassign.json --execute"
            )
        if self.min_insync < self.want_min_insync:
            out.append(
                f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics "
                f"--entity-name {self.topic} --add-config "
                f"{MIN_INSYNC}={self.want_min_insync}"
            )
        return out


async def create_topics(
    kafka: KafkaSettings,
    prefix: str = "",
    *,
    topics: Iterable[Topic] = TOPICS,
    partitions: int | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    timeout_s: float = 30.0,
) -> CreateReport:
    """Create rows of the topic table under ``prefix`` with their configs (idempotent:
    existing topics are reported, not an error). ``partitions`` overrides every row's count
    (e.g. 1 for a quick test broker); ``replication_factor`` as :func:`replication_for`,
    ``min_insync_replicas`` as :func:`min_insync_for`."""
    if partitions is not None and partitions < 1:
        raise TopicError(f"partitions must be >= 1, got {partitions}")
    specs = [
        TopicSpec(row.full_name(prefix), partitions or row.partitions, row.configs())
        for row in topics
    ]
    return await create_specs(
        kafka, specs, replication_factor, timeout_s, min_insync_replicas=min_insync_replicas
    )


async def create_named_topics(
    kafka: KafkaSettings,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> CreateReport:
    """Create topics by name, all alike (idempotent, as :func:`create_topics`)."""
    if partitions < 1:
        raise TopicError(f"partitions must be >= 1, got {partitions}")
    specs = [TopicSpec(name, partitions, dict(configs or {})) for name in dict.fromkeys(names)]
    return await create_specs(
        kafka, specs, replication_factor, timeout_s, min_insync_replicas=min_insync_replicas
    )


def create_named_topics_sync(
    kafka: KafkaSettings,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> CreateReport:
    """:func:`create_named_topics` from plain code."""
    wanted = list(names)
    return run_sync(
        lambda: create_named_topics(
            kafka,
            wanted,
            partitions,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
            configs=configs,
            timeout_s=timeout_s,
        )
    )


def _check_specs(
    specs: Sequence[TopicSpec], replication_factor: int | None, min_insync_replicas: int | None
) -> None:
    """Bad input fails before any connection."""
    for spec in specs:
        check_topic_name(spec.name)
        if spec.partitions < 1:
            raise TopicError(f"{spec.name}: partitions must be >= 1, got {spec.partitions}")
    if replication_factor is not None:
        min_insync_for(replication_for(1, replication_factor), min_insync_replicas)
    elif min_insync_replicas is not None and min_insync_replicas < 1:
        raise TopicError(f"min.insync.replicas must be >= 1, got {min_insync_replicas}")


async def create_specs(
    kafka: KafkaSettings,
    specs: Sequence[TopicSpec],
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
    *,
    min_insync_replicas: int | None = None,
) -> CreateReport:
    """The one creation path: create ``specs`` (existing ones are fine) with replication and
    ``min.insync.replicas`` from the cluster's broker count unless given (a spec's own
    ``min.insync.replicas`` config wins), then wait until every partition has a leader.
    The report names existing topics below the rule (:func:`check_replication`)."""
    _check_specs(specs, replication_factor, min_insync_replicas)
    if not specs:
        rf = replication_factor or 1
        return CreateReport((), (), rf, min_insync_for(rf, min_insync_replicas))
    timeout_ms = int(timeout_s * 1000)
    client = admin(kafka, request_timeout_ms=timeout_ms)
    await start(client, kafka)
    try:
        brokers = len((await client.describe_cluster())["brokers"])
        rf = replication_for(brokers, replication_factor)
        if rf > brokers:
            raise TopicError(
                f"replication factor {rf} needs {rf} brokers; {kafka.describe()} has {brokers}"
            )
        isr = min_insync_for(rf, min_insync_replicas)
        new = [
            NewTopic(s.name, s.partitions, rf, topic_configs={MIN_INSYNC: str(isr), **s.configs})
            for s in specs
        ]
        response = await client.create_topics(new, timeout_ms=timeout_ms)
    finally:
        await stop(client)
    created: list[str] = []
    existing: list[str] = []
    failures: list[str] = []
    for entry in response.topic_errors:
        name, code = str(entry[0]), int(entry[1])
        message = entry[2] if len(entry) > 2 else ""
        if code == 0:
            created.append(name)
        elif code == TOPIC_ALREADY_EXISTS:
            existing.append(name)
        else:
            failures.append(f"{name}: error {code} {message}")
    if failures:
        raise TopicError(f"could not create topics on {kafka.describe()}: {'; '.join(failures)}")
    names = [s.name for s in specs]
    await wait_for_leaders(kafka, names, timeout_s)
    order = {name: i for i, name in enumerate(names)}
    shortfalls: tuple[ReplicationShortfall, ...] = ()
    if existing:
        shortfalls = tuple(
            await check_replication(kafka, existing, replication_factor, min_insync_replicas)
        )
    return CreateReport(
        tuple(sorted(created, key=order.__getitem__)),
        tuple(sorted(existing, key=order.__getitem__)),
        rf,
        isr,
        shortfalls,
    )


async def check_replication(
    kafka: KafkaSettings,
    topics: Iterable[str] | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
) -> list[ReplicationShortfall]:
    """Existing ``topics`` (every non-internal topic when None) below the replication rule
    for this cluster: fewer replicas than :func:`replication_for`, a lower
    ``min.insync.replicas`` than :func:`min_insync_for`, or partitions without a leader.
    Topics that do not exist are not reported."""
    client = admin(kafka, request_timeout_ms=10_000)
    await start(client, kafka)
    try:
        brokers = len((await client.describe_cluster())["brokers"])
        names = (
            [t for t in await client.list_topics() if not t.startswith("__")]
            if topics is None
            else list(dict.fromkeys(topics))
        )
        if not names:
            return []
        described = [t for t in await client.describe_topics(names) if t["error_code"] == 0]
        isr = await _min_insync(client, [t["topic"] for t in described])
    finally:
        await stop(client)
    want_rf = replication_for(brokers, replication_factor)
    want_isr = min_insync_for(want_rf, min_insync_replicas)
    out: list[ReplicationShortfall] = []
    for t in sorted(described, key=lambda d: str(d["topic"])):
        parts = t["partitions"]
        if not parts:
            continue
        rf = min(len(p["replicas"]) for p in parts)
        offline = tuple(sorted(int(p["partition"]) for p in parts if p["leader"] < 0))
        have_isr = isr.get(t["topic"], 1)
        if rf < want_rf or have_isr < want_isr or offline:
            out.append(
                ReplicationShortfall(
                    t["topic"], rf, have_isr, want_rf, want_isr, len(parts), offline
                )
            )
    return out


async def _min_insync(client: Any, topics: Sequence[str]) -> dict[str, int]:
    """``min.insync.replicas`` of each topic (its own setting or the broker's default)."""
    from aiokafka.admin.config_resource import (  # type: ignore[import-untyped, unused-ignore]
        ConfigResource,
        ConfigResourceType,
    )

    if not topics:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, t, {MIN_INSYNC: None}) for t in topics]
    out: dict[str, int] = {}
    for response in await client.describe_configs(resources):
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            for entry in entries:
                if entry[0] == MIN_INSYNC and entry[1] is not None:
                    out[str(name)] = int(entry[1])
    return out


def reassignment_plan(
    shortfalls: Iterable[ReplicationShortfall],
    brokers: Sequence[int],
    current: Mapping[str, Mapping[int, Sequence[int]]],
) -> dict[str, Any]:
    """The JSON of ``kafka-reassign-partitions.sh --reassignment-json-file`` that gives each
    short topic its wanted replica count: a partition keeps its replicas (leader first) and
    gets the next brokers round-robin from its partition number, so load spreads evenly."""
    ring = sorted(brokers)
    partitions: list[dict[str, Any]] = []
    for short in shortfalls:
        if short.replication >= short.want_replication:
            continue
        for partition, replicas in sorted(current.get(short.topic, {}).items()):
            chosen = list(replicas)
            i = partition
            while len(chosen) < min(short.want_replication, len(ring)):
                candidate = ring[i % len(ring)]
                if candidate not in chosen:
                    chosen.append(candidate)
                i += 1
            partitions.append({"topic": short.topic, "partition": partition, "replicas": chosen})
    return {"version": 1, "partitions": partitions}


async def replica_layout(
    kafka: KafkaSettings, topics: Sequence[str]
) -> tuple[tuple[int, ...], dict[str, dict[int, list[int]]]]:
    """Broker ids and each topic's partition -> replicas (for :func:`reassignment_plan`)."""
    client = admin(kafka, request_timeout_ms=10_000)
    await start(client, kafka)
    try:
        raw = await client.describe_cluster()
        described = await client.describe_topics(list(topics)) if topics else []
    finally:
        await stop(client)
    brokers = tuple(sorted(int(b["node_id"]) for b in raw["brokers"]))
    layout = {
        str(t["topic"]): {
            int(p["partition"]): [int(r) for r in p["replicas"]] for p in t["partitions"]
        }
        for t in described
        if t["error_code"] == 0
    }
    return brokers, layout


def warn_under_replicated(
    logger: logging.Logger,
    service: str,
    kafka: KafkaSettings,
    shortfalls: Iterable[ReplicationShortfall],
) -> int:
    """One warning per short topic, with the commands that fix it; returns how many."""
    count = 0
    for short in shortfalls:
        count += 1
        fixes = " ; ".join(short.fix_commands(kafka.bootstrap_servers))
        logger.warning(
            "%s: topic %s below the replication rule of this cluster (a broker loss may stop "
            "or lose it); fix: %s",
            service,
            short.describe(),
            fixes or "restart the brokers that lead its offline partitions",
        )
    return count


async def wait_for_leaders(kafka: KafkaSettings, topics: list[str], timeout_s: float) -> None:
    """Wait until every partition of ``topics`` has a leader in the metadata brokers serve.

    The controller answers CreateTopics before every broker has the new metadata; a producer
    or consumer started right away could otherwise see an unknown topic.
    """
    deadline = time.monotonic() + timeout_s
    client = admin(kafka, request_timeout_ms=5000)
    await start(client, kafka)
    try:
        while True:
            described = await client.describe_topics(topics)
            missing = [
                t["topic"]
                for t in described
                if t["error_code"] != 0
                or not t["partitions"]
                or any(p["leader"] < 0 for p in t["partitions"])
            ]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise TopicError(f"topics without leaders after {timeout_s} s: {missing}")
            await asyncio.sleep(0.1)
    finally:
        await stop(client)


async def report_replication(
    kafka: KafkaSettings, topics: Iterable[str], service: str, logger: logging.Logger
) -> int:
    """At a service's start: warn about each of ``topics`` below the replication rule (see
    :func:`warn_under_replicated`); a failed check is logged, never fatal. Returns the count."""
    try:
        shortfalls = await check_replication(kafka, topics)
    except (KafkaError, OSError, TimeoutError) as exc:
        logger.warning("%s: could not check the topics' replication: %s", service, exc)
        return 0
    return warn_under_replicated(logger, service, kafka, shortfalls)
