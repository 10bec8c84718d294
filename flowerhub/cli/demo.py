"""`flowerhub demo`: a whole fleet activation end to end on real components, then its audit."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from contract.kafka.settings import KafkaSettings
from flowerhub.cli import CliError
from flowerhub.cli.kafka import add_connection, connection

MIB = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run a fleet activation end to end (Kafka, MQTT, simulators, bridges, streams) "
        "and audit it",
        description="Start a local Kafka broker (or use an existing cluster: --bootstrap or "
        "FLOWERHUB_BOOTSTRAP_SERVERS / KAFKA_BOOTSTRAP_SERVERS), simulated homes, their "
        "edge bridges (over a local Mosquitto and the gateway unless --transport kafka), "
        "the streams workers (two by default: one that dies is restarted) and the archiver; "
        "play a scenario; stop everything; audit the event log and compare the verdicts "
        "with the scenario's expectations. Exit status: 0 every expectation met, 1 not, 4 a "
        "streams worker died and could not be restarted, 5 the archiver, 6 an edge bridge, "
        "7 the UI, 8 the gateway (reported at once on the progress line).",
    )
    parser.add_argument("--sites", type=int, help="fleet size (default: the scenario's, 60)")
    parser.add_argument(
        "--scenario",
        default=None,
        help="built-in scenario name or a scenario YAML file (default: fcrd_up_ramp)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        help="start the local broker with TLS listeners and run every client over SASL_SSL",
    )
    parser.add_argument(
        "--transport",
        choices=("mqtt", "kafka"),
        default="mqtt",
        help="how the homes' bridges reach the cloud: mqtt (default: a local Mosquitto with "
        "one certificate per home and the MQTT<->Kafka gateway) or kafka (directly)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="streams workers of the one app (default 2: they share the sites' partitions, "
        "one leads the fleet-level work; one that dies is restarted)",
    )
    add_connection(parser)
    parser.add_argument("--out", type=Path, default=Path("demo-out"), help="run directory root")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="time factor (2 = twice as fast); the audit judges real time, so keep 1 to audit",
    )
    parser.add_argument(
        "--telemetry-interval",
        type=float,
        default=1.0,
        help="bridge poll/telemetry interval in s; also the audit's grid (default 1)",
    )
    parser.add_argument("--seed", type=int, help="fleet composition seed (default: the scenario's)")
    parser.add_argument("--list", action="store_true", help="list the built-in scenarios and exit")
    parser.add_argument("--no-ui", action="store_true", help="do not start the operations view")
    parser.add_argument(
        "--ui-port",
        type=int,
        default=8765,
        help="the operations view's port on 127.0.0.1 (8765; any free port when taken; 0: any)",
    )
    parser.add_argument(
        "--ui-keep",
        action="store_true",
        help="after the run, keep the operations view up on the run's archive until Ctrl-C",
    )
    parser.set_defaults(func=cmd_demo)


def _existing_cluster(args: argparse.Namespace) -> KafkaSettings | None:
    """The cluster the flags or the environment name, or None: the demo starts its own."""
    from contract.kafka.cliargs import options_from_args
    from contract.kafka.settings import BOOTSTRAP_ENV

    given = options_from_args(args).given()
    if "bootstrap_servers" not in given and not any(
        os.environ.get(name, "").strip() for name in BOOTSTRAP_ENV
    ):
        if given:
            raise CliError(
                f"connection flags ({', '.join(sorted(given))}) without a cluster: "
                "pass --bootstrap (or set FLOWERHUB_BOOTSTRAP_SERVERS) too"
            )
        return None
    if args.tls:
        raise CliError("--tls starts a local broker with TLS; an existing cluster is used as is")
    return connection(args)


def _check(args: argparse.Namespace) -> None:
    if args.sites is not None and args.sites < 1:
        raise CliError(f"--sites must be >= 1, got {args.sites}")
    if not 0.01 <= args.telemetry_interval <= 10:
        raise CliError("--telemetry-interval must be between 0.01 and 10 s")
    if not 0 <= args.ui_port <= 65_535:
        raise CliError(f"--ui-port must be 0..65535, got {args.ui_port}")
    if args.no_ui and args.ui_keep:
        raise CliError("--ui-keep needs the UI (drop --no-ui)")


def cmd_demo(args: argparse.Namespace) -> int:
    from flowerhub.demo.orchestrate import DemoError, DemoOptions, run_demo
    from flowerhub.demo.processes import ChildError
    from flowerhub.demo.results import (
        all_ok,
        check_table,
        compare,
        offender_table,
        rows_table,
        verdict_table,
    )
    from flowerhub.demo.scenario import (
        DEFAULT_SCENARIO,
        ScenarioError,
        builtin_names,
        load_scenario,
    )

    if args.list:
        for name in builtin_names():
            print(f"{name}: {load_scenario(name).description.strip().splitlines()[0]}")
        return 0
    _check(args)
    try:
        scenario = load_scenario(args.scenario or DEFAULT_SCENARIO)
        options = DemoOptions(
            scenario=scenario,
            out=args.out,
            sites=args.sites,
            kafka=_existing_cluster(args),
            tls=args.tls,
            speed=args.speed,
            telemetry_interval_s=args.telemetry_interval,
            seed=args.seed,
            ui=not args.no_ui,
            ui_port=args.ui_port,
            transport=args.transport,
            workers=args.workers,
        )
        result = run_demo(options, progress=sys.stderr)
    except (ScenarioError, DemoError, ChildError) as exc:
        raise CliError(str(exc)) from exc
    outcome = result.audit
    print()
    print(f"scenario {scenario.name}: {len(result.sites)} sites, run {result.run_dir}")
    if outcome is None or (outcome.error and not outcome.rows):
        print(f"audit: {outcome.error if outcome else 'not run'}")
        code = 1
    else:
        print(verdict_table(outcome))
        print()
        print(offender_table(outcome))
        if result.self_consumption is not None:
            print()
            print(result.self_consumption.describe())
        checks = compare(scenario.expected, outcome, result.sites, result.self_consumption)
        print()
        print(check_table(checks))
        code = 0 if all_ok(checks) else 1
    for rig in result.rig:
        print()
        print(
            f"test rig log {rig.phase}: applied frequency and the simulators' power at 10 Hz "
            "(for comparison; the expectations are checked on the event-log audit above)"
        )
        print(rows_table(rig.rows()) if rig.verdicts else f"not judged: {rig.error}")
    if outcome is not None and outcome.rows:
        print()
        print(f"report: {result.report}")
    for note in result.notes:
        print(f"note: {note}")
    code = _children_code(result, code)
    print(
        f"wall time {result.wall_s:.1f} s, peak memory {result.peak_rss_bytes / MIB:.0f} MiB "
        "(demo + children + broker, summed)"
    )
    if result.ui_url is not None and not args.ui_keep:
        print(f"the UI ran at {result.ui_url} (--ui-keep keeps it up on the run's archive)")
    if args.ui_keep:
        code = _keep_ui(result.run_dir, args.ui_port) or code
    return code


def _children_code(result: Any, code: int) -> int:
    """1 when a child was left running; the code of the first child that died during the
    scenario (flowerhub.demo.watch.EXIT_CODES) wins over both."""
    from flowerhub.demo.watch import exit_code_for

    if result.leftover_pids:
        print(f"left running: pids {result.leftover_pids}")
        code = 1
    for restart in result.restarts:
        print(restart.describe())
    for death in result.died:
        print(death.describe())
    return exit_code_for(result.died[0].name) if result.died else code


def _keep_ui(run_dir: Path, port: int) -> int:
    from flowerhub.demo.processes import ChildError
    from flowerhub.demo.uichild import keep_archive_ui

    def say(message: str) -> None:
        print(message, flush=True)

    try:
        keep_archive_ui(run_dir, port, say)
    except ChildError as exc:
        print(f"the UI on the archive did not start: {exc}", file=sys.stderr)
        return 1
    return 0
