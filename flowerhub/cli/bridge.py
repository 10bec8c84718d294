"""`flowerhub bridge run --config FILE`: run the edge bridge for the sites in a config file;
with ``--metrics-port`` (or ``FLOWERHUB_METRICS_PORT``) it serves Prometheus ``/metrics``
(``edge.bridge.metrics``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from contract.metrics import MetricsConfigError, add_metrics_arguments, settings_from_args
from flowerhub.cli.kafka import add_connection, connection
from flowerhub.gcpolicy import quiet_gc


def register(subparsers: Any) -> None:
    """Add the ``bridge`` verb group (argparse subparsers of the flowerhub root)."""
    parser = subparsers.add_parser(
        "bridge", help="edge bridge: site.commands -> Modbus, events out"
    )
    sub = parser.add_subparsers(dest="bridge_command", metavar="COMMAND")
    sub.required = True
    register_run(sub)


def register_run(subparsers: Any) -> None:
    """Add ``run`` to any subparsers group (also usable under ``flowerhub edge``)."""
    run = subparsers.add_parser("run", help="serve the sites of a bridge config until stopped")
    run.add_argument(
        "--config", required=True, help="bridge config YAML (sites, outbox, state, kafka)"
    )
    add_connection(run)
    run.add_argument("--topic-prefix", default="", help="namespace for every topic name")
    run.add_argument("--log-level", default="INFO")
    add_metrics_arguments(run, "bridge")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from contract.metrics import MetricsServer
    from edge.bridge.config import ConfigError, load_config
    from edge.bridge.runtime import Bridge
    from edge.bridge.sink import BridgeTopics
    from flowerhub.cli import CliError

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        config = load_config(args.config)
        metrics = settings_from_args(args)
    except (ConfigError, MetricsConfigError) as exc:
        raise CliError(str(exc)) from exc
    kafka = connection(args, base=config.kafka_options)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        bridge = Bridge(config, topics=BridgeTopics(prefix=args.topic_prefix), kafka=kafka)
        quiet_gc()
        link = (
            f"MQTT mqtts://{config.mqtt.host}:{config.mqtt.port}"
            if bridge.mqtt is not None and config.mqtt is not None
            else f"Kafka {kafka.describe()}"
        )
        print(
            f"bridge {config.bridge_id}: {len(config.sites)} site(s), {link}, "
            f"outbox {config.outbox.dir}",
            flush=True,
        )
        server = None
        if metrics.enabled:
            from edge.bridge.metrics import BridgeMetrics

            server = MetricsServer(BridgeMetrics(bridge).registry, metrics, "bridge")
            try:
                url = await server.start()
            except MetricsConfigError:
                await bridge.close()
                raise
            print(f"bridge {config.bridge_id}: metrics at {url}", flush=True)
        try:
            await bridge.run(stop)
        finally:
            if server is not None:
                await server.stop()

    try:
        asyncio.run(main())
    except (ConfigError, MetricsConfigError) as exc:  # e.g. a missing MQTT certificate
        raise CliError(str(exc)) from exc
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m flowerhub.cli.bridge run --config FILE`` (same as ``flowerhub bridge run``)."""
    parser = argparse.ArgumentParser(prog="python -m flowerhub.cli.bridge")
    sub = parser.add_subparsers(dest="bridge_command", metavar="COMMAND")
    sub.required = True
    register_run(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
