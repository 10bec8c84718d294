"""``flowerhub archive`` and ``flowerhub replay [diff]``: parse arguments, call the library.

flowerhub archive --out DIR [--topics T ...] [--prefix P] [--group G]
flowerhub replay (--log DIR | --kafka) --prefix P [--from T] [--to T] [--speed X | --max]
flowerhub replay diff --left SPEC --right SPEC [--ignore FIELD ...] [--json FILE]

Each takes the Kafka connection flags of every verb (``--bootstrap``, ``--security-protocol``,
``--ssl-cafile``, ...; ``flowerhub.cli.kafka``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path

from flowerhub.cli import CliError
from flowerhub.cli.kafka import add_connection, connection


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_archive(subparsers)
    _register_replay(subparsers)


def _register_archive(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "archive",
        help="archive every topic into Parquet files by topic and hour (resumable)",
        description="Consume the topics into append-only Parquet part files partitioned by "
        "topic and hour; a restart resumes exactly after the last archived offset.",
    )
    parser.add_argument("--out", required=True, type=Path, help="archive directory")
    parser.add_argument(
        "--topics", nargs="+", help="topic names (default: every topic of the topic table)"
    )
    parser.add_argument("--prefix", default="", help="topic-table prefix, e.g. a replay copy")
    parser.add_argument("--group", default="flowerhub-archiver", help="consumer group (lag only)")
    parser.add_argument("--flush-records", type=int, default=50_000, help="flush after N rows")
    parser.add_argument("--flush-interval", type=float, default=5.0, help="flush every S seconds")
    parser.add_argument("--poll-records", type=int, default=10_000, help="max records per poll")
    parser.add_argument(
        "--compact",
        action="store_true",
        help="do not consume: merge the small files of each topic, hour and partition, then exit",
    )
    add_connection(parser)
    parser.set_defaults(func=cmd_archive)


def _register_replay(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        help="republish a slice of the log into a namespaced copy of the topics",
        description="Republish records (original key, value, headers, partition and "
        "timestamp) into PREFIX + topic, keeping per-key order and, at --speed, relative timing.",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--log", type=Path, help="archive directory to replay from")
    source.add_argument("--kafka", action="store_true", help="replay from the Kafka topics")
    parser.add_argument("--prefix", help="namespace of the copy, e.g. 'replay-1.'")
    parser.add_argument("--from", dest="start", help="first Kafka timestamp (ISO 8601 or ms)")
    parser.add_argument("--to", dest="end", help="last Kafka timestamp (ISO 8601 or ms)")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, help="time factor (1 = original pace)")
    pace.add_argument("--max", action="store_true", help="as fast as possible (default)")
    parser.add_argument("--topics", nargs="+", help="source topics (default: all)")
    parser.add_argument(
        "--source-prefix", default="", help="prefix of the source topics (with --kafka)"
    )
    parser.add_argument(
        "--timestamps",
        choices=("original", "now"),
        default="original",
        help="Kafka timestamp of the copies: the original one (default) or the send time",
    )
    add_connection(parser)
    parser.set_defaults(func=cmd_replay)
    verbs = parser.add_subparsers(dest="replay_verb", metavar="VERB")
    diff = verbs.add_parser(
        "diff",
        help="compare two runs per topic and key (added / missing / changed)",
        description="SPEC: kafka:PREFIX, archive:DIR[:PREFIX], a directory, or a prefix.",
    )
    diff.add_argument("--left", required=True, help="the original run")
    diff.add_argument("--right", required=True, help="the run on the copy")
    diff.add_argument("--topics", nargs="+", help="topics to compare (default: all)")
    diff.add_argument(
        "--ignore",
        nargs="+",
        default=[],
        help="extra fields to ignore: FIELD or TOPIC:FIELD (event_id, event_time and "
        "ingest_time are always ignored)",
    )
    diff.add_argument("--examples", type=int, default=3, help="examples per kind and topic")
    diff.add_argument("--json", type=Path, help="also write the report as JSON")
    add_connection(diff)
    diff.set_defaults(func=cmd_replay_diff)


def _table_topics(prefix: str) -> tuple[str, ...]:
    from contract.topics import TOPICS

    return tuple(t.full_name(prefix) for t in TOPICS)


def cmd_archive(args: argparse.Namespace) -> int:
    from analytics.archive.archiver import Archiver, ArchiverConfig, ArchiverError, ArchiverStats
    from analytics.archive.layout import ArchiveLayoutError

    if args.compact:
        return _compact(args.out)
    topics = tuple(args.topics) if args.topics else _table_topics(args.prefix)
    try:
        config = ArchiverConfig(
            out=args.out,
            kafka=connection(args),
            topics=topics,
            group_id=args.group,
            flush_records=args.flush_records,
            flush_interval_s=args.flush_interval,
            poll_records=args.poll_records,
        )
    except (ArchiverError, ArchiveLayoutError) as exc:
        raise CliError(str(exc)) from exc

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(stats: ArchiverStats) -> None:
            resumed = sum(1 for offset in stats.resumed_from.values() if offset > 0)
            print(
                f"archiving {len(stats.resumed_from)} partitions of {len(config.topics)} topics "
                f"from {config.kafka.describe()} to {config.out} "
                f"({resumed} resumed from the archive)",
                flush=True,
            )

        stats = await Archiver(config).run(stop, on_ready=ready)
        print(
            f"archived {stats.archived} records ({stats.undecodable} undecodable) "
            f"in {stats.files} files to {config.out}"
        )
        return 0

    try:
        return asyncio.run(main())
    except ArchiverError as exc:
        raise CliError(str(exc)) from exc


def _compact(out: Path) -> int:
    from analytics.archive.archiver import ArchiverError, archive_lock
    from analytics.archive.compact import compact

    if not out.is_dir():
        raise CliError(f"archive directory not found: {out}")
    try:
        with archive_lock(out):
            report = compact(out)
    except ArchiverError as exc:
        raise CliError(str(exc)) from exc
    print(
        f"compacted {report.merged_groups} topic/hour/partition groups: "
        f"{report.files_before} -> {report.files_after} files"
        + (f" ({report.removed_covered} leftovers removed)" if report.removed_covered else "")
    )
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from analytics.replay.plan import ReplayPlanError
    from analytics.replay.replay import ReplayError
    from analytics.replay.run import ReplayRequest, replay

    if args.log is None and not args.kafka:
        raise CliError("replay needs a source: --log DIR or --kafka")
    if not args.prefix:
        raise CliError("replay needs --prefix (the copy is never the original topics)")
    try:
        request = ReplayRequest.from_cli(
            log=args.log,
            kafka=connection(args),
            prefix=args.prefix,
            start=args.start,
            end=args.end,
            speed=None if args.max else args.speed,
            topics=args.topics,
            source_prefix=args.source_prefix,
            keep_timestamps=args.timestamps == "original",
        )
        stats = asyncio.run(replay(request))
    except (ReplayPlanError, ReplayError, OSError) as exc:  # OSError: Kafka unreachable
        raise CliError(str(exc)) from exc
    factor = stats.realtime_factor
    print(
        f"replayed {stats.records} records ({stats.span_s:.1f} s of log) into "
        f"{args.prefix}* in {stats.wall_s:.2f} s"
        + (f" ({factor:.1f}x real time)" if factor else "")
        + (f", worst lateness {stats.late_s * 1000:.0f} ms" if request.speed else "")
        + (
            f"; {stats.duplicates} repeated event(s) left out (same event id)"
            if stats.duplicates
            else ""
        )
    )
    for topic, count in sorted(stats.per_topic.items()):
        print(f"  {topic}: {count}")
    return 0


def cmd_replay_diff(args: argparse.Namespace) -> int:
    from analytics.replay.diff import DEFAULT_IGNORED, DiffOptions, DiffOptionsError, diff_events
    from analytics.replay.diff_sources import parse_side, read_archive_side, read_kafka_side
    from analytics.replay.plan import ReplayPlanError

    try:
        options = DiffOptions(DEFAULT_IGNORED | frozenset(args.ignore), args.examples)
        sides = [parse_side(args.left), parse_side(args.right)]
        events = []
        for side in sides:
            if side.archive is not None:
                events.append(read_archive_side(side, args.topics))
            else:
                topics = args.topics or list(_table_topics(""))
                events.append(asyncio.run(read_kafka_side(side, connection(args), topics)))
    except (DiffOptionsError, ReplayPlanError, OSError) as exc:  # OSError: Kafka unreachable
        raise CliError(str(exc)) from exc
    report = diff_events(events[0], events[1], options)
    print(f"left: {sides[0].describe()}, right: {sides[1].describe()}")
    print(report.to_text())
    if args.json:
        args.json.write_text(json.dumps(report.as_json(), indent=2, default=str), encoding="utf-8")
    return 0 if report.identical else 1
