"""Lightweight simulated homes for the uplink bench: N MQTT clients (each its own certificate,
CN = site id) in one process, each publishing a SiteTelemetry at ``rate_hz`` for ``duration_s``
at QoS 1 on its own topic. Prints the number of messages the broker acknowledged.

    python -m bench.mqtt_homes --first 0 --count 1000 --host localhost --port P \
        --ca CA --certs DIR --rate 1 --duration 30
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from pathlib import Path

from contract.codec import default_codec
from contract.mqtt.client import MqttClient
from contract.mqtt.layout import Channel, site_topic
from contract.mqtt.settings import MqttSettings
from contract.testing.strategies import site_telemetry_example

CONNECTS_AT_ONCE = 32


def home_id(index: int) -> str:
    return f"h{index:05d}"


async def main(args: argparse.Namespace) -> None:
    codec = default_codec()
    ids = [home_id(i) for i in range(args.first, args.first + args.count)]
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def connect(site_id: str) -> MqttClient:
        settings = MqttSettings(
            host=args.host,
            port=args.port,
            ca_file=args.ca,
            cert_file=args.certs / f"{site_id}.pem",
            key_file=args.certs / f"{site_id}-key.pem",
            keepalive_s=60,
            connect_timeout_s=60,
        )
        async with gate:
            client = MqttClient(settings, client_id=site_id, clean_start=True, session_expiry_s=0)
            await client.connect()
            return client

    clients = await asyncio.gather(*(connect(s) for s in ids))
    print(f"connected {len(clients)}", flush=True)
    start_at = time.time() + args.start_in
    acked = 0
    failed = 0

    async def home(site_id: str, client: MqttClient) -> None:
        nonlocal acked, failed
        topic = site_topic(site_id, Channel.TELEMETRY)
        period = 1.0 / args.rate
        await asyncio.sleep(max(0.0, start_at - time.time()) + random.uniform(0, period))
        pending = []
        for n in range(int(args.duration * args.rate)):
            rec = site_telemetry_example(
                site_id=site_id, event_id=str(uuid.uuid4()), event_time=time.time_ns() // 1000
            )
            pending.append(client.publish(topic, codec.encode("SiteTelemetry", rec)))
            await asyncio.sleep(max(0.0, start_at + (n + 1) * period - time.time()))
        for fut in pending:
            try:
                await fut
                acked += 1
            except Exception:
                failed += 1

    await asyncio.gather(*(home(s, c) for s, c in zip(ids, clients, strict=True)))
    for c in clients:
        await c.disconnect()
    print(f"acked {acked} failed {failed}", flush=True)


def cli() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.mqtt_homes")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--host", default="localhost")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--ca", type=Path, required=True)
    p.add_argument("--certs", type=Path, required=True)
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--start-in", type=float, default=5.0)
    asyncio.run(main(p.parse_args()))


if __name__ == "__main__":
    cli()
