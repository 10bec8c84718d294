"""Fleet-level work on exactly one worker at a time: the election and the fencing.

Merging the partitions' slices into FleetStates, allocation and live compliance need
every site, so one worker does them: the leader. Every worker runs :class:`FleetLeader`;
which one leads is decided by Kafka, twice over:

1. **Election: a consumer group over a one-partition topic** (``<app_id>-leader``, group
   ``<app_id>-leader``): the member the group assigns partition 0 is the leader. This is
   Faust's own leader election (its assignor hands one member its ``__assignor-__leader``
   topic), rebuilt on a plain aiokafka consumer so that it fails over on the group's
   session timeout (``settings.workers.session_timeout_s``, 3 s by default; Faust's app
   group rebalances with its tables and takes far longer) and so that nothing else of
   Faust's rebalancing is involved. A killed or frozen leader stops heartbeating; after the
   session timeout the group gives partition 0 to another worker.
2. **Fencing: one transactional id for the fleet** (``<app_id>-leader``). A new leader's
   producer starts with that id (``InitProducerId``), which bumps the id's epoch: the
   previous leader's producer is fenced and its open transaction aborted. Every output of
   the leader (FleetStates, site setpoints, verdicts, dead letters, its state snapshot)
   goes out in a transaction; a leader that was frozen past its session timeout and then
   resumes fails on its next transactional call (``ProducerFenced``), logs that it was
   fenced out and stops acting: nothing it computed after its successor took over is ever
   committed. Consumers read the leader's outputs with ``isolation_level=read_committed``
   (the filter does; the archiver and the UI too), and every output carries its identity
   (a FleetState its window, a setpoint its activation and split revision, a verdict its
   window, obligation and rule), so even a reader of uncommitted records can drop a
   duplicate.

Why not Faust's election as it is: Faust moves its leader with the app's group, whose
rebalances also recover every table, and it cannot fence a leader that resumes after a
freeze: only the group tells it, on its next heartbeat, after it may already have acted.
Why not a lease of our own (a heartbeat topic and a timeout): it needs the same fencing
for a resumed leader, and a consumer group already is a well-tested failure detector.

What leading does is :mod:`streams.agents.leading` (restore from Kafka, merge the inputs
in event time, transact the outputs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

import faust

# aiokafka ships no type information
from aiokafka.abc import ConsumerRebalanceListener  # type: ignore[import-untyped, unused-ignore]
from aiokafka.errors import (  # type: ignore[import-untyped, unused-ignore]
    InvalidSessionTimeoutError,
    ProducerFenced,
)
from aiokafka.structs import TopicPartition  # type: ignore[import-untyped, unused-ignore]
from mode import Service

from contract.kafka import clients
from contract.kafka.delivery import Outgoing, finish, stop_within
from streams.agents.election import sticky_election
from streams.agents.groups import session_timeout_refused
from streams.agents.leading import CLIENT_STOP_S, Leading, election_topic
from streams.settings import StreamsSettings

log = logging.getLogger(__name__)

NAME = "fleet leader"
#: the log lines of a lead that ended (tests and the demo's supervisor read them)
STEPPED_DOWN_LINES = (f"{NAME}: no longer leading", f"{NAME}: FENCED OUT")
RETRY_S = 1.0  # a lead that failed (not fenced) is taken up again after this
STOP_TIMEOUT_S = 2.0  # a lead's task at a stop, then its close (CLIENT_STOP_S)


def election_group(settings: StreamsSettings) -> str:
    return f"{settings.app_id}-leader"


class FleetLeader(Service, ConsumerRebalanceListener):  # type: ignore[misc]  # untyped bases
    """Takes part in the election; leads while elected (see the module doc)."""

    def __init__(
        self,
        app: faust.App,
        settings: StreamsSettings,
        *,
        partitions: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.settings = settings
        self.partitions = partitions
        self.topic = election_topic(settings)
        self.elected = False  #: the group gave this worker the lead
        self.leading: Leading | None = None  #: the lead in progress (None: following)
        self.terms = 0  #: leads started
        self.fenced = 0  #: leads ended by fencing
        self.since: float | None = None  #: wall time the current lead began (election)
        #: the leads' dead letters, by (consumer, error type) (``streams.metrics``)
        self.dead_letters: Counter[tuple[str, str]] = Counter()
        self._consumer: Any = None
        self._poll_task: asyncio.Task[None] | None = None
        self._lead_task: asyncio.Task[None] | None = None
        self._closing = False
        Service.__init__(self, **kwargs)

    @property
    def is_leader(self) -> bool:
        return self.leading is not None and self.leading.active

    async def on_start(self) -> None:
        workers = self.settings.workers
        group = election_group(self.settings)
        consumer = clients.consumer(
            self.settings,
            group_id=group,
            client_id=group,
            session_timeout_ms=round(workers.session_timeout_s * 1000),
            heartbeat_interval_ms=round(workers.heartbeat_interval_s * 1000),
            partition_assignment_strategy=(sticky_election(lambda: self.since),),
        )
        await clients.start(consumer, self.settings)
        consumer.subscribe([self.topic], listener=self)
        self._consumer = consumer
        self._poll_task = asyncio.ensure_future(self._poll())

    async def on_stop(self) -> None:
        """The lead and the election consumer stop at once, each within its bound (an
        open transaction the broker cannot abort now is aborted by the next leader)."""
        self._closing = True
        await asyncio.gather(self._stop_leading("the worker stops"), self._leave())

    async def _leave(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:  # leaves the group: another worker leads now
            await stop_within(consumer, CLIENT_STOP_S)

    def unacked(self) -> list[Outgoing]:
        """The records of the lead's open transaction (the stop watchdog names them)."""
        leading = self.leading
        return [] if leading is None else leading.unacked()

    async def _poll(self) -> None:
        """Keeps the election consumer in its group (the topic holds nothing to read)."""
        try:
            while not self._closing:
                await self._consumer.getmany(timeout_ms=500)
        except InvalidSessionTimeoutError:
            error = session_timeout_refused(self.settings, election_group(self.settings))
            log.error("%s: %s", NAME, error)  # the message says it all
            await self.crash(error)

    # ------------------------------------------------------------------ election
    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        """The group's word on the lead after every rebalance. A lead in progress goes on
        when partition 0 stays here (the sticky assignor keeps it with the worker leading);
        it stops when the partition went elsewhere (and would be fenced anyway, as soon as
        the new leader's producer starts)."""
        if TopicPartition(self.topic, 0) in set(assigned) and not self._closing:
            if not self.elected:
                log.warning("%s: elected (partition 0 of %s)", NAME, self.topic)
            self.elected = True
            self._start_leading()
        elif self.elected:
            self.elected = False
            await self._stop_leading("the group moved the lead")

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        """Nothing to do yet: the assignment that follows says whether the lead stays."""

    def _start_leading(self) -> None:
        if self._lead_task is None or self._lead_task.done():
            self._lead_task = asyncio.ensure_future(self._lead())

    async def _stop_leading(self, why: str) -> None:
        task, self._lead_task = self._lead_task, None
        leading = self.leading
        self.since = None
        if leading is not None:
            leading.active = False
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, STOP_TIMEOUT_S)
            log.warning("%s: no longer leading: %s", NAME, why)

    async def _lead(self) -> None:
        while self.elected and not self._closing:
            self.terms += 1
            self.since = time.time()
            leading = self.leading = Leading(
                self.app, self.settings, partitions=self.partitions, dead_letters=self.dead_letters
            )
            try:
                await leading.run()
                return
            except ProducerFenced:
                self.fenced += 1
                log.error(  # the reason is the message, not a trace
                    "%s: FENCED OUT: another worker took the lead (its producer now holds the "
                    "transactional id %s); this worker stops acting as leader, and nothing it "
                    "computed since is committed",
                    NAME,
                    leading.transactional_id,
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: the lead failed; taking it up again in %g s", NAME, RETRY_S)
                await asyncio.sleep(RETRY_S)
            finally:
                leading.active = False
                self.since = None
                await finish(leading.close())  # to its end, even while cancelled again
