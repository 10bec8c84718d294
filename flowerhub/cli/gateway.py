"""`flowerhub gateway run`: the MQTT <-> Kafka gateway (see flowerhub.gateway.service); with
``--metrics-port`` (or ``FLOWERHUB_METRICS_PORT``) it serves Prometheus ``/metrics``
(``flowerhub.gateway.metrics``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from typing import Any

from contract.metrics import MetricsConfigError, add_metrics_arguments, settings_from_args
from flowerhub.cli.kafka import add_connection, connection
from flowerhub.cli.mqtt import add_mqtt_arguments, mqtt_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "gateway", help="MQTT <-> Kafka gateway: commands down to homes, their events up"
    )
    sub = parser.add_subparsers(dest="gateway_command", metavar="COMMAND")
    sub.required = True
    run = sub.add_parser(
        "run",
        help="run one gateway instance until stopped (several may run at once)",
        description="site.commands -> fh/v1/site/<site>/commands (QoS 1, offset committed "
        "after PUBACK); fh/v1/site/+/{telemetry,faults,results,status} -> Kafka (acks=all "
        "before the MQTT ack); bad messages -> deadletter.",
    )
    run.add_argument(
        "--name",
        default="1",
        help="instance name: its certificate is gateway@NAME (`mqtt certs --gateway NAME`); "
        "restart a killed instance with the same name to get its unacknowledged messages",
    )
    run.add_argument("--topic-prefix", default="", help="namespace for every Kafka topic")
    run.add_argument("--group-id", default="flowerhub-gateway", help="Kafka consumer group")
    add_mqtt_arguments(run)
    add_connection(run)
    run.add_argument("--log-level", default="INFO")
    add_metrics_arguments(run, "gateway")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from contract.metrics import MetricsServer
    from contract.mqtt.layout import LayoutError, gateway_identity
    from flowerhub.cli import CliError
    from flowerhub.gateway.metrics import gateway_registry
    from flowerhub.gateway.service import Gateway

    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        identity = gateway_identity(args.name)
    except LayoutError as exc:
        raise CliError(str(exc)) from exc
    mqtt = mqtt_settings(args, identity=identity)
    if mqtt.cert_file is None:
        raise CliError(
            f"no certificate for {identity}: `flowerhub mqtt certs --gateway {args.name}` "
            "or --mqtt-cert/--mqtt-key"
        )
    kafka = connection(args)
    try:
        metrics = settings_from_args(args)
    except MetricsConfigError as exc:
        raise CliError(str(exc)) from exc

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        gateway = Gateway(args.name, mqtt, kafka, prefix=args.topic_prefix, group_id=args.group_id)
        print(
            f"gateway {identity}: MQTT {mqtt.describe()} <-> Kafka {kafka.describe()}, "
            f"prefix {args.topic_prefix!r}",
            flush=True,
        )
        server = None
        if metrics.enabled:
            server = MetricsServer(gateway_registry(gateway), metrics, f"gateway {identity}")
            print(f"gateway {identity}: metrics at {await server.start()}", flush=True)
        try:
            await gateway.run(stop)
        finally:
            if server is not None:
                await server.stop()
        print(f"gateway {identity}: stopped; {gateway.stats}", flush=True)

    try:
        asyncio.run(main())
    except MetricsConfigError as exc:  # e.g. the metrics port is taken
        raise CliError(str(exc)) from exc
    return 0
