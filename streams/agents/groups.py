"""The workers' consumer groups and partitions: names, the session timeout the brokers must
allow, and whether a partition has been read to its end (``caught_up``).

Both services of a worker (``site_tasks``, ``leader``/``leading``) use these: the group
``<app_id>-sites`` shares the per-site partitions, the internal topic
``<app_id>-site-slices`` carries each partition's closed windows to the leader, and a
partition counts as read to its end only on a recent fetch (a broker that has not answered
for a while says nothing about what it holds: an outage's backlog must not find its
windows closed by the wall clock).
"""

from __future__ import annotations

import time
from typing import Any

# aiokafka ships no type information
from aiokafka.errors import IllegalStateError  # type: ignore[import-untyped, unused-ignore]

from streams.settings import StreamsSettings

#: how recent the fetch that says a partition is read to its end must be (seconds)
FRESH_S = 1.0


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
