"""The streams worker: ``build(settings)`` -> the Faust app hosting the worker's two services.

``flowerhub streams worker`` runs it (``flowerhub.cli.streams``); run as many as the fleet
needs (README "How to run at scale"). Each worker runs:

- :class:`~streams.agents.site_tasks.SiteTasks`: the per-site work of the
  ``site.telemetry``/``site.setpoints`` partitions the group ``<app_id>-sites`` gives it
  (telemetry decode and per-partition windows -> slices for the leader; the setpoint
  filter and its changelog; a warm standby copy of the other partitions' filter state);
- :class:`~streams.agents.leader.FleetLeader`: the election; on the one worker elected,
  the fleet-level work (FleetStates from the slices, allocation, live compliance), its
  state restored from Kafka on every takeover and every output in a transaction that
  fences the previous leader.

Faust hosts them (worker lifecycle, signals, logging); neither is a Faust agent: Faust's
per-event delivery is far slower than the inputs arrive, its tables cannot be co-assigned
with batched consumers, and its leader election cannot fence a resumed leader (see the
services' docs). Every topic is pre-created by the project before the worker starts
(``prepare_topics``): the table's topics under the settings' prefix, and the app's internal
ones (``internal_topics``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust

from contract.kafka.admin import CreateReport, create_topics, warn_under_replicated
from contract.topics import TOPICS, Topic
from streams.agents.leader import FleetLeader
from streams.agents.site_tasks import SiteTasks
from streams.settings import StreamsSettings
from streams.shutdown import BoundedWorker, report_pending

log = logging.getLogger(__name__)

READY_MESSAGE = "flowerhub streams worker ready"
#: how long the partitions' slices stay (a leader absent longer loses those windows)
SLICES_RETENTION_MS = 6 * 3600 * 1000


@dataclass(frozen=True)
class StreamsApp:
    """A built worker: the Faust app and its two services (tests and benches reach them)."""

    app: faust.App
    settings: StreamsSettings
    site_tasks: SiteTasks
    leader: FleetLeader


def broker_credentials(settings: StreamsSettings) -> Any:
    """Faust broker credentials from the connection settings (None for PLAINTEXT): the
    same TLS context and SASL login as every other client (``contract.kafka``)."""
    protocol = settings.security_protocol
    context = settings.ssl_context() if protocol.uses_tls else None
    if protocol.uses_sasl:
        assert settings.sasl_mechanism is not None  # noqa: S101  # checked by the settings
        assert settings.sasl_password is not None  # noqa: S101  # idem
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.sasl_mechanism.value,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def undo_spinner_debug(logger: logging.Logger) -> None:
    """Put ``logger`` (the root logger) back to its first handler's level if it is at DEBUG.

    At ``--loglevel warn`` and above, Faust's worker adds a terminal-spinner handler and sets
    the root logger to DEBUG (``faust/worker.py``: ``_setup_spinner_handler``), so every debug
    call of aiokafka, mode and Faust builds a log record per message that the handler then
    drops. Called once the worker is ready (the spinner has finished by then).
    """
    if logger.level == logging.DEBUG and logger.handlers:
        level = logger.handlers[0].level
        if level > logging.DEBUG:
            logger.setLevel(level)


def build(
    settings: StreamsSettings,
    *,
    partitions: int | None = None,
    on_ready: Callable[[], None] | None = None,
) -> StreamsApp:
    """The worker. ``partitions`` overrides every topic's partition count (topics created
    with ``create_topics(..., partitions=n)``); ``on_ready`` runs once the worker is ready
    (the CLI passes its process-wide GC policy)."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_urls(),
        broker_credentials=broker_credentials(settings),
        store="memory://",
        autodiscover=False,
        topic_allow_declare=False,
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # SIGTERM -> gone within WORKER_STOP_S even with Kafka unreachable (streams.shutdown)
        Worker=BoundedWorker,
    )
    site_tasks = SiteTasks(app, settings, partitions=partitions, beacon=app.beacon)
    leader = FleetLeader(app, settings, partitions=partitions, beacon=app.beacon)
    app.service(site_tasks)  # an instance: Faust starts it as it is
    app.service(leader)
    # what the stop watchdog names if the stop runs out of time (streams.shutdown)
    report_pending(site_tasks.unacked)
    report_pending(leader.unacked)
    built = StreamsApp(app, settings, site_tasks, leader)

    async def announce_ready() -> None:
        undo_spinner_debug(logging.getLogger())
        if on_ready is not None:
            on_ready()
        log.warning(
            "%s: app_id=%s prefix=%r", READY_MESSAGE, settings.app_id, settings.topic_prefix
        )

    app.task(announce_ready)
    return built


