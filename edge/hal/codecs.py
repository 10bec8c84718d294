"""Register codecs: u16/s16/u32/s32/str with per-point word order, scale and invalid sentinels.

Raw level: registers <-> int (or str). Engineering level: int raw <-> float via scale, with
the invalid-value sentinel decoding to None. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from edge.hal.errors import CodecError

RegType = Literal["u16", "s16", "u32", "s32", "str"]
WordOrder = Literal["high_first", "low_first"]

REGISTER_COUNT: dict[str, int] = {"u16": 1, "s16": 1, "u32": 2, "s32": 2}

# Default "not available" sentinels as unsigned register patterns (Huawei and Sungrow docs).
TYPE_SENTINELS: dict[str, int] = {
    "u16": 0xFFFF,
    "s16": 0x7FFF,
    "u32": 0xFFFFFFFF,
    "s32": 0x7FFFFFFF,
}

RAW_RANGE: dict[str, tuple[int, int]] = {
    "u16": (0, 0xFFFF),
    "s16": (-0x8000, 0x7FFF),
    "u32": (0, 0xFFFFFFFF),
    "s32": (-0x80000000, 0x7FFFFFFF),
}


def register_count(reg_type: RegType, length: int | None = None) -> int:
    if reg_type == "str":
        if not length or length < 1:
            raise CodecError("str needs a length >= 1 (registers)")
        return length
    return REGISTER_COUNT[reg_type]


def _check_registers(regs: Sequence[int], count: int) -> None:
    if len(regs) != count:
        raise CodecError(f"expected {count} registers, got {len(regs)}")
    for r in regs:
        if not 0 <= r <= 0xFFFF:
            raise CodecError(f"register value {r} outside 0..65535")


def decode_unsigned(regs: Sequence[int], reg_type: RegType, word_order: WordOrder) -> int:
    """Registers -> unsigned bit pattern (the form sentinels are written in)."""
    _check_registers(regs, REGISTER_COUNT[reg_type])
    if len(regs) == 1:
        return regs[0]
    hi, lo = (regs[0], regs[1]) if word_order == "high_first" else (regs[1], regs[0])
    return (hi << 16) | lo


def to_signed(pattern: int, reg_type: RegType) -> int:
    if reg_type == "s16" and pattern >= 0x8000:
        return pattern - 0x10000
    if reg_type == "s32" and pattern >= 0x80000000:
        return pattern - 0x100000000
    return pattern


def decode_int(regs: Sequence[int], reg_type: RegType, word_order: WordOrder) -> int:
    return to_signed(decode_unsigned(regs, reg_type, word_order), reg_type)


def encode_int(value: int, reg_type: RegType, word_order: WordOrder) -> list[int]:
    if reg_type == "str":
        raise CodecError("encode_int on a str point")
    lo_bound, hi_bound = RAW_RANGE[reg_type]
    if not lo_bound <= value <= hi_bound:
        raise CodecError(f"{value} does not fit {reg_type} ({lo_bound}..{hi_bound})")
    pattern = value & (0xFFFF if REGISTER_COUNT[reg_type] == 1 else 0xFFFFFFFF)
    if REGISTER_COUNT[reg_type] == 1:
        return [pattern]
    hi, lo = pattern >> 16, pattern & 0xFFFF
    return [hi, lo] if word_order == "high_first" else [lo, hi]


def decode_str(regs: Sequence[int]) -> str:
    """Two chars per register, high byte first, NUL/space padded (all three OEMs)."""
    _check_registers(regs, len(regs))
    raw = b"".join(r.to_bytes(2, "big") for r in regs)
    return raw.split(b"\x00", 1)[0].decode("utf-8", errors="replace").strip()


def encode_str(text: str, length: int) -> list[int]:
    data = text.encode("utf-8")
    if len(data) > 2 * length:
        raise CodecError(f"string {text!r} longer than {length} registers")
    data = data.ljust(2 * length, b"\x00")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def decode_value(
    regs: Sequence[int],
    reg_type: RegType,
    word_order: WordOrder,
    scale: float,
    invalid: int | None,
) -> float | None:
    """Registers -> engineering value; the invalid sentinel (unsigned pattern) -> None."""
    pattern = decode_unsigned(regs, reg_type, word_order)
    if invalid is not None and pattern == invalid:
        return None
    raw = to_signed(pattern, reg_type)
    value = raw * scale
    # Keep decimal scales tidy: 1000 * 0.1 -> 100.0, not 100.00000000000001.
    return round(value, 9)


def raw_from_engineering(value: float, reg_type: RegType, scale: float) -> int:
    if scale == 0:
        raise CodecError("scale 0")
    raw = round(value / scale)
    lo_bound, hi_bound = RAW_RANGE[reg_type]
    if not lo_bound <= raw <= hi_bound:
        raise CodecError(f"{value} (raw {raw}) does not fit {reg_type}")
    return raw


def encode_value(value: float, reg_type: RegType, word_order: WordOrder, scale: float) -> list[int]:
    return encode_int(raw_from_engineering(value, reg_type, scale), reg_type, word_order)
