"""Run the MQTT boundary for tests and benchmarks: a gateway child process (killable with
-9), MQTT clients with a site's certificate, a cuttable TCP link (a home's internet), raw
Kafka reads. Real processes and brokers only, like :mod:`edge.testing.harness`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contract.kafka import clients
from contract.kafka.settings import KafkaSettings
from contract.mqtt.client import MqttClient
from contract.mqtt.settings import MqttSettings
from flowerhub.mqtt.launcher import MosquittoState
from flowerhub.mqtt.pki import issue_client


def site_settings(mq: MosquittoState, identity: str, **over: Any) -> MqttSettings:
    files = issue_client(mq.pki, identity)
    return MqttSettings(
        host="localhost",
        port=mq.port,
        ca_file=mq.pki.ca_file,
        cert_file=files.cert,
        key_file=files.key,
        connect_timeout_s=5.0,
        **over,
    )


async def connected(mq: MosquittoState, identity: str, **kwargs: Any) -> MqttClient:
    client = MqttClient(site_settings(mq, identity), client_id=identity, **kwargs)
    await client.connect()
    return client


class GatewayProcess:
    """``flowerhub gateway run`` as a child process (it can be killed with -9); ``metrics``:
    with ``--metrics-port 0``, its URL in :attr:`metrics_url` once started."""

    def __init__(
        self,
        mq: MosquittoState,
        kafka: KafkaSettings,
        prefix: str,
        log: Path,
        name: str = "t1",
        *,
        metrics: bool = False,
    ) -> None:
        self.mq, self.kafka, self.prefix, self.log, self.name = mq, kafka, prefix, log, name
        self.metrics = metrics
        self.metrics_url: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        files = issue_client(self.mq.pki, f"gateway@{self.name}")
        args = [
            *(sys.executable, "-m", "flowerhub.cli", "gateway", "run", "--name", self.name),
            *("--mqtt", self.mq.address, "--mqtt-ca", str(self.mq.pki.ca_file)),
            *("--mqtt-cert", str(files.cert), "--mqtt-key", str(files.key)),
            *self.kafka.arguments(),
            *("--topic-prefix", self.prefix, "--group-id", f"gw-{self.prefix}"),
            *(("--metrics-port", "0") if self.metrics else ()),
        ]
        start_at = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while b"connected to" not in self.log.read_bytes()[start_at:]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()  # never left running behind a failed start
                raise AssertionError(f"gateway did not connect:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        if self.metrics:  # printed before the session starts
            text = self.log.read_bytes()[start_at:].decode(errors="replace")
            found = re.search(r"metrics at (http://\S+)", text)
            if found is None:
                self.stop()
                raise AssertionError(f"gateway printed no metrics URL:\n{text[-3000:]}")
            self.metrics_url = found.group(1)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        if self.proc is None:
            raise RuntimeError("the gateway was never started")
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


async def read_raw(
    kafka: KafkaSettings,
    topic: str,
    done: Callable[[list[Any]], bool],
    timeout_s: float = 30.0,
) -> list[Any]:
    """Consumer records of ``topic`` from the start until ``done(records)`` or the timeout."""
    out: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with clients.running(clients.consumer(kafka, topic), kafka) as consumer:
        while not done(out) and loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for records in batches.values():
                out += records
    return out


class CuttableLink:
    """A TCP relay to ``127.0.0.1:target``: ``cut()`` drops every connection and refuses new
    ones (a home's internet gone), ``restore()`` listens again on the same port."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self._server: asyncio.base_events.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers += [writer, up_w]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in self._writers:
            w.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()
