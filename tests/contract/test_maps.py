"""One contract suite, parametrized over every edge/maps/*.yaml: adding an OEM enrolls it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from contract.enums import FaultSource, Severity
from edge.hal.codecs import RAW_RANGE
from edge.hal.decode import (
    decode_fault_word,
    decode_faults,
    decode_mode,
    decode_point,
    decode_telemetry,
    encode_point,
    values_from_bank,
)
from edge.hal.errors import WriteRefusedError
from edge.hal.maps import load_map, map_files
from edge.hal.planner import PlanContext, plan_command
from edge.hal.points import Command
from edge.hal.registermap import RegisterMap

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
MAP_FILES = map_files()


@pytest.fixture(params=MAP_FILES, ids=[p.stem for p in MAP_FILES])
def rmap(request: pytest.FixtureRequest) -> RegisterMap:
    path: Path = request.param
    return load_map(path)


def _sample_values(rmap: RegisterMap, name: str) -> list[float]:
    p = rmap.point(name)
    lo_raw, hi_raw = RAW_RANGE[p.type]
    lo = p.min if p.min is not None else min(lo_raw * p.scale, hi_raw * p.scale)
    hi = p.max if p.max is not None else max(lo_raw * p.scale, hi_raw * p.scale)
    mid = round((lo + hi) / 2 / p.scale) * p.scale
    candidates = [lo, hi, mid]
    sentinel = p.sentinel
    out = []
    for v in candidates:
        raw = round(v / p.scale)
        if sentinel is not None and (raw & (0xFFFF if p.count == 1 else 0xFFFFFFFF)) == sentinel:
            continue
        out.append(v)
    return out


def test_every_map_has_at_least_one_golden_dump(rmap: RegisterMap) -> None:
    assert list((GOLDEN / rmap.oem).glob("*.yaml")), f"no golden dumps for {rmap.oem}"


def test_every_point_round_trips(rmap: RegisterMap) -> None:
    for name, p in rmap.points.items():
        if p.type == "str":
            text = "AB12"[: 2 * p.count]
            assert decode_point(rmap, name, encode_point(rmap, name, text)) == text
            continue
        for value in _sample_values(rmap, name):
            regs = encode_point(rmap, name, value)
            assert len(regs) == p.count
            assert decode_point(rmap, name, regs) == pytest.approx(value), name


def test_out_of_bounds_writes_are_refused(rmap: RegisterMap) -> None:
    bounded = [(n, p) for n, p in rmap.points.items() if p.writable and p.max is not None]
    assert bounded, "a map with control sequences has bounded writable points"
    for name, p in bounded:
        assert p.max is not None
        with pytest.raises(WriteRefusedError):
            encode_point(rmap, name, p.max + max(p.scale, 1.0))
        if p.min is not None:
            with pytest.raises(WriteRefusedError):
                encode_point(rmap, name, p.min - max(p.scale, 1.0))


def test_set_power_beyond_the_power_point_is_refused(rmap: RegisterMap) -> None:
    power_max = rmap.point(rmap.control.set_power.power_point).max
    assert power_max is not None
    ctx = PlanContext(rated_power_kw=10.0)
    # per-mille OEMs bound power relative to rated power; W OEMs in W.
    huge_kw = max(power_max, 1100) * 1000.0
    for sign in (1, -1):
        with pytest.raises(WriteRefusedError):
            plan_command(rmap, Command.set_power(sign * huge_kw), ctx)


def test_every_plan_writes_only_writable_points_in_order(rmap: RegisterMap) -> None:
    ctx = PlanContext(rated_power_kw=10.0)
    for cmd in (
        Command.set_power(2.0),
        Command.set_power(-2.0),
        Command.set_power(0.0),
        Command.stop(),
        Command.safe_mode(),
    ):
        plan = plan_command(rmap, cmd, ctx)
        assert plan.writes
        for w in plan.writes:
            assert all(rmap.point(n).writable for n in w.points)
            if w.fc == 6:
                assert len(w.values) == 1


def test_every_fault_bit_decodes(rmap: RegisterMap) -> None:
    assert rmap.faults
    sources = set()
    for table in rmap.faults:
        for bit, fb in table.bits.items():
            faults = decode_fault_word(rmap, table.point, 1 << bit)
            assert len(faults) == 1
            assert faults[0].code == fb.code
            assert faults[0].severity in Severity
            sources.add(faults[0].source)
        assert decode_fault_word(rmap, table.point, 0) == []
    assert FaultSource.BMS in sources, "every OEM map decodes some BMS faults"


def _bank(dump: dict[str, Any]) -> dict[tuple[str, int], int]:
    bank: dict[tuple[str, int], int] = {}
    for table, regs in dump["registers"].items():
        for address, values in regs.items():
            for i, v in enumerate(values):
                bank[(table, int(address) + i)] = int(v)
    return bank


def _golden_cases() -> list[tuple[str, Path]]:
    return [(p.parent.name, p) for p in sorted(GOLDEN.glob("*/*.yaml"))]


@pytest.mark.parametrize(("oem", "path"), _golden_cases(), ids=lambda v: getattr(v, "stem", v))
def test_golden_dump_decodes_to_documented_values(oem: str, path: Path) -> None:
    rmap = load_map(next(p for p in MAP_FILES if p.stem == oem))
    dump = yaml.safe_load(path.read_text())
    bank = _bank(dump)
    expect = dump["expect"]
    values = values_from_bank(rmap, rmap.points, bank)
    for name, want in expect.get("points", {}).items():
        if want is None or isinstance(want, str):
            assert values[name] == want, name
        else:
            assert values[name] == pytest.approx(want), name
    telemetry = decode_telemetry(rmap, values)
    for name, want in expect.get("telemetry", {}).items():
        got = getattr(telemetry, name)
        assert (got is None) if want is None else got == pytest.approx(want), name
    if "mode" in expect:
        assert decode_mode(rmap, values).value == expect["mode"]
    if "faults" in expect:
        assert sorted(f.code for f in decode_faults(rmap, bank)) == sorted(expect["faults"])
