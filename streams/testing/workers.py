"""Several real workers (``flowerhub streams worker`` child processes) and what they wrote.

``workers(settings, workdir, n, ...)`` runs ``n`` workers of one app (each its own log in
``workdir``) and stops them all at the end (SIGTERM, then SIGKILL). ``leader_of`` reads
their logs: the worker whose last word on the lead is "leading" (not "no longer leading"
or "FENCED OUT") and that is alive. ``outputs(kafka, topic)`` decodes a topic as a
``read_committed`` reader sees it (the leader's aborted transactions left out).
``produce_at_once`` writes records in one transaction: a backlog that ``read_committed``
readers (the workers) see all at once, for workers already running.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

# aiokafka ships no type information
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]

from contract.codec import decode_raw
from contract.kafka import clients
from contract.kafka.admin import topic_partitions
from contract.kafka.settings import KafkaSettings
from streams.agents.leader import STEPPED_DOWN_LINES
from streams.agents.leading import LEADING_LINE
from streams.settings import StreamsSettings
from streams.worker_process import Worker, WorkerTimeoutError, streams_worker

LEADING = LEADING_LINE
STOPPED = STEPPED_DOWN_LINES


@contextmanager
def workers(
    settings: StreamsSettings,
    workdir: Path,
    n: int,
    *,
    partitions: int,
    env: Mapping[str, str] | None = None,
    loglevel: str = "info",
) -> Iterator[list[Worker]]:
    """``n`` workers of ``settings``' app, each run until its ready line."""
    workdir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                streams_worker(settings, workdir, partitions=partitions, env=env, loglevel=loglevel)
            )
            for _ in range(n)
        ]


def leads(worker: Worker) -> bool:
    """Whether the worker's log says it leads now (and it runs)."""
    if worker.proc.poll() is not None:
        return False
    log = worker.log()
    last = log.rfind(LEADING)
    return last >= 0 and all(log.rfind(word) < last for word in STOPPED)


def leader_of(running: Sequence[Worker]) -> Worker | None:
    found = [w for w in running if leads(w)]
    return found[0] if len(found) == 1 else None


def wait_leader(running: Sequence[Worker], timeout_s: float = 60.0) -> Worker:
    """The one leader among ``running`` (``WorkerTimeoutError`` after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        leader = leader_of(running)
        if leader is not None:
            return leader
        time.sleep(0.2)
    tails = "\n".join(w.tail() for w in running)
    raise WorkerTimeoutError(f"no single leader in {timeout_s:g} s\n{tails}")


async def read_committed(kafka: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record of ``topic`` up to its end now, as a ``read_committed`` reader sees it."""
    count = (await topic_partitions(kafka, [topic])).get(topic)
    if count is None:
        raise ValueError(f"no topic {topic}")
    tps = [TopicPartition(topic, p) for p in range(count)]
    consumer = clients.consumer(kafka, group_id=None, isolation_level="read_committed")
    async with clients.running(consumer, kafka):
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {timeout_s:g} s")
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                out += [r for r in records if r.offset < ends[tp]]
        return out


def outputs(kafka: KafkaSettings, topic: str) -> list[dict[str, Any]]:
    """Every record of ``topic`` as a ``read_committed`` reader sees it, decoded."""
    out = []
    for r in asyncio.run(read_committed(kafka, topic)):
        assert r.value is not None  # noqa: S101  # the workers write no tombstone here
        out.append(decode_raw(r.value).record)
    return out


async def produce_at_once(
    kafka: KafkaSettings, records: Sequence[tuple[str, bytes, bytes]]
) -> None:
    """``(topic, key, value)`` records in one transaction (see the module doc)."""
    producer = clients.producer(
        kafka, transactional_id=f"backlog-{uuid.uuid4().hex[:8]}", linger_ms=20
    )
    async with clients.running(producer, kafka), producer.transaction():
        futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
        await asyncio.gather(*futures)
