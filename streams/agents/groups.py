"""The workers' consumer groups and partitions: names, the session timeout the brokers must
allow, whether a partition has been read to its end (``caught_up``), and whether a worker
that was away (frozen, its loop blocked) is still a member of its group (``still_member``).

Both services of a worker (``site_tasks``, ``leader``/``leading``) use these: the group
``<app_id>-sites`` shares the per-site partitions, the internal topic
``<app_id>-site-slices`` carries each partition's closed windows to the leader, and a
partition counts as read to its end only on a recent fetch (a broker that has not answered
for a while says nothing about what it holds: an outage's backlog must not find its
windows closed by the wall clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

# aiokafka ships no type information
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    CommitFailedError,
    IllegalStateError,
    KafkaError,
)

from streams.settings import StreamsSettings

log = logging.getLogger(__name__)

#: how recent the fetch that says a partition is read to its end must be (seconds)
FRESH_S = 1.0
#: how long a membership question waits for the broker (the lock of a cycle is held)
PROBE_TIMEOUT_S = 5.0


async def caught_up(consumer: Any, tp: Any) -> int | None:
    """``consumer``'s position on ``tp`` when it has read ``tp`` to its end (the last
    stable offset under read_committed) as of a fetch in the last ``FRESH_S``; else None."""
    polled = consumer.last_poll_timestamp(tp)
    if polled is None or time.time() * 1000 - polled > FRESH_S * 1000:
        return None
    high = consumer.last_stable_offset(tp)
    if high is None or high < 0:
        high = consumer.highwater(tp)
    if high is None:
        return None
    try:
        position = int(await consumer.position(tp))
    except IllegalStateError:  # no longer assigned
        return None
    return position if position >= high else None


async def membership_error(
    consumer: Any, tps: Iterable[Any], timeout_s: float = PROBE_TIMEOUT_S
) -> Exception | None:
    """Whether ``consumer`` is still a member of its group's generation, asked of the broker
    with a commit of the offsets the group holds for ``tps``: for a member, a commit of what
    is already committed; for one the group expelled (its session expired while it was
    frozen or its loop blocked), refused with ``CommitFailedError``, and aiokafka rejoins.
    None: a member; else why not known to be one (``LookupError``: no committed offset to
    ask with; ``TimeoutError``: no answer in ``timeout_s``)."""
    try:
        async with asyncio.timeout(timeout_s):
            offsets = {}
            for tp in tps:
                committed = await consumer.committed(tp)
                if committed is not None:
                    offsets[tp] = committed
            if not offsets:
                return LookupError("no committed offset to ask with")
            await consumer.commit(offsets)
    except (IllegalStateError, KafkaError, TimeoutError) as exc:
        error: Exception = exc
        return error
    return None


async def expelled(consumer: Any, away_s: float, name: str) -> bool:
    """Whether the group expelled ``consumer`` (``membership_error`` on the partitions
    assigned to it: ``CommitFailedError``) during a cycle that took ``away_s`` seconds,
    longer than the session timeout (frozen or blocked): then the cycle's outputs are
    dropped (said in the log), its records read again by their partitions' owners."""
    if not isinstance(await membership_error(consumer, consumer.assignment()), CommitFailedError):
        return False
    log.warning(
        "%s: %.1f s in a cycle (frozen or blocked), no longer a member of the group: its "
        "outputs are dropped, its records read again by their partitions' owners",
        name,
        away_s,
    )
    return True


async def still_member(
    consumer: Any, batches: Mapping[Any, list[Any]], away_s: float, name: str
) -> bool:
    """Whether ``consumer`` may process ``batches`` (records, or a cycle's timers), polled
    ``away_s`` seconds after the last poll it was known to be a member at, longer than the
    group's session timeout (frozen, or its loop blocked): the group may have given its
    partitions to another worker, which reads the same records from the committed offsets.
    Asked with ``membership_error`` on the batch's partitions (none: the ones assigned);
    not known either way (nothing committed yet): yes. When not, the batch is dropped, said
    in the log, and its partitions are sought back to its first records (read again, by
    this worker if they stay its own); the caller asks again at its next poll, until the
    rebalance is done: a worker that was frozen writes nothing for a partition it lost."""
    firsts = {tp: records[0].offset for tp, records in batches.items() if records}
    error = await membership_error(consumer, firsts or consumer.assignment())
    if error is None or isinstance(error, LookupError):
        log.info("%s: %.1f s without a poll: still a member of the group", name, away_s)
        return True
    for tp, first in firsts.items():
        with contextlib.suppress(IllegalStateError):  # no longer assigned
            consumer.seek(tp, first)
    log.warning(
        "%s: %.1f s without a poll (longer than the session timeout: frozen or blocked): "
        "not confirmed as a member of the group (%r); the %d record(s) in hand are dropped, "
        "read again by their partitions' owners",
        name,
        away_s,
        error,
        sum(len(records) for records in batches.values()),
    )
    return False


class SessionTimeoutRefusedError(RuntimeError):
    """The brokers do not allow the workers' session timeout."""


def session_timeout_refused(settings: StreamsSettings, group: str) -> SessionTimeoutRefusedError:
    """The error that says which setting the brokers refused and how to fix it."""
    ms = round(settings.workers.session_timeout_s * 1000)
    return SessionTimeoutRefusedError(
        f"consumer group {group}: the brokers refuse a session timeout of {ms} ms "
        f"(FLOWERHUB_WORKERS__SESSION_TIMEOUT_S): their group.min.session.timeout.ms is "
        "higher (Kafka's default is 6000). Lower it on the brokers (the project's own "
        "brokers allow 1000), or raise the workers' session timeout (a killed worker's "
        "partitions and lead then move later)"
    )


def group_id(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-sites"


def slices_topic(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-site-slices"


def wall_micros() -> int:
    """A monotonic clock in microseconds (processing time: estimates and idle bounds)."""
    return time.monotonic_ns() // 1000
