"""`flowerhub topics ...` and `flowerhub events ...`: the topic table and the event codec.

- ``topics list [--prefix P]``: the topic table.
- ``topics create [--prefix P] [--partitions N] [--replication-factor R]
  [--min-insync-replicas M]``: create every topic (idempotent); replication min(3, brokers)
  and min.insync.replicas min(2, replication) unless given; existing topics below that rule
  are named with the commands that fix them.
- ``topics check [--prefix P] [--plan FILE]``: topics below the rule (exit 1), and the
  reassignment plan for ``kafka-reassign-partitions.sh``.
  The broker: the connection flags of every verb (``--bootstrap``,
  ``--security-protocol``, ...), else ``FLOWERHUB_*`` / ``KAFKA_BOOTSTRAP_SERVERS``, else the
  running local broker (``flowerhub broker start``); see ``flowerhub.cli.kafka``.
- ``events list``: event names, versions, fingerprints.
- ``events encode NAME JSON``: a record (JSON, see ``contract.jsonform``; ``event_id`` and
  ``event_time`` filled in when absent) to single-object bytes, printed as hex.
- ``events decode HEX`` / ``events decode --file PATH``: bytes to JSON.
- ``events check``: the history rule and BACKWARD_TRANSITIVE, exit 1 on a problem.
- ``events freeze NAME``: copy the current schema to the next history version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from flowerhub.cli import CliError
from flowerhub.cli.kafka import add_connection, connection


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    topics = subparsers.add_parser("topics", help="list or create the Kafka topics")
    verbs = topics.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    listing = verbs.add_parser("list", help="print the topic table")
    listing.add_argument("--prefix", default="", help="namespace prefix, e.g. 'replay-1.'")
    listing.set_defaults(func=cmd_topics_list)
    create = verbs.add_parser("create", help="create every topic (existing ones are fine)")
    create.add_argument("--prefix", default="", help="namespace prefix, e.g. 'replay-1.'")
    create.add_argument("--partitions", type=int, help="override every topic's partitions")
    create.add_argument(
        "--replication-factor",
        type=int,
        help="replicas per partition (default: min(3, brokers) from the cluster's metadata)",
    )
    create.add_argument(
        "--min-insync-replicas",
        type=int,
        help="min.insync.replicas of each topic (default: min(2, replication factor))",
    )
    add_connection(create)
    create.set_defaults(func=cmd_topics_create)
    check = verbs.add_parser(
        "check",
        help="list topics below the replication rule (min(3, brokers) replicas, "
        "min.insync.replicas min(2, replicas)), with the commands that fix them",
    )
    check.add_argument("--prefix", default=None, help="only topics of the table under P")
    check.add_argument(
        "--plan",
        type=Path,
        metavar="FILE",
        help="write the kafka-reassign-partitions.sh plan that adds the missing replicas",
    )
    add_connection(check)
    check.set_defaults(func=cmd_topics_check)

    events = subparsers.add_parser("events", help="encode, decode and check Avro events")
    verbs = events.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True
    verbs.add_parser("list", help="event names, versions, fingerprints").set_defaults(
        func=cmd_events_list
    )
    encode = verbs.add_parser("encode", help="JSON record -> single-object bytes (hex)")
    encode.add_argument("name", help="event name, e.g. SiteTelemetry")
    encode.add_argument("json", help="the record as a JSON object ('-' reads stdin)")
    encode.set_defaults(func=cmd_events_encode)
    decode = verbs.add_parser("decode", help="bytes (hex, or --file) -> JSON")
    source = decode.add_mutually_exclusive_group(required=True)
    source.add_argument("hex", nargs="?", help="the message as hex")
    source.add_argument("--file", type=Path, help="read the raw message bytes from a file")
    decode.set_defaults(func=cmd_events_decode)
    verbs.add_parser("check", help="history rule + BACKWARD_TRANSITIVE").set_defaults(
        func=cmd_events_check
    )
    freeze = verbs.add_parser("freeze", help="add the current schema as the next version")
    freeze.add_argument("name")
    freeze.set_defaults(func=cmd_events_freeze)


# ------------------------------------------------------------------------------ topics


def cmd_topics_list(args: argparse.Namespace) -> int:
    from contract.topics import TOPICS, TopicError

    rows = [("topic", "key", "value event", "partitions", "policy")]
    try:
        for t in TOPICS:
            policy = (
                "compact"
                if t.cleanup_policy == "compact"
                else f"delete after {(t.retention_ms or 0) / 86_400_000:g} d"
            )
            rows.append(
                (
                    t.full_name(args.prefix),
                    t.key_field or "-",
                    t.value_event,
                    str(t.partitions),
                    policy,
                )
            )
    except TopicError as exc:
        raise CliError(str(exc)) from exc
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    import asyncio

    from contract.kafka.admin import create_topics
    from contract.topics import TopicError

    kafka = connection(args)
    try:
        report = asyncio.run(
            create_topics(
                kafka,
                args.prefix,
                partitions=args.partitions,
                replication_factor=args.replication_factor,
                min_insync_replicas=args.min_insync_replicas,
            )
        )
    except (TopicError, OSError) as exc:  # OSError: KafkaUnreachableError says where and why
        raise CliError(str(exc)) from exc
    except Exception as exc:  # other aiokafka errors: say which broker, no traceback
        raise CliError(f"{kafka.describe()}: {type(exc).__name__}: {exc}") from exc
    print(
        f"replication {report.replication_factor}, min.insync.replicas {report.min_insync_replicas}"
    )
    for name in report.created:
        print(f"created   {name}")
    for name in report.existing:
        print(f"existing  {name}")
    _print_shortfalls(report.under_replicated, kafka.bootstrap_servers)
    return 0


def _print_shortfalls(shortfalls: Any, bootstrap: str) -> None:
    for short in shortfalls:
        print(f"UNDER-REPLICATED  {short.describe()}", file=sys.stderr)
        for command in short.fix_commands(bootstrap):
            print(f"  fix: {command}", file=sys.stderr)


def cmd_topics_check(args: argparse.Namespace) -> int:
    """Exit 0 when every topic meets the rule, 1 when some do not (listed on stderr)."""
    import asyncio

    from contract.kafka.admin import check_replication, reassignment_plan, replica_layout
    from contract.topics import TOPICS, TopicError

    kafka = connection(args)
    names = None if args.prefix is None else [t.full_name(args.prefix) for t in TOPICS]
    try:
        shortfalls = asyncio.run(check_replication(kafka, names))
        if args.plan is not None:
            short_names = [s.topic for s in shortfalls]
            brokers, layout = asyncio.run(replica_layout(kafka, short_names))
            plan = reassignment_plan(shortfalls, brokers, layout)
            args.plan.write_text(json.dumps(plan, indent=1) + "\n", encoding="utf-8")
            print(f"wrote {args.plan}: {len(plan['partitions'])} partition(s) to reassign")
    except (TopicError, OSError) as exc:
        raise CliError(str(exc)) from exc
    except Exception as exc:  # other aiokafka errors: say which broker, no traceback
        raise CliError(f"{kafka.describe()}: {type(exc).__name__}: {exc}") from exc
    if not shortfalls:
        print("every topic meets the replication rule")
        return 0
    _print_shortfalls(shortfalls, kafka.bootstrap_servers)
    return 1


# ------------------------------------------------------------------------------ events


def cmd_events_list(args: argparse.Namespace) -> int:
    from contract.codec import default_codec

    registry = default_codec().registry
    for name in registry.names():
        current = registry.current(name)
        print(
            f"{name:<20} v{current.version}  {current.fingerprint_hex}  "
            f"{current.path.parent.name}/{current.path.name}  "
            f"({len(registry.history(name))} frozen)"
        )
    return 0


def cmd_events_encode(args: argparse.Namespace) -> int:
    from contract.codec import default_codec
    from contract.errors import EventError
    from contract.jsonform import from_jsonable

    codec = default_codec()
    text = sys.stdin.read() if args.json == "-" else args.json
    try:
        value = json.loads(text)
        schema = codec.registry.current(args.name)
        record = from_jsonable(schema.raw, value)
        record = codec.new_event(args.name, **record)
        print(codec.encode(args.name, record).hex())
    except json.JSONDecodeError as exc:
        raise CliError(f"JSON: {exc}") from exc
    except EventError as exc:
        raise CliError(f"{type(exc).__name__}: {exc}") from exc
    return 0


def cmd_events_decode(args: argparse.Namespace) -> int:
    from contract.codec import default_codec
    from contract.errors import EventDecodeError
    from contract.jsonform import to_jsonable

    if args.file is not None:
        try:
            data = args.file.read_bytes()
        except OSError as exc:
            raise CliError(f"{args.file}: {exc}") from exc
    else:
        try:
            data = bytes.fromhex(args.hex)
        except ValueError as exc:
            raise CliError(f"not hex: {exc}") from exc
    try:
        decoded = default_codec().decode(data)
    except EventDecodeError as exc:
        raise CliError(f"{type(exc).__name__}: {exc}") from exc
    out = {
        "event": decoded.name,
        "writer_version": decoded.writer_version,
        "record": to_jsonable(decoded.record),
    }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


def cmd_events_check(args: argparse.Namespace) -> int:
    from contract.errors import SchemaDefinitionError
    from contract.evolution import check_backward_transitive, check_history
    from contract.registry import SchemaRegistry

    try:
        problems = check_history() + check_backward_transitive(SchemaRegistry.load())
    except SchemaDefinitionError as exc:
        raise CliError(str(exc)) from exc
    for problem in problems:
        print(problem)
    if not problems:
        print("ok: every schema is frozen in history and BACKWARD_TRANSITIVE")
    return 1 if problems else 0


def cmd_events_freeze(args: argparse.Namespace) -> int:
    from contract.errors import SchemaDefinitionError
    from contract.evolution import freeze

    try:
        path = freeze(args.name)
    except (ValueError, SchemaDefinitionError) as exc:
        raise CliError(str(exc)) from exc
    print(f"{args.name}: unchanged" if path is None else f"{args.name}: froze {path}")
    return 0
