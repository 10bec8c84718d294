"""The setpoint filter's table: per-partition stores, their changelog, a warm standby copy.

The filter's state per site (``FilterState.to_dict()``) lives in the memory of the worker
that owns the site's partition of ``site.setpoints`` (``site_tasks``) and in a compacted
changelog, ``<app_id>-filter-state-changelog``, partitioned like ``site.setpoints`` (key:
the JSON of the site id, value: the JSON state; the partition's clock under the key ``""``;
the same bytes Faust's table wrote, so an existing changelog still loads).

Standby replica: every worker tails every changelog partition it does not own
(:class:`ChangelogStandby`: one consumer, no group, the owned partitions paused), so each
keeps a warm copy of the others' state. When a partition moves to a worker (a worker died
or joined), its new owner only reads the last records it has not seen yet
(:meth:`ChangelogStandby.take`: up to the partition's end offset), not the whole
changelog: no cold rebuild. When a worker gives a partition up
(:meth:`ChangelogStandby.give_back`), its copy stays and tailing resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from typing import Any

# aiokafka ships no type information
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]

from contract.kafka import clients
from contract.kafka.delivery import stop_within
from streams.settings import StreamsSettings

log = logging.getLogger(__name__)

_COMPACT = (",", ":")
POLL_MS = 200
TAKE_TIMEOUT_S = 60.0
STOP_S = 2.0  # the standby consumer at a stop, Kafka reachable or not


def changelog_topic(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-filter-state-changelog"


def changelog_entry(key: str, data: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The changelog key and value bytes of a store entry (the JSON Faust's table wrote)."""
    return (
        json.dumps(key, separators=_COMPACT).encode(),
        json.dumps(data, separators=_COMPACT).encode(),
    )


def parse_entry(key: bytes | None, value: bytes | None) -> tuple[str, Any] | None:
    """A changelog record as (store key, state dict or None); None when it is not one of
    ours (logged by the caller)."""
    if key is None:
        return None
    try:
        name = json.loads(key)
        data = None if value is None else json.loads(value)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(name, str) or (data is not None and not isinstance(data, dict)):
        return None
    return name, data


class ChangelogStandby:
    """Tails the changelog's partitions not owned here (see the module doc)."""

    def __init__(self, settings: StreamsSettings, partitions: int) -> None:
        self.settings = settings
        self.topic = changelog_topic(settings)
        self.partitions = partitions
        self.stores: dict[int, dict[str, Any]] = {p: {} for p in range(partitions)}
        self.applied = 0  #: records applied (all partitions)
        self.bad = 0  #: records that were not changelog entries
        self._owned: set[int] = set()
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._positions: dict[int, int] = {}
        self._moved = asyncio.Event()

    async def start(self) -> None:
        # a short fetch wait: a metadata request (end offsets) waits behind a pending fetch
        consumer = clients.consumer(
            self.settings, group_id=None, client_id=self.topic, fetch_max_wait_ms=100
        )
        await clients.start(consumer, self.settings)
        tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        self._consumer = consumer
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await stop_within(consumer, STOP_S)

    async def _run(self) -> None:
        consumer = self._consumer
        while True:
            batches = await consumer.getmany(timeout_ms=POLL_MS, max_records=10_000)
            for tp, records in batches.items():
                store = self.stores[tp.partition]
                for record in records:
                    entry = parse_entry(record.key, record.value)
                    if entry is None:
                        self.bad += 1
                        continue
                    name, data = entry
                    if data is None:
                        store.pop(name, None)
                    else:
                        store[name] = data
                    self.applied += 1
                if records:
                    self._positions[tp.partition] = records[-1].offset + 1
            self._moved.set()
            self._moved = asyncio.Event()

    async def take(self, partitions: list[int]) -> dict[int, dict[str, Any]]:
        """Own ``partitions``: their copies, caught up to the changelog's end (one end-offsets
        request for all), and tailing them paused (the owner writes them from now on)."""
        consumer = self._consumer
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TAKE_TIMEOUT_S
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                if loop.time() > deadline:
                    raise TimeoutError(
                        f"filter changelog {tp.topic}[{tp.partition}] not read to "
                        f"{ends[tp]} in {TAKE_TIMEOUT_S:g} s"
                    )
                moved = self._moved
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(moved.wait(), POLL_MS / 1000 * 2)
        consumer.pause(*tps)
        self._owned.update(partitions)
        return {p: self.stores[p] for p in partitions}

    def give_back(self, partition: int) -> None:
        """Stop owning ``partition`` and tail it again from where :meth:`take` paused it:
        the copy becomes what the owner wrote to the changelog, not the owner's memory (a
        cycle of a worker that was expelled while frozen changed its memory, never the
        changelog, and is read again by the partition's next owner)."""
        self._owned.discard(partition)
        if self._consumer is not None:
            self._consumer.resume(TopicPartition(self.topic, partition))
