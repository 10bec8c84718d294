"""The uplink bench's limit: the least an MQTT -> Kafka forwarder can do. One paho-mqtt
client (the same asyncio driver) on the same shared subscription, every message produced to
Kafka as is (acks=all, keyed by the topic's site level) with no decoding, no checks and the
library's automatic PUBACK. Runs until SIGTERM.

    python -m bench.raw_mqtt_kafka --host H --port P --ca CA --cert C --key K \
        --bootstrap B --topic T
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from contract.kafka import clients
from contract.kafka.settings import settings_for
from contract.mqtt.client import MqttClient
from contract.mqtt.layout import Channel, shared_filter
from contract.mqtt.settings import MqttSettings


async def main(args: argparse.Namespace) -> None:
    kafka = settings_for(args.bootstrap)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    producer = clients.producer(kafka, linger_ms=2)
    await clients.start(producer, kafka)
    settings = MqttSettings(
        host=args.host, port=args.port, ca_file=args.ca, cert_file=args.cert, key_file=args.key
    )
    client = MqttClient(settings, client_id=args.client_id, clean_start=True, session_expiry_s=0)
    await client.connect()
    await client.subscribe([shared_filter(Channel.TELEMETRY, args.group)])
    print("raw forwarder ready", flush=True)

    async def forward() -> None:
        while True:
            msg = await client.messages.get()
            await producer.send(args.topic, value=msg.payload, key=msg.topic.split("/")[3].encode())

    task = asyncio.create_task(forward())
    await stop.wait()
    task.cancel()
    await producer.flush()
    await client.disconnect()
    await clients.stop(producer)


def cli() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.raw_mqtt_kafka")
    for name in ("host", "bootstrap", "topic", "client-id"):
        p.add_argument(f"--{name}", required=name != "host", default="localhost")
    p.add_argument("--group", default="raw", help="its own shared-subscription group")
    p.add_argument("--port", type=int, required=True)
    for name in ("ca", "cert", "key"):
        p.add_argument(f"--{name}", type=Path, required=True)
    asyncio.run(main(p.parse_args()))


if __name__ == "__main__":
    cli()
