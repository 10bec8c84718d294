"""The streams worker stops within a stated bound on SIGTERM/SIGINT, Kafka reachable or not.

Faust's graceful stop waits on the brokers (the producer flushes its batches, the consumer
commits and leaves its group); with a frozen or unreachable cluster that wait has no end, and
the service manager kills the process after its own timeout (issue 15: 30 s). The
:class:`BoundedWorker` arms a watchdog thread with the first stop signal: if the graceful
stop has not ended within :data:`WORKER_STOP_S`, the watchdog names what was not
acknowledged (the outputs still out, per topic-partition) and ends the process.

Nothing is lost by that: the worker commits an input's offset only after its outputs were
acknowledged (``SiteTasks``: per record, ``contract.kafka.delivery``; the leader: its
transaction's commit), so the inputs of unacknowledged outputs are read again by the next
owner (at-least-once for the per-site outputs, whose ids are derived: readers dedupe by
``event_id``; an open transaction of the leader is aborted, and the next lead redoes it from
its snapshot). The filter state comes back from its changelog.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import faust

log = logging.getLogger(__name__)

WORKER_STOP_S = 15.0  # the bound: SIGTERM -> process gone, whatever Kafka does
EXIT_FORCED = 3  # the exit status when the watchdog ended the stop

#: callables that list what is still out (set by the app: its per-record sender's records)
_PENDING: list[Callable[[], list[Any]]] = []


def report_pending(source: Callable[[], list[Any]]) -> None:
    """Register ``source`` (returns ``Outgoing`` records not acknowledged) for the watchdog."""
    _PENDING.append(source)


def describe_pending() -> str:
    """``N record(s): topic[p] x n, ...`` of everything the registered sources hold."""
    counts: Counter[str] = Counter()
    for source in _PENDING:
        try:
            for record in source():
                counts[f"{record.topic}[{record.partition}]"] += 1
        except Exception as exc:  # the report must not stop the exit
            counts[f"(unreadable: {type(exc).__name__})"] += 1
    if not counts:
        return "no output waiting for an acknowledgement"
    parts = ", ".join(f"{where} x {n}" for where, n in counts.most_common(20))
    return f"{sum(counts.values())} output record(s) not acknowledged: {parts}"


def _force_exit(bound_s: float) -> None:
    """Sleeps ``bound_s``: a graceful stop that ends sooner ends the process (and this daemon
    thread) before it wakes."""
    time.sleep(bound_s)
    log.error(
        "streams worker: graceful stop not done within %.0f s (Kafka unreachable?); exiting "
        "now. %s; their inputs are not committed and are read again at the next start",
        bound_s,
        describe_pending(),
    )
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # exiting anyway
            handler.flush()
    os._exit(EXIT_FORCED)


class BoundedWorker(faust.Worker):
    """Faust's worker with a stop bound (module doc). ``stop_bound_s`` per instance."""

    stop_bound_s = WORKER_STOP_S

    _watchdog: threading.Thread | None = None

    def _schedule_shutdown(self, signum: signal.Signals) -> None:
        if self._watchdog is None:
            log.warning(
                "streams worker: %s: stopping (bound %.0f s)", signum.name, self.stop_bound_s
            )
            self._watchdog = threading.Thread(
                target=_force_exit,
                args=(self.stop_bound_s,),
                name="flowerhub-stop-watchdog",
                daemon=True,
            )
            self._watchdog.start()
        super()._schedule_shutdown(signum)
