"""Admin-client helpers on any bootstrap: wait for the brokers, pre-create topics.

The project never relies on broker-side auto creation (disabled on the local broker), so
every topic, including Faust's changelog and assignor topics, is created here first.
Async functions for code already in an event loop; ``*_sync`` wrappers run their own loop
in a helper thread, so they work from plain code and from inside a running loop alike.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

# aiokafka has no py.typed (unused-ignore: pyproject may list it later)
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped,unused-ignore]

T = TypeVar("T")

TOPIC_ALREADY_EXISTS = 36


class TopicCreationError(RuntimeError):
    """The broker refused to create a topic (code and message from the broker)."""


@dataclass(frozen=True)
class ClusterInfo:
    broker_ids: tuple[int, ...]
    controller_id: int
    cluster_id: str | None


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a fresh loop on a helper thread and return its result."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=target, name="flowerhub-broker-admin", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


async def describe_cluster(bootstrap: str, request_timeout: float = 5.0) -> ClusterInfo:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(request_timeout * 1000)
    )
    try:
        await admin.start()
        raw = await admin.describe_cluster()
    finally:
        await admin.close()
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
    bootstrap: str,
    expected: int,
    timeout_s: float,
    keep_going: Callable[[], bool] = lambda: True,
) -> ClusterInfo:
    """Poll metadata until ``expected`` brokers are listed.

    Raises TimeoutError after ``timeout_s`` s, ConnectionError as soon as ``keep_going()`` is
    false (e.g. a node process exited), each with the last error seen.
    """
    with _quiet_connect_errors():
        return await _poll_brokers(bootstrap, expected, timeout_s, keep_going)


async def _poll_brokers(
    bootstrap: str, expected: int, timeout_s: float, keep_going: Callable[[], bool]
) -> ClusterInfo:
    deadline = time.monotonic() + timeout_s
    last = "no answer yet"
    while True:
        if not keep_going():
            raise ConnectionError(f"a broker process exited while waiting ({last})")
        try:
            info = await describe_cluster(bootstrap, request_timeout=3.0)
        except (TimeoutError, KafkaError, OSError) as exc:
            last = f"{type(exc).__name__}: {exc}"
        else:
            if len(info.broker_ids) >= expected and info.controller_id >= 0:
                return info
            last = f"{len(info.broker_ids)} of {expected} brokers listed {info.broker_ids}"
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"no {expected} brokers at {bootstrap} within {timeout_s:.0f} s: {last}"
            )
        await asyncio.sleep(0.25)


def wait_for_brokers(
    bootstrap: str,
    expected: int,
    timeout_s: float,
    keep_going: Callable[[], bool] = lambda: True,
) -> ClusterInfo:
    return run_sync(lambda: wait_for_brokers_async(bootstrap, expected, timeout_s, keep_going))


async def create_topics_async(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create topics; existing ones are fine. Returns the names that were newly created.

    ``replication_factor=None`` means min(3, number of brokers): 1 on the local broker,
    3 on the local 3-node cluster.
    """
    wanted = list(dict.fromkeys(names))
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    if not wanted:
        return []
    if replication_factor is None:
        replication_factor = min(3, len((await describe_cluster(bootstrap)).broker_ids))
    new = [
        NewTopic(n, partitions, replication_factor, topic_configs=dict(configs or {}))
        for n in wanted
    ]
    timeout_ms = int(timeout_s * 1000)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    try:
        await admin.start()
        response = await admin.create_topics(new, timeout_ms=timeout_ms)
    finally:
        await admin.close()
    created, failures = [], []
    for entry in response.topic_errors:
        name, code = entry[0], entry[1]
        message = entry[2] if len(entry) > 2 else ""
        if code == 0:
            created.append(name)
        elif code != TOPIC_ALREADY_EXISTS:
            failures.append(f"{name}: error {code} {message}")
    if failures:
        raise TopicCreationError(f"could not create topics on {bootstrap}: {'; '.join(failures)}")
    await _wait_for_leaders(bootstrap, wanted, timeout_s)
    return created


async def _wait_for_leaders(bootstrap: str, topics: list[str], timeout_s: float) -> None:
    """Wait until every partition of ``topics`` has a leader in the metadata brokers serve.

    The controller answers CreateTopics before every broker has the new metadata; a producer
    or consumer started right away could otherwise see an unknown topic.
    """
    deadline = time.monotonic() + timeout_s
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await admin.start()
        while True:
            described = await admin.describe_topics(topics)
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
                raise TopicCreationError(f"topics without leaders after {timeout_s} s: {missing}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


def create_topics(
    bootstrap: str,
    names: Iterable[str],
    partitions: int = 1,
    *,
    replication_factor: int | None = None,
    configs: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    wanted = list(names)
    return run_sync(
        lambda: create_topics_async(
            bootstrap,
            wanted,
            partitions,
            replication_factor=replication_factor,
            configs=configs,
            timeout_s=timeout_s,
        )
    )
