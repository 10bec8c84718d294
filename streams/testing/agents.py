"""Test records for the streams steps and workers (no broker).

``consumed(messages)`` gives raw messages as the consumed records the batch steps read
(``steps.deadletter.ConsumedRecord``); the ``*_record`` builders give valid events as
dicts (int microseconds); ``ManualClock`` is a settable clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streams.steps.ids import derived_id

#: SiteTelemetry's per-product fields (``telemetry_record(stacked=...)``)
STACKED_FIELDS = (
    "armed_fcr_n_kw",
    "armed_fcr_d_up_kw",
    "armed_fcr_d_down_kw",
    "armed_ffr_kw",
    "order_afrr_kw",
    "order_mfrr_kw",
)


@dataclass(frozen=True)
class Consumed:
    """A consumed Kafka record as the batch step reads it (``timestamp`` in ms)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None


def consumed(
    messages: Sequence[tuple[bytes | None, bytes | None]],
    *,
    topic: str = "site.telemetry",
    partition: int = 0,
    first_offset: int = 0,
    timestamp: int | None = None,
) -> list[Consumed]:
    """``(key, value)`` messages as consecutive records of one partition."""
    return [
        Consumed(topic, partition, first_offset + i, key, value, timestamp)
        for i, (key, value) in enumerate(messages)
    ]


def telemetry_record(
    site_id: str,
    event_time: int,
    *,
    oem: str = "huawei",
    battery_power_kw: float = 0.0,
    headroom_up_kw: float = 8.0,
    headroom_down_kw: float = 8.0,
    max_kw: float = 10.0,
    faulted: bool = False,
    frequency_hz: float | None = 50.0,
    baseline_kw: float | None = None,
    stacked: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """A valid SiteTelemetry record (times in int microseconds). ``stacked``: armed
    capacities and order changes by field name (``armed_fcr_n_kw`` ... ``order_mfrr_kw``;
    0 for the others)."""
    unknown = set(stacked or {}) - set(STACKED_FIELDS)
    if unknown:
        raise ValueError(f"not a stacked-product field: {sorted(unknown)}")
    return {
        "event_id": derived_id("test-telemetry", site_id, event_time),
        "event_time": event_time,
        "site_id": site_id,
        "oem": oem,
        "model": "test",
        "battery_power_kw": battery_power_kw,
        "soc_pct": 60.0,
        "grid_power_kw": 0.0,
        "pv_power_kw": 0.0,
        "load_kw": 0.5,
        "headroom_up_kw": headroom_up_kw,
        "headroom_down_kw": headroom_down_kw,
        "max_discharge_kw": max_kw,
        "max_charge_kw": max_kw,
        "mode": "FAULT" if faulted else "REMOTE",
        "frequency_hz": frequency_hz,
        "faulted": faulted,
        "baseline_kw": baseline_kw,
        **{name: float((stacked or {}).get(name, 0.0)) for name in STACKED_FIELDS},
    }


def setpoint_record(
    site_id: str, setpoint_id: str, event_time: int, power_kw: float, valid_until: int
) -> dict[str, Any]:
    """A SET_POWER SiteSetpoint record."""
    return {
        "event_id": derived_id("test-setpoint", site_id, setpoint_id),
        "event_time": event_time,
        "site_id": site_id,
        "setpoint_id": setpoint_id,
        "kind": "SET_POWER",
        "power_kw": power_kw,
        "valid_until": valid_until,
    }


def fleet_setpoint_record(
    fleet_id: str, setpoint_id: str, event_time: int, target_mw: float, valid_until: int
) -> dict[str, Any]:
    """A FleetSetpoint record valid from ``event_time``."""
    return {
        "event_id": derived_id("test-fleet-setpoint", fleet_id, setpoint_id),
        "event_time": event_time,
        "fleet_id": fleet_id,
        "setpoint_id": setpoint_id,
        "target_mw": target_mw,
        "valid_from": event_time,
        "valid_until": valid_until,
    }


def activation_record(
    fleet_id: str,
    activation_id: str,
    event_time: int,
    *,
    product: str,
    requested_mw: float,
    end_time: int,
    baseline_mw: float | None = None,
) -> dict[str, Any]:
    """A MarketActivation ORDER starting at ``event_time``."""
    return {
        "event_id": derived_id("test-activation", fleet_id, activation_id),
        "event_time": event_time,
        "fleet_id": fleet_id,
        "activation_id": activation_id,
        "product": product,
        "kind": "ORDER",
        "requested_mw": requested_mw,
        "start_time": event_time,
        "end_time": end_time,
        "baseline_mw": baseline_mw,
    }


def close_app(built: Any) -> None:
    """Close what Faust created without starting it: the event loop of the consumer thread
    (when one was made; the thread never runs in tests), and the app's own loop when the app
    made it outside a running loop (``app.loop`` then creates the thread's current loop,
    which nothing else would close)."""
    consumer = getattr(built.app, "_consumer", None)
    thread = getattr(consumer, "_thread", None)
    loop = getattr(thread, "thread_loop", None)
    if loop is not None and not loop.is_closed():
        loop.close()
    app_loop = getattr(built.app, "_loop", None)  # mode.Service: None until app.loop is read
    if app_loop is not None and not app_loop.is_running() and not app_loop.is_closed():
        app_loop.close()
        asyncio.set_event_loop(None)  # the next app makes a fresh loop (mode.utils.loops)


class ManualClock:
    """A processing-time clock (int microseconds) that tests move by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now
