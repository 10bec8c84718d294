"""One fleet setpoint -> 10,000 site commands, in pure Python (goal: <= 1 s).

Measured: ``allocate`` over 10,000 site statuses, then the setpoint filter for every site
setpoint, then ``to_record()`` of every SiteCommand (what the agents do before encoding).
A second figure adds the Avro encoding of every command with the project codec.
Baseline, same run: a naive proportional split that builds the same number of plain dicts
(share = target * cap / sum, a uuid4 id, ten fields) in one loop, i.e. the floor for any
pure-Python allocator producing per-site records. Best of ``REPEATS`` runs each.
"""

from __future__ import annotations

import time
import uuid

from bench import BenchResult
from contract.codec import encode
from contract.enums import CommandKind, Product, SiteMode
from contract.records import SiteTelemetry
from streams.steps.allocator import AllocationRequest, allocate
from streams.steps.availability import AllocatorConfig, SiteStatus
from streams.steps.setpoint_filter import FilterConfig, FilterState, filter_setpoint

SITES = 10_000
REPEATS = 3
S = 1_000_000
NOW = 1_700_000_000 * S


def _statuses() -> list[SiteStatus]:
    out = []
    for i in range(SITES):
        site = f"site-{i:05d}"
        tel = SiteTelemetry(
            event_id=str(uuid.UUID(int=i)),
            event_time=NOW - S,
            site_id=site,
            oem=("huawei", "sungrow", "saj")[i % 3],
            model="m",
            battery_power_kw=0.0,
            soc_pct=50.0,
            grid_power_kw=0.0,
            pv_power_kw=0.0,
            load_kw=1.0,
            headroom_up_kw=4.0 + (i % 7) * 1.37,
            headroom_down_kw=5.0 + (i % 3),
            max_discharge_kw=10.0,
            max_charge_kw=10.0,
            mode=SiteMode.REMOTE,
        )
        out.append(SiteStatus(site, tel))
    return out


def _pipeline(
    statuses: list[SiteStatus], target_kw: float, *, encoded: bool = False
) -> tuple[float, int]:
    request = AllocationRequest(
        source_id="bench-fs-1",
        fleet_id="fleet",
        kind=CommandKind.SET_POWER,
        product=Product.NONE,
        target_kw=target_kw,
        valid_until=NOW + 60 * S,
    )
    config = AllocatorConfig()
    fconfig = FilterConfig()
    started = time.perf_counter()
    alloc = allocate(request, statuses, NOW, config)
    empty = FilterState()
    records = []
    for sp in alloc.setpoints:
        _, command, _ = filter_setpoint(empty, sp, NOW, fconfig)
        if command is not None:
            records.append(command.to_record())
    count = len([encode("SiteCommand", r) for r in records]) if encoded else len(records)
    return time.perf_counter() - started, count


def _naive(
    statuses: list[SiteStatus], target_kw: float, *, encoded: bool = False
) -> tuple[float, int]:
    started = time.perf_counter()
    caps = [s.telemetry.headroom_up_kw if s.telemetry else 0.0 for s in statuses]
    total = sum(caps)
    records = []
    for status, cap in zip(statuses, caps, strict=True):
        records.append(
            {
                "event_id": str(uuid.uuid4()),
                "event_time": NOW,
                "ingest_time": None,
                "site_id": status.site_id,
                "command_id": str(uuid.uuid4()),
                "setpoint_id": None,
                "kind": "SET_POWER",
                "power_kw": target_kw * cap / total,
                "reserve": None,
                "valid_until": NOW + 60 * S,
                "issued_by": "",
            }
        )
    count = len([encode("SiteCommand", r) for r in records]) if encoded else len(records)
    return time.perf_counter() - started, count


def run() -> list[BenchResult]:
    statuses = _statuses()
    target_kw = 45_678.9
    ours = min(_pipeline(statuses, target_kw) for _ in range(REPEATS))
    naive = min(_naive(statuses, target_kw) for _ in range(REPEATS))
    ours_enc = min(_pipeline(statuses, target_kw, encoded=True) for _ in range(REPEATS))
    naive_enc = min(_naive(statuses, target_kw, encoded=True) for _ in range(REPEATS))
    for got in (ours, naive, ours_enc, naive_enc):
        if got[1] != SITES:
            raise RuntimeError(f"expected {SITES} commands, got {got[1]}")
    return [
        BenchResult(
            name="fleet_setpoint_to_10k_site_commands",
            value=ours[0],
            unit="s",
            baseline=naive[0],
            goal="<= 1 s for 10,000 sites",
            higher_is_better=False,
            note=(
                "allocate + setpoint filter + to_record; baseline: naive split into plain "
                f"dicts; {'PASS' if ours[0] <= 1.0 else 'FAIL'}"
            ),
        ),
        BenchResult(
            name="fleet_setpoint_to_10k_encoded_site_commands",
            value=ours_enc[0],
            unit="s",
            baseline=naive_enc[0],
            goal="<= 1 s for 10,000 sites",
            higher_is_better=False,
            note=(
                "as above + Avro encode of every command (contract.codec); baseline: naive "
                f"dicts + the same encode; {'PASS' if ours_enc[0] <= 1.0 else 'FAIL'}"
            ),
        ),
    ]


if __name__ == "__main__":
    for result in run():
        print(result.as_json())
