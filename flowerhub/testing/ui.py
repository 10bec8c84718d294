"""Decoded events (raw-codec form) of the topics the UI reads, for tests and benchmarks.

Each builder returns one valid record with fixed defaults and ``fields`` on top, so a test
varies one field at a time (as ``contract.testing.strategies.site_telemetry_example`` does; like
it, this module needs the dev extra).
"""

from __future__ import annotations

from typing import Any

from contract.testing.strategies import site_telemetry_example

T0 = 1_790_000_000_000_000  # 2026-09-21T14:13:20Z, microseconds
S = 1_000_000


def telemetry(site: str = "site-1", t: int = T0, **fields: Any) -> dict[str, Any]:
    return site_telemetry_example(site_id=site, event_time=t, **fields)


def fleet_state(
    t_end: int = T0, *, window_s: int = 1, power: float = 0.5, **fields: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000001",
        "event_time": t_end,
        "ingest_time": None,
        "fleet_id": "fleet",
        "window_start": t_end - window_s * S,
        "window_end": t_end,
        "window_s": window_s,
        "total_power_mw": power,
        "headroom_up_mw": 1.0,
        "headroom_down_mw": 2.0,
        "sites_online": 3,
        "sites_faulted": 0,
        "mean_frequency_hz": 49.95,
        "per_oem": [
            {
                "oem": "huawei",
                "power_mw": power / 2,
                "headroom_up_mw": 0.5,
                "headroom_down_mw": 1.0,
                "sites_online": 2,
                "sites_faulted": 0,
            },
            {
                "oem": "saj",
                "power_mw": power / 2,
                "headroom_up_mw": 0.5,
                "headroom_down_mw": 1.0,
                "sites_online": 1,
                "sites_faulted": 0,
            },
        ],
    }
    return record | fields


def verdict(
    t: int = T0,
    *,
    activation: str | None = "act-1",
    required: float = 0.3,
    measured: float = 0.2,
    product: str = "FCR_D_UP",
    status: str = "PASS",
    finding: str = "OK",
    **fields: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000002",
        "event_time": t,
        "ingest_time": None,
        "fleet_id": "fleet",
        "activation_id": activation,
        "product": product,
        "rule_id": "FCRD.REQ1",
        "rule_version": "TR-2025-03-28",
        "status": status,
        "finding": finding,
        "required_mw": required,
        "measured_mw": measured,
        "threshold": 0.9,
        "message": "ok",
        "site_ids": [],
    }
    return record | fields


def activation(
    aid: str = "act-1",
    *,
    start: int = T0 - 10 * S,
    end: int = T0 + 60 * S,
    product: str = "FCR_D_UP",
    kind: str = "TEST",
    requested: float = 0.4,
    **fields: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000003",
        "event_time": start,
        "ingest_time": None,
        "fleet_id": "fleet",
        "activation_id": aid,
        "product": product,
        "kind": kind,
        "requested_mw": requested,
        "start_time": start,
        "end_time": end,
        "test_name": "fcrd_up_ramp",
        "baseline_mw": None,
    }
    return record | fields


def command_result(
    site: str = "site-1",
    t: int = T0,
    *,
    status: str = "CLAMPED",
    measured: float | None = 3.0,
    **fields: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000004",
        "event_time": t,
        "ingest_time": None,
        "site_id": site,
        "command_id": "cmd-1",
        "status": status,
        "requested_kw": 6.0,
        "written_kw": 6.0,
        "measured_kw": measured,
        "measured_soc_pct": 50.0,
        "likely_cause": "RATED_LIMIT",
        "reason": "inverter limits the response",
        "register_writes": 2,
        "latency_ms": 120.0,
    }
    return record | fields


def fault_code(code: str = "huawei.alarm.grid_loss", severity: str = "MAJOR") -> dict[str, Any]:
    return {"source": "INVERTER", "code": code, "name": "Grid loss", "severity": severity}


def site_fault(
    site: str = "site-1",
    t: int = T0,
    *,
    active: list[dict[str, Any]] | None = None,
    raised: list[dict[str, Any]] | None = None,
    cleared: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "event_id": "00000000-0000-4000-8000-000000000005",
        "event_time": t,
        "ingest_time": None,
        "site_id": site,
        "active": active or [],
        "raised": raised or [],
        "cleared": cleared or [],
    }


def device_status(
    site: str = "site-1", t: int = T0, state: str = "ONLINE", **fields: Any
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": "00000000-0000-4000-8000-000000000006",
        "event_time": t,
        "ingest_time": None,
        "site_id": site,
        "state": state,
        "host": "127.0.0.1",
        "port": 502,
        "unit_id": 1,
        "serial": "SN1",
        "error_count": 0,
        "last_error": None,
        "rtt_ms": 12.5,
        "outbox_depth": 0,
        "outbox_dropped": 0,
    }
    return record | fields
