"""Simulated event logs of activations, written as real archives (codec + archive writer).

For the audit's tests and demo: every event is encoded with the project codec, decoded back
into an archive row exactly as the archiver does, and written by
:class:`~analytics.archive.writer.ArchiveWriter`. Telemetry is 1 Hz per site (a few ms of
per-site offset), power in kW with 3 decimals, frequency with 4, like the edge reports it.

* :func:`fcrd_ramp_log`: SET_POWER steps (dispatch-chain dynamics per OEM), then an FCR-D
  up ramp test (TR25 Table 4) of ``sites`` sites over three OEMs; each site responds with a
  first-order-plus-dead-time droop of its OEM at ``gain`` (1.25: the 18 good sites cover the
  two offenders, so the fleet delivers 106 % and every rule passes, the legacy 100 % too);
  one site responds with the wrong sign and one site's commands are OVERRIDDEN (it stays
  at 0 kW).
* :func:`mfrr_order_log`: one mFRR order whose fleet response is fully activated after
  ``full_after_s`` (between the 12.5 min of 2025 and the legacy 15 min by default).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from analytics.archive.archiver import codec_decoder
from analytics.archive.rows import RawRecord, decode_row
from analytics.archive.writer import ArchiveWriter
from analytics.testing.sequences import droop_target, fcrd_ramp_frequency, fopdt_response
from analytics.testing.synthetic import partition_for, site_id, telemetry_record
from analytics.timeseries import FloatArray
from contract.enums import Product

START_MS = 1_790_000_000_000  # 2026-09-21T14:13:20Z (whole second)
PARTITIONS = 3
# OEM -> (model, dead time s, time constant s) of the dispatch chain.
OEMS: dict[str, tuple[str, float, float]] = {
    "huawei": ("SUN2000-10KTL-M1", 1.0, 1.0),
    "sungrow": ("SH10RT", 1.5, 1.5),
    "saj": ("H2-10K-T2", 2.0, 2.0),
}
TOPIC_OF = {
    "SiteTelemetry": "site.telemetry",
    "MarketActivation": "market.activations",
    "ReserveAssignment": "reserve.assignments",
    "SiteCommand": "site.commands",
    "CommandResult": "site.command-results",
}


@dataclass
class LogBuilder:
    """Collects events, then writes them as one archive (partition by key, offsets in order)."""

    seed: int = 7
    prefix: str = ""  # topic namespace (a replay copy's prefix)
    events: list[tuple[int, str, str, dict[str, object]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def add(self, event: str, key: str, record: dict[str, object]) -> None:
        event_us = record["event_time"]
        assert isinstance(event_us, int)  # noqa: S101  # builder invariant
        self.events.append((event_us, event, key, record))

    def write(self, root: Path) -> Path:
        from contract.codec import default_codec

        codec = default_codec()
        decoder, errors = codec_decoder()
        offsets: dict[tuple[str, int], int] = {}
        writer = ArchiveWriter(root)
        rows = []
        for event_us, event, key, record in sorted(self.events, key=lambda e: e[0]):
            topic = self.prefix + TOPIC_OF[event]
            partition = partition_for(key, PARTITIONS)
            offset = offsets.get((topic, partition), 0)
            offsets[(topic, partition)] = offset + 1
            raw = RawRecord(
                topic,
                partition,
                offset,
                event_us // 1000 + 20,
                key.encode(),
                codec.encode(event, record),
            )
            rows.append(decode_row(raw, decoder, errors))
        writer.append(rows)
        writer.flush()
        writer.close()
        return root


def telemetry(
    b: LogBuilder, site: str, oem: str, *, event_us: int, power_kw: float, freq_hz: float
) -> None:
    record = telemetry_record(b.rng, site, event_us, 0, None)
    model = OEMS[oem][0]
    record.update(
        oem=oem,
        model=model,
        battery_power_kw=round(power_kw, 3),
        frequency_hz=round(freq_hz, 4),
        soc_pct=50.0,
        grid_power_kw=round(power_kw - 0.5, 3),
        headroom_up_kw=max(0.0, 10.0 - power_kw),
        headroom_down_kw=max(0.0, 10.0 + power_kw),
        setpoint_kw=None,
        reserve_armed="FCR_D_UP",
    )
    b.add("SiteTelemetry", site, record)


def activation(
    b: LogBuilder,
    *,
    activation_id: str,
    product: Product,
    kind: str,
    start_us: int,
    end_us: int,
    requested_mw: float,
    test_name: str | None = None,
) -> None:
    b.add(
        "MarketActivation",
        "fleet-1",
        {
            "event_id": b.new_id(),
            "event_time": start_us - 1_000_000,
            "ingest_time": None,
            "fleet_id": "fleet-1",
            "activation_id": activation_id,
            "product": product.value,
            "kind": kind,
            "requested_mw": requested_mw,
            "start_time": start_us,
            "end_time": end_us,
            "test_name": test_name,
            "baseline_mw": None,
        },
    )


def assignment(
    b: LogBuilder,
    product: Product,
    *,
    capacity_mw: float,
    valid_from_us: int,
    valid_until_us: int,
    band_hz: tuple[float, float],
) -> None:
    """A ReserveAssignment of ``capacity_mw`` with droop band (f_start, f_full)."""
    b.add(
        "ReserveAssignment",
        "fleet-1",
        {
            "event_id": b.new_id(),
            "event_time": valid_from_us - 60_000_000,
            "ingest_time": None,
            "fleet_id": "fleet-1",
            "assignment_id": b.new_id(),
            "product": product.value,
            "capacity_mw": capacity_mw,
            "valid_from": valid_from_us,
            "valid_until": valid_until_us,
            "f_start_hz": band_hz[0],
            "f_full_hz": band_hz[1],
            "deadband_hz": 0.0,
        },
    )


def command(b: LogBuilder, site: str, event_us: int, power_kw: float) -> str:
    cid = b.new_id()
    b.add(
        "SiteCommand",
        site,
        {
            "event_id": b.new_id(),
            "event_time": event_us,
            "ingest_time": None,
            "site_id": site,
            "command_id": cid,
            "setpoint_id": None,
            "kind": "SET_POWER",
            "power_kw": power_kw,
            "reserve": None,
            "valid_until": event_us + 600_000_000,
            "issued_by": "scenario",
        },
    )
    return cid


def command_result(
    b: LogBuilder, site: str, *, event_us: int, command_id: str, status: str, cause: str | None
) -> None:
    b.add(
        "CommandResult",
        site,
        {
            "event_id": b.new_id(),
            "event_time": event_us,
            "ingest_time": None,
            "site_id": site,
            "command_id": command_id,
            "status": status,
            "requested_kw": 5.0,
            "written_kw": 5.0,
            "measured_kw": 0.0,
            "measured_soc_pct": 50.0,
            "likely_cause": cause,
            "reason": "inverter stayed in its own mode",
            "register_writes": 1,
            "latency_ms": 40.0,
        },
    )


@dataclass(frozen=True)
class Scenario:
    """What a simulated log holds, for tests to check the audit against."""

    root: Path
    activation_id: str
    product: Product
    start_us: int
    end_us: int
    requested_mw: float
    sites: Mapping[str, str]  # site -> oem
    wrong_polarity: str | None = None
    overridden: str | None = None
    fleet_t_s: FloatArray = field(default_factory=lambda: np.zeros(0))
    fleet_power_mw: FloatArray = field(default_factory=lambda: np.zeros(0))


def _oem(index: int) -> str:
    return list(OEMS)[index % len(OEMS)]


def fcrd_ramp_log(
    root: Path, *, sites: int = 20, per_site_kw: float = 5.0, gain: float = 1.25
) -> Scenario:
    """FCR-D up ramp test of ``sites`` sites (see module doc)."""
    b = LogBuilder()
    start_ms = START_MS
    steps_s, test_at_s = 120, 150
    test_len_s = 1050
    requested = sites * per_site_kw / 1000.0
    test_us = (start_ms + test_at_s * 1000) * 1000
    end_us = test_us + test_len_s * 1_000_000
    activation(
        b,
        activation_id="test-fcrd-up-1",
        product=Product.FCR_D_UP,
        kind="TEST",
        start_us=test_us,
        end_us=end_us,
        requested_mw=requested,
        test_name="fcrd_up_ramp",
    )
    t = np.arange(0, test_at_s + test_len_s + 1, dtype=np.float64)
    f = np.where(t < test_at_s, 50.0, fcrd_ramp_frequency(t - test_at_s, Product.FCR_D_UP))
    droop = droop_target(f, Product.FCR_D_UP, per_site_kw)
    # dispatch-chain steps: +3 kW at 20 s, back to 0 at 70 s
    setpoint = np.where((t >= 20) & (t < 70), 3.0, 0.0)
    wrong, overridden = site_id(3), site_id(7)
    fleet = np.zeros(t.shape)
    oems = {}
    for i in range(sites):
        site, oem = site_id(i), _oem(i)
        oems[site] = oem
        _, dead, tau = OEMS[oem]
        for at, kw in ((20, 3.0), (70, 0.0)):
            command(b, site, (start_ms + at * 1000) * 1000, kw)
        chain = fopdt_response(t, setpoint, tau, dead)
        sign = -1.0 if site == wrong else 1.0
        reserve = 0.0 if site == overridden else sign * gain * fopdt_response(t, droop, tau, dead)
        power = np.round(np.where(t < steps_s, chain, reserve), 3)
        fleet += power / 1000.0
        for k in range(t.shape[0]):
            us = (start_ms + int(t[k]) * 1000 + 7 * i) * 1000
            telemetry(b, site, oem, event_us=us, power_kw=float(power[k]), freq_hz=float(f[k]))
    cid = command(b, overridden, test_us, 0.0)
    command_result(
        b,
        overridden,
        event_us=test_us + 2_000_000,
        command_id=cid,
        status="OVERRIDDEN",
        cause="MODE",
    )
    b.write(root)
    return Scenario(
        root,
        "test-fcrd-up-1",
        Product.FCR_D_UP,
        test_us,
        end_us,
        requested,
        oems,
        wrong,
        overridden,
        t,
        fleet,
    )


def mfrr_order_log(
    root: Path,
    *,
    sites: int = 5,
    per_site_kw: float = 10.0,
    full_after_s: float = 810.0,
    prefix: str = "",
) -> Scenario:
    """One mFRR up order; the response ramps from 60 s to ``full_after_s`` after it."""
    b = LogBuilder(seed=11, prefix=prefix)
    order_at_s, length_s = 60, 1200
    requested = sites * per_site_kw / 1000.0
    order_us = (START_MS + order_at_s * 1000) * 1000
    end_us = order_us + length_s * 1_000_000
    activation(
        b,
        activation_id="mfrr-order-1",
        product=Product.MFRR,
        kind="ORDER",
        start_us=order_us,
        end_us=end_us,
        requested_mw=requested,
    )
    t = np.arange(0, order_at_s + length_s + 1, dtype=np.float64)
    ramp = np.clip((t - order_at_s - 60.0) / (full_after_s - 60.0), 0.0, 1.0) * per_site_kw
    oems = {}
    for i in range(sites):
        site, oem = site_id(i), _oem(i)
        oems[site] = oem
        for k in range(t.shape[0]):
            us = (START_MS + int(t[k]) * 1000 + 7 * i) * 1000
            telemetry(b, site, oem, event_us=us, power_kw=float(round(ramp[k], 3)), freq_hz=50.0)
    b.write(root)
    return Scenario(
        root,
        "mfrr-order-1",
        Product.MFRR,
        order_us,
        end_us,
        requested,
        oems,
        fleet_t_s=t,
        fleet_power_mw=sites * np.round(ramp, 3) / 1000.0,
    )
