"""Admin helpers on any cluster: wait for the brokers, list partitions, create topics.

The project never relies on broker-side auto creation (off on the local broker and in
docker-compose), so every topic, Faust's changelog and assignor topics included, is created
through :func:`create_topics` (rows of the topic table, under a prefix) or
:func:`create_named_topics` (ad-hoc names: tests, benches, replay copies of topics outside
the table). Both go through one creation path: same replication rule, same error handling,
same wait for partition leaders, same :class:`CreateReport`.

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
        return min(3, brokers)
    if requested < 1:
        raise TopicError(f"replication factor must be >= 1, got {requested}")
    return requested


async def create_topics(
    kafka: KafkaSettings,
    prefix: str = "",
    *,
    topics: Iterable[Topic] = TOPICS,
    partitions: int | None = None,
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
) -> CreateReport:
    """Create rows of the topic table under ``prefix`` with their configs (idempotent:
    existing topics are reported, not an error). ``partitions`` overrides every row's count
    (e.g. 1 for a quick test broker); ``replication_factor`` as :func:`replication_for`."""
    if partitions is not None and partitions < 1:
        raise TopicError(f"partitions must be >= 1, got {partitions}")
    specs = [
        TopicSpec(row.full_name(prefix), partitions or row.partitions, row.configs())
        for row in topics
    ]
    return await create_specs(kafka, specs, replication_factor, timeout_s)


async def create_named_topics(
    kafka: KafkaSettings,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> CreateReport:
    """Create topics by name, all alike (idempotent, as :func:`create_topics`)."""
    if partitions < 1:
        raise TopicError(f"partitions must be >= 1, got {partitions}")
    specs = [TopicSpec(name, partitions, dict(configs or {})) for name in dict.fromkeys(names)]
    return await create_specs(kafka, specs, replication_factor, timeout_s)


def create_named_topics_sync(
    kafka: KafkaSettings,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
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
            configs=configs,
            timeout_s=timeout_s,
        )
    )


async def create_specs(
    kafka: KafkaSettings,
    specs: Sequence[TopicSpec],
    replication_factor: int | None = None,
    timeout_s: float = 30.0,
) -> CreateReport:
    """The one creation path: create ``specs`` (existing ones are fine), then wait until
    every partition has a leader."""
    for spec in specs:
        check_topic_name(spec.name)
        if spec.partitions < 1:
            raise TopicError(f"{spec.name}: partitions must be >= 1, got {spec.partitions}")
    if replication_factor is not None:
        replication_for(1, replication_factor)  # bad input fails before any connection
    if not specs:
        return CreateReport((), (), replication_factor or 1)
    timeout_ms = int(timeout_s * 1000)
    client = admin(kafka, request_timeout_ms=timeout_ms)
    await start(client, kafka)
    try:
        if replication_factor is None:
            rf = replication_for(len((await client.describe_cluster())["brokers"]), None)
        else:
            rf = replication_factor
        new = [NewTopic(s.name, s.partitions, rf, topic_configs=dict(s.configs)) for s in specs]
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
    return CreateReport(
        tuple(sorted(created, key=order.__getitem__)),
        tuple(sorted(existing, key=order.__getitem__)),
        rf,
    )


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
