"""Pure decoding/encoding of map points into canonical telemetry, modes and faults.

This is the only place where OEM signs and units become ours (kW, + = discharging/export).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from contract.enums import Severity, SiteMode
from edge.hal.codecs import decode_str, decode_unsigned, decode_value, encode_str, encode_value
from edge.hal.errors import CodecError, WriteRefusedError
from edge.hal.points import CanonicalPoint, Fault, Telemetry
from edge.hal.registermap import UNIT_TO_CANONICAL, RegisterMap, Source

Value = float | str | None
RegisterBank = Mapping[tuple[str, int], int]  # (table, wire address) -> register value


def decode_point(rmap: RegisterMap, name: str, regs: Sequence[int]) -> Value:
    p = rmap.point(name)
    if p.type == "str":
        return decode_str(regs)
    return decode_value(regs, p.type, rmap.word_order(p), p.scale, p.sentinel)


def encode_point(rmap: RegisterMap, name: str, value: float | str) -> list[int]:
    """Engineering value -> registers; refuses out-of-bounds values (WriteRefusedError)."""
    p = rmap.point(name)
    if p.type == "str":
        if not isinstance(value, str):
            raise CodecError(f"{name}: str point needs a str")
        return encode_str(value, p.count)
    if isinstance(value, str):
        raise CodecError(f"{name}: numeric point needs a number")
    if p.min is not None and value < p.min:
        raise WriteRefusedError(f"{name}: {value} below min {p.min} {p.unit}")
    if p.max is not None and value > p.max:
        raise WriteRefusedError(f"{name}: {value} above max {p.max} {p.unit}")
    try:
        return encode_value(value, p.type, rmap.word_order(p), p.scale)
    except CodecError as exc:
        raise WriteRefusedError(f"{name}: {exc}") from None


def point_registers(rmap: RegisterMap, name: str, bank: RegisterBank) -> list[int] | None:
    p = rmap.point(name)
    regs = [bank.get((p.table, p.address + i)) for i in range(p.count)]
    if any(r is None for r in regs):
        return None
    return [r for r in regs if r is not None]


def values_from_bank(
    rmap: RegisterMap, names: Iterable[str], bank: RegisterBank
) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for name in names:
        regs = point_registers(rmap, name, bank)
        out[name] = None if regs is None else decode_point(rmap, name, regs)
    return out


def _canonical_scalar(rmap: RegisterMap, name: str, values: Mapping[str, Value]) -> float | None:
    value = values.get(name)
    if value is None or isinstance(value, str):
        return None
    unit = rmap.point(name).unit
    factor = UNIT_TO_CANONICAL.get(unit, (unit, 1.0))[1]
    return value * factor


def canonical(rmap: RegisterMap, src: Source, values: Mapping[str, Value]) -> float | None:
    total = 0.0
    for term in src.terms:
        v = _canonical_scalar(rmap, term.point, values)
        if v is None:
            return None
        total += term.sign * (abs(v) if term.magnitude else v)
    if src.times is not None:
        t = _canonical_scalar(rmap, src.times, values)
        if t is None:
            return None
        total *= t
    return round(total * src.factor, 9) + 0.0  # + 0.0 turns -0.0 into 0.0


def telemetry_points(rmap: RegisterMap) -> list[str]:
    names: list[str] = []
    for src in rmap.telemetry.values():
        names += [t.point for t in src.terms] + ([src.times] if src.times else [])
    names += [rule.point for rule in rmap.mode]
    return list(dict.fromkeys(names))


def decode_mode(rmap: RegisterMap, values: Mapping[str, Value]) -> SiteMode:
    for rule in rmap.mode:
        raw = values.get(rule.point)
        if isinstance(raw, float | int):
            mode = rule.values.get(int(raw))
            if mode is not None:
                return mode
    return SiteMode.UNKNOWN


def decode_telemetry(rmap: RegisterMap, values: Mapping[str, Value]) -> Telemetry:
    def get(cp: CanonicalPoint) -> float | None:
        src = rmap.telemetry.get(cp)
        return None if src is None else canonical(rmap, src, values)

    return Telemetry(
        battery_power_kw=get(CanonicalPoint.BATTERY_POWER_KW),
        soc_pct=get(CanonicalPoint.SOC_PCT),
        grid_power_kw=get(CanonicalPoint.GRID_POWER_KW),
        pv_power_kw=get(CanonicalPoint.PV_POWER_KW),
        load_kw=get(CanonicalPoint.LOAD_KW),
        frequency_hz=get(CanonicalPoint.FREQUENCY_HZ),
        max_charge_kw=get(CanonicalPoint.MAX_CHARGE_KW),
        max_discharge_kw=get(CanonicalPoint.MAX_DISCHARGE_KW),
        capacity_kwh=get(CanonicalPoint.CAPACITY_KWH),
        mode=decode_mode(rmap, values),
    )


def fault_points(rmap: RegisterMap) -> list[str]:
    return [t.point for t in rmap.faults]


def decode_fault_word(rmap: RegisterMap, table_point: str, word: int) -> list[Fault]:
    """Every set bit -> a Fault; undocumented bits still surface, as WARNING."""
    table = next(t for t in rmap.faults if t.point == table_point)
    faults: list[Fault] = []
    width = 16 * rmap.point(table_point).count
    for bit in range(width):
        if not word >> bit & 1:
            continue
        fb = table.bits.get(bit)
        if fb is None:
            faults.append(
                Fault(
                    table.source,
                    f"{rmap.oem}.{table_point}.bit{bit}",
                    f"undocumented bit {bit} of {table_point}",
                    Severity.WARNING,
                )
            )
        else:
            faults.append(Fault(fb.source or table.source, fb.code, fb.name, fb.severity))
    return faults


def decode_faults(rmap: RegisterMap, bank: RegisterBank) -> list[Fault]:
    faults: list[Fault] = []
    for table in rmap.faults:
        regs = point_registers(rmap, table.point, bank)
        if regs is None:
            continue
        p = rmap.point(table.point)
        word = decode_unsigned(regs, p.type, rmap.word_order(p))
        faults += decode_fault_word(rmap, table.point, word)
    return faults
