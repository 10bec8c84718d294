"""Generated event logs: site telemetry as Kafka records, for tests and benchmarks.

Deterministic for a given seed (event ids included), encoded with the project codec, spread
over partitions by site like a keyed producer would, with Kafka timestamps a little after
the event time and an explicit ``ingest_time`` on a share of the events (late arrivals), so
the three clocks of the archive views differ in known ways.
"""

from __future__ import annotations

import math
import random
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from analytics.archive.rows import RawRecord

TELEMETRY_TOPIC = "site.telemetry"
TELEMETRY_EVENT = "SiteTelemetry"


@dataclass(frozen=True)
class SyntheticLog:
    """Shape of a generated telemetry log."""

    sites: int = 10
    partitions: int = 3
    start_ms: int = 1_790_000_000_000  # 2026-09-21T14:13:20Z
    period_ms: int = 1000
    samples: int = 60  # per site
    kafka_delay_ms: int = 150  # Kafka timestamp = event time + this
    late_every: int = 10  # every n-th sample of a site carries ingest_time = event + late_ms
    late_ms: int = 30_000
    topic: str = TELEMETRY_TOPIC
    seed: int = 1
    headers_every: int = 0  # every n-th record carries a trace header (0: none)

    @property
    def count(self) -> int:
        return self.sites * self.samples


def site_id(index: int) -> str:
    return f"site-{index:05d}"


def partition_for(key: str, partitions: int) -> int:
    """Stable key -> partition mapping (CRC-32; any deterministic hash would do here)."""
    return zlib.crc32(key.encode()) % partitions


def telemetry_record(
    rng: random.Random, site: str, event_us: int, sample: int, ingest_us: int | None
) -> dict[str, object]:
    """One valid ``SiteTelemetry`` record (canonical units and signs)."""
    power = round(10.0 * math.sin(sample / 30.0) + rng.uniform(-0.5, 0.5), 3)
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_time": event_us,
        "ingest_time": ingest_us,
        "site_id": site,
        "oem": "huawei",
        "model": "SUN2000-10KTL-M1",
        "battery_power_kw": power,
        "soc_pct": round(50.0 + 20.0 * math.cos(sample / 50.0), 2),
        "grid_power_kw": round(power - 1.5, 3),
        "pv_power_kw": 2.0,
        "load_kw": 0.5,
        "frequency_hz": round(50.0 + 0.05 * math.sin(sample / 7.0), 4),
        "headroom_up_kw": max(0.0, 10.0 - power),
        "headroom_down_kw": max(0.0, 10.0 + power),
        "max_discharge_kw": 10.0,
        "max_charge_kw": 10.0,
        "capacity_kwh": 15.0,
        "mode": "REMOTE",
        "setpoint_kw": power,
        "active_command_id": None,
        "reserve_armed": "FCR_N",
        "faulted": False,
    }


def synthetic_records(shape: SyntheticLog) -> Iterator[RawRecord]:
    """The log in production order (time-major); offsets count up per partition."""
    from contract.codec import default_codec

    codec = default_codec()
    rng = random.Random(shape.seed)
    next_offset = [0] * shape.partitions
    for sample in range(shape.samples):
        event_ms = shape.start_ms + sample * shape.period_ms
        for index in range(shape.sites):
            site = site_id(index)
            late = shape.late_every > 0 and sample % shape.late_every == shape.late_every - 1
            ingest_us = (event_ms + shape.late_ms) * 1000 if late else None
            record = telemetry_record(rng, site, event_ms * 1000, sample, ingest_us)
            partition = partition_for(site, shape.partitions)
            offset = next_offset[partition]
            next_offset[partition] += 1
            kafka_ms = event_ms + (shape.late_ms if late else 0) + shape.kafka_delay_ms
            number = sample * shape.sites + index
            traced = shape.headers_every > 0 and number % shape.headers_every == 0
            headers = (("trace-id", f"{shape.seed}-{number}".encode()),) if traced else ()
            yield RawRecord(
                topic=shape.topic,
                partition=partition,
                offset=offset,
                timestamp_ms=kafka_ms,
                key=site.encode(),
                value=codec.encode(TELEMETRY_EVENT, record),
                headers=headers,
            )
