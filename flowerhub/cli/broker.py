"""`flowerhub broker start|status|stop`: the local Kafka (KRaft) from Apache Kafka's jars."""

from __future__ import annotations

import argparse
from pathlib import Path

from flowerhub.cli import CliError

MIB = 1024 * 1024


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "broker",
        help="start, inspect or stop the local Kafka broker (KRaft, no Docker needed)",
        description="A local Apache Kafka in KRaft mode from the jars `make kafka` fetched.",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.required = True

    start = verbs.add_parser("start", help="start 1 node or a 3-node cluster; wait until ready")
    start.add_argument("--nodes", type=int, choices=(1, 3), default=1)
    start.add_argument(
        "--data-dir", type=Path, help="default: .cache/kafka/run/single or .../cluster3"
    )
    start.add_argument("--heap", default="512m", help="JVM -Xmx per node (default 512m)")
    start.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for ready")
    start.add_argument(
        "--tls",
        action="store_true",
        help="also listen with TLS: SSL (client certificate required) and SASL_SSL (PLAIN), "
        "throwaway certificates in DATA_DIR/tls",
    )
    start.set_defaults(func=cmd_start)

    for name, func, text in (
        ("status", cmd_status, "show nodes, pids, bootstrap and memory"),
        ("stop", cmd_stop, "stop the nodes (SIGTERM, then SIGKILL) and check none is left"),
    ):
        verb = verbs.add_parser(name, help=text)
        verb.add_argument(
            "--data-dir", type=Path, help="default: every cluster under .cache/kafka/run"
        )
        verb.set_defaults(func=func)


def _data_dirs(given: Path | None) -> list[Path]:
    from flowerhub.broker.launcher import kafka_home
    from flowerhub.broker.state import STATE_FILE

    if given is not None:
        if not given.is_dir():
            raise CliError(f"--data-dir {given} is not a directory")
        return [given.resolve()]
    run = kafka_home() / "run"
    return sorted(p.parent for p in run.glob(f"*/{STATE_FILE}")) if run.is_dir() else []


def cmd_start(args: argparse.Namespace) -> int:
    from flowerhub.broker.config import BrokerConfigError
    from flowerhub.broker.launcher import BrokerError, cluster_status, start_cluster
    from flowerhub.broker.state import kafka_settings

    try:
        state = start_cluster(
            args.nodes, args.data_dir, heap=args.heap, timeout=args.timeout, tls=args.tls
        )
    except (BrokerError, BrokerConfigError) as exc:
        raise CliError(str(exc)) from exc
    status = cluster_status(Path(state.data_dir))
    rss = [n.rss_bytes // MIB for n in status.nodes] if status else []
    nodes = len(state.nodes)
    print(f"Kafka {state.kafka_version} (KRaft), {nodes} node(s), cluster {state.cluster_id}")
    print(f"bootstrap servers: {state.bootstrap}")
    print(f"started in {state.startup_seconds:.1f} s; java RSS per node: {rss} MiB")
    print(f"data dir: {state.data_dir}")
    if state.tls is None:
        print(f"export KAFKA_BOOTSTRAP_SERVERS={state.bootstrap}")
        return 0
    print(f"TLS listeners: SSL {state.tls.ssl_bootstrap}, SASL_SSL {state.tls.sasl_ssl_bootstrap}")
    print("every flowerhub verb uses SASL_SSL by itself; elsewhere:")
    for name, value in kafka_settings(state).environment().items():
        if name != "KAFKA_BOOTSTRAP_SERVERS":  # FLOWERHUB_BOOTSTRAP_SERVERS says it
            print(f"export {name}={value}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Exit 0 when every listed cluster runs fully, 1 when one is down or partly down."""
    from flowerhub.broker.launcher import cluster_status
    from flowerhub.broker.state import StateFileError

    dirs = _data_dirs(args.data_dir)
    if not dirs:
        print("no local Kafka was started (no state file); `flowerhub broker start`")
        return 1
    healthy = True
    for data_dir in dirs:
        try:
            status = cluster_status(data_dir)
        except StateFileError as exc:
            raise CliError(str(exc)) from exc
        if status is None:
            print(f"{data_dir}: no cluster state")
            healthy = False
            continue
        up = sum(n.alive for n in status.nodes)
        word = (
            "running" if status.running else ("stale state (all down)" if up == 0 else "degraded")
        )
        print(
            f"{data_dir}: {word}, {up}/{len(status.nodes)} nodes, "
            f"Kafka {status.state.kafka_version}, bootstrap {status.state.bootstrap}, "
            f"RSS {status.rss_bytes // MIB} MiB"
        )
        for n in status.nodes:
            alive = "up" if n.alive else "DOWN"
            rss = n.rss_bytes // MIB
            print(f"  node {n.node_id}: {alive:4} pid {n.pid:<7} {n.bootstrap}  {rss} MiB")
        if status.state.tls is not None:
            tls = status.state.tls
            print(f"  TLS: SSL {tls.ssl_bootstrap}, SASL_SSL {tls.sasl_ssl_bootstrap}")
        healthy = healthy and status.running
    return 0 if healthy else 1


def cmd_stop(args: argparse.Namespace) -> int:
    from flowerhub.broker.launcher import BrokerError, stop_cluster
    from flowerhub.broker.state import StateFileError

    dirs = _data_dirs(args.data_dir)
    if not dirs:
        print("nothing to stop")
        return 0
    for data_dir in dirs:
        try:
            pids = stop_cluster(data_dir)
        except (BrokerError, StateFileError) as exc:
            raise CliError(str(exc)) from exc
        print(f"{data_dir}: stopped {len(pids)} process(es) {pids}; none left")
    return 0
