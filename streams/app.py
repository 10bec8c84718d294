"""The Faust app factory: ``create_app(settings) -> faust.App`` (no module-global app).

``flowerhub streams worker`` runs it (``flowerhub.cli.streams``). Every topic is pre-created by the
project before the worker starts (``prepare_topics``): the table's topics under the
settings' prefix, and the app's internal topics (``internal_topics``: each table's
changelog ``<app_id>-<table>-changelog`` and the assignor's leader topic), so the app sets
``topic_allow_declare=False`` and never relies on broker auto-creation.

Agents (``streams.agents``): allocator (+ command results), live compliance. The two bulk
inputs are not Faust agents (Faust's per-event delivery is far slower than they arrive):
the app's ``TelemetryService`` (``streams.agents.telemetry_service``) consumes telemetry in
batches into the pure aggregation step (consumer group ``<app_id>-telemetry``), and the
setpoint filter's ``BatchConsumer`` (``streams.agents.batch_consumer``, group
``<app_id>-setpoints``) feeds ``site.setpoints`` in batches to the filter, whose state is a
Faust table; both start after table recovery and stop with the app. Tables live in the
memory store, rebuilt from their changelogs on start. Topics carry raw bytes; the agents
apply the project's Avro codec.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust

from contract.kafka.admin import CreateReport, create_topics, warn_under_replicated
from contract.topics import TOPICS, Topic
from streams.agents import allocator, compliance, setpoint_filter
from streams.agents.aggregator import TelemetryAggregator
from streams.agents.base import AgentContext, wall_clock_micros
from streams.agents.sitebook import SiteBook
from streams.agents.telemetry_service import TelemetryService
from streams.settings import StreamsSettings
from streams.shutdown import BoundedWorker, report_pending

log = logging.getLogger(__name__)

READY_MESSAGE = "flowerhub streams worker ready"
TABLES = (setpoint_filter.TABLE, compliance.TABLE)


@dataclass(frozen=True)
class StreamsApp:
    """A built app and its agents (tests and benches reach the agents through it)."""

    app: faust.App
    ctx: AgentContext
    book: SiteBook
    setpoint_filter: setpoint_filter.SetpointFilter
    allocator: allocator.AllocatorAgent
    aggregator: TelemetryAggregator
    compliance: compliance.ComplianceAgent
    telemetry: TelemetryService


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
    clock: Callable[[], int] = wall_clock_micros,
    store: str = "memory://",
    on_ready: Callable[[], None] | None = None,
) -> StreamsApp:
    """The app with every agent registered. ``partitions`` overrides every topic's partition
    count (topics created with ``create_topics(..., partitions=n)``); ``clock`` is the
    processing-time clock (int microseconds); ``on_ready`` runs once the worker is ready (the
    CLI passes its process-wide GC policy)."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker_urls(),
        broker_credentials=broker_credentials(settings),
        store=store,
        autodiscover=False,
        topic_allow_declare=False,
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        # per-partition batches of a fan-out (streams.agents.batching) of up to 512 KiB: one
        # partition has one batch in flight at a time, so 16 KiB (the default) meant a dozen
        # round trips per partition for one fleet setpoint's 10,000 commands
        producer_max_batch_size=512 * 1024,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        # a killed worker's partitions move to the others after 10 s (Faust's default: 60 s)
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        # SIGTERM -> gone within WORKER_STOP_S even with Kafka unreachable (streams.shutdown)
        Worker=BoundedWorker,
    )
    ctx = AgentContext(app, settings, partitions, clock)
    book = SiteBook()
    aggregator = TelemetryAggregator(settings, book)
    telemetry = TelemetryService(
        app, settings, aggregator, clock=clock, sender=ctx.sender, beacon=app.beacon
    )
    app.service(telemetry)  # type: ignore[arg-type]  # an instance: Faust starts it as is
    report_pending(ctx.unacked)

    async def close_outputs(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await ctx.close_sender()

    app.on_before_shutdown.connect(close_outputs)

    built = StreamsApp(
        app,
        ctx,
        book,
        setpoint_filter.register(ctx, book),
        allocator.register(ctx, book),
        aggregator,
        compliance.register(ctx, book),
        telemetry,
    )

    async def announce_ready() -> None:
        # app tasks start once table recovery is over and partitions are sought
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
    """The streams Faust app for ``settings`` (see ``build`` for the agents)."""
    return build(settings, partitions=partitions, on_ready=on_ready).app


def internal_topics(app_id: str, partitions: int | None = None) -> tuple[Topic, ...]:
    """The app's own topics: one compacted changelog per table, partitioned like the
    table's source topic, and the assignor leader topic (one partition)."""
    sources = {setpoint_filter.TABLE: "site.setpoints", compliance.TABLE: "fleet.state"}
    by_name = {t.name: t for t in TOPICS}
    rows = [
        Topic(
            f"{app_id}-{table}-changelog",
            None,
            "faust-table-json",
            partitions or by_name[sources[table]].partitions,
            cleanup_policy="compact",
            retention_ms=None,
            doc=f"Changelog of the {table} table.",
        )
        for table in TABLES
    ]
    rows.append(
        Topic(
            f"{app_id}-__assignor-__leader",
            None,
            "faust-internal",
            1,
            doc="Faust's assignor leader topic.",
        )
    )
    return tuple(rows)


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