def settings_with(
    *, bootstrap: str | None = None, app_id: str | None = None, prefix: str | None = None
) -> StreamsSettings:
    """``StreamsSettings`` from the environment, with the given values on top."""
    overrides: dict[str, Any] = {}
    if bootstrap:
        overrides["bootstrap_servers"] = bootstrap
    if app_id:
        overrides["app_id"] = app_id
    if prefix is not None:
        overrides["topic_prefix"] = prefix
    return StreamsSettings(**overrides)


def create_app(
    settings: StreamsSettings,
    *,
    partitions: int | None = None,
    on_ready: Callable[[], None] | None = None,
) -> faust.App:
    """The streams Faust app for ``settings`` (see ``build``)."""
    return build(settings, partitions=partitions, on_ready=on_ready).app


def internal_topics(app_id: str, partitions: int | None = None) -> tuple[Topic, ...]:
    """The app's own topics: the filter's compacted changelog (partitioned like
    ``site.setpoints``), the partitions' slices for the leader (like ``site.telemetry``),
    the election topic and the leader's compacted snapshot (one partition each), and
    Faust's assignor topic."""
    by_name = {t.name: t for t in TOPICS}
    return (
        Topic(
            f"{app_id}-filter-state-changelog",
            None,
            "filter-state-json",
            partitions or by_name["site.setpoints"].partitions,
            cleanup_policy="compact",
            retention_ms=None,
            doc="Changelog of the setpoint filter's state per site.",
        ),
        Topic(
            f"{app_id}-site-slices",
            None,
            "window-slice-json",
            partitions or by_name["site.telemetry"].partitions,
            retention_ms=SLICES_RETENTION_MS,
            doc="Each telemetry partition's closed windows and progress, for the leader.",
        ),
        Topic(
            f"{app_id}-leader",
            None,
            "election",
            1,
            doc="The leader election: the member holding partition 0 leads.",
        ),
        Topic(
            f"{app_id}-leader-state",
            None,
            "leader-state-json",
            1,
            cleanup_policy="compact",
            retention_ms=None,
            doc="The leader's snapshot (allocations, compliance, windows emitted, offsets).",
        ),
        Topic(
            f"{app_id}-__assignor-__leader",
            None,
            "faust-internal",
            1,
            doc="Faust's assignor leader topic.",
        ),
    )


async def prepare_topics(
    settings: StreamsSettings,
    *,
    partitions: int | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
) -> tuple[CreateReport, CreateReport]:
    """Create the table's topics (prefixed) and the app's internal ones (changelogs and the
    assignor topic); idempotent. Replication min(3, brokers) and ``min.insync.replicas``
    min(2, replication) from the cluster unless given (``contract.kafka.admin``); existing
    topics below that rule are logged with the commands that fix them."""
    data = await create_topics(
        settings,
        settings.topic_prefix,
        partitions=partitions,
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
    )
    internal = await create_topics(
        settings,
        "",
        replication_factor=replication_factor,
        min_insync_replicas=min_insync_replicas,
        topics=internal_topics(settings.app_id, partitions),
    )
    warn_under_replicated(
        log, "streams worker", settings, data.under_replicated + internal.under_replicated
    )
    return data, internal
