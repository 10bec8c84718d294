"""`flowerhub streams worker|send`: run the streams app, or send one event for debugging.

``worker`` reads ``StreamsSettings`` from the environment (``FLOWERHUB_*``), applies the
flags on top, creates every topic (the table's, prefixed, and the app's internal ones) and
runs the Faust worker until SIGINT/SIGTERM; with ``--metrics-port`` (or
``FLOWERHUB_METRICS_PORT``) it serves Prometheus ``/metrics`` (``streams.metrics``).
``send TOPIC JSON`` encodes a JSON object as the topic's event (``event_id``/``event_time``
filled in when missing) and produces it keyed per the topic table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from contract.metrics import MetricsConfigError, add_metrics_arguments, settings_from_args
from flowerhub.cli import CliError
from flowerhub.cli.kafka import add_connection, connection_as


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "streams",
        help="run the streams worker (filter, allocator, aggregator, compliance) or send events",
        description="The Faust streams app: setpoint filter, allocator, fleet aggregation, "
        "live compliance. Settings from FLOWERHUB_* environment variables.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    worker = verbs.add_parser("worker", help="create the topics and run a streams worker")
    _common(worker)
    worker.add_argument("--app-id", help="Faust app id / consumer group (FLOWERHUB_APP_ID)")
    worker.add_argument(
        "--partitions",
        type=int,
        help="partitions of every topic, when they were created with one count for all",
    )
    worker.add_argument(
        "--replication-factor",
        type=int,
        help="replication factor for topics the worker creates, internal changelogs "
        "included (default: min(3, brokers) from the cluster's metadata)",
    )
    worker.add_argument(
        "--min-insync-replicas",
        type=int,
        help="min.insync.replicas of the topics the worker creates "
        "(default: min(2, replication factor))",
    )
    worker.add_argument(
        "--loglevel",
        default="info",
        choices=("crit", "error", "warn", "info", "debug"),
        help="worker log level (default info)",
    )
    add_metrics_arguments(worker, "streams")
    worker.set_defaults(func=cmd_worker)

    send = verbs.add_parser("send", help="encode a JSON object as TOPIC's event and send it")
    _common(send)
    send.add_argument("topic", help="logical topic name, e.g. market.fleet-setpoints")
    send.add_argument("json", help='the record as JSON, e.g. \'{"fleet_id": "flowerhub", ...}\'')
    send.set_defaults(func=cmd_send)


def _common(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    parser.add_argument("--prefix", help="topic prefix (FLOWERHUB_TOPIC_PREFIX)")


def settings_from(args: argparse.Namespace) -> Any:
    """``StreamsSettings``: the connection flags, the environment (``FLOWERHUB_*``) and the
    local broker as every verb (``flowerhub.cli.kafka``), with the app id and prefix flags."""
    from streams.settings import StreamsSettings

    extra: dict[str, Any] = {}
    if getattr(args, "app_id", None):
        extra["app_id"] = args.app_id
    if args.prefix is not None:
        extra["topic_prefix"] = args.prefix
    return connection_as(StreamsSettings, args, **extra)


def cmd_worker(args: argparse.Namespace) -> int:
    from contract.topics import TopicError
    from flowerhub.gcpolicy import quiet_gc
    from streams.app import build, prepare_topics
    from streams.metrics import serve

    settings = settings_from(args)
    try:
        metrics = settings_from_args(args)
    except MetricsConfigError as exc:
        raise CliError(str(exc)) from exc
    if args.partitions is not None and args.partitions < 1:
        raise CliError(f"--partitions must be >= 1, got {args.partitions}")
    if args.replication_factor is not None and args.replication_factor < 1:
        raise CliError(f"--replication-factor must be >= 1, got {args.replication_factor}")
    if args.min_insync_replicas is not None and args.min_insync_replicas < 1:
        raise CliError(f"--min-insync-replicas must be >= 1, got {args.min_insync_replicas}")
    try:
        data, internal = asyncio.run(
            prepare_topics(
                settings,
                partitions=args.partitions,
                replication_factor=args.replication_factor,
                min_insync_replicas=args.min_insync_replicas,
            )
        )
    except (TopicError, OSError) as exc:  # KafkaUnreachableError is an OSError
        raise CliError(str(exc)) from exc
    created = len(data.created) + len(internal.created)
    print(
        f"topics: {created} created, {len(data.existing) + len(internal.existing)} existing "
        f"(replication {data.replication_factor}, "
        f"min.insync.replicas {data.min_insync_replicas})"
    )
    # the start-up heap (Faust, aiokafka, numpy...) out of full collections once ready
    built = build(settings, partitions=args.partitions, on_ready=quiet_gc)
    serve(built, metrics)  # logs its URL once it listens
    sys.argv = [sys.argv[0], "worker", f"--loglevel={args.loglevel}", "--without-web"]
    built.app.main()  # runs until a signal and exits the process itself (NoReturn)


def cmd_send(args: argparse.Namespace) -> int:
    from contract.codec import encode, new_event
    from contract.errors import EventError
    from contract.topics import TopicError, topic

    settings = settings_from(args)
    try:
        row = topic(args.topic)
        fields = json.loads(args.json)
        if not isinstance(fields, dict):
            raise CliError("JSON must be an object")
        record = new_event(row.value_event, **fields)
        value = encode(row.value_event, record)
        key = row.key_of(record)
    except (TopicError, EventError, json.JSONDecodeError) as exc:
        raise CliError(str(exc)) from exc
    try:
        asyncio.run(_produce(settings, row.full_name(settings.topic_prefix), key, value))
    except OSError as exc:  # KafkaUnreachableError: says where and why
        raise CliError(str(exc)) from exc
    print(f"sent {row.value_event} {record['event_id']} to {row.full_name(settings.topic_prefix)}")
    return 0


async def _produce(settings: Any, topic: str, key: bytes | None, value: bytes) -> None:
    from contract.kafka import clients

    async with clients.running(clients.producer(settings), settings) as producer:
        await producer.send_and_wait(topic, value=value, key=key)
