"""Hypothesis: codec round trips for every type, word order, scale and sentinel."""

from __future__ import annotations

from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from edge.hal.codecs import (
    RAW_RANGE,
    TYPE_SENTINELS,
    RegType,
    WordOrder,
    decode_int,
    decode_str,
    decode_unsigned,
    decode_value,
    encode_int,
    encode_str,
    encode_value,
)

NUMERIC = ["u16", "s16", "u32", "s32"]
ORDERS: list[WordOrder] = list(get_args(WordOrder))
SCALES = [1.0, 0.1, 0.01, 0.001, 10.0]


@st.composite
def typed_ints(draw: st.DrawFn) -> tuple[RegType, WordOrder, int]:
    reg_type: RegType = draw(st.sampled_from(NUMERIC))
    lo, hi = RAW_RANGE[reg_type]
    return reg_type, draw(st.sampled_from(ORDERS)), draw(st.integers(lo, hi))


@given(typed_ints())
def test_int_round_trip(case: tuple[RegType, WordOrder, int]) -> None:
    reg_type, order, value = case
    regs = encode_int(value, reg_type, order)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert decode_int(regs, reg_type, order) == value


@given(typed_ints())
def test_word_orders_are_mirror_images(case: tuple[RegType, WordOrder, int]) -> None:
    reg_type, _, value = case
    high = encode_int(value, reg_type, "high_first")
    low = encode_int(value, reg_type, "low_first")
    assert high == list(reversed(low))


@given(typed_ints(), st.sampled_from(SCALES))
def test_scaled_value_round_trip_or_sentinel(
    case: tuple[RegType, WordOrder, int], scale: float
) -> None:
    reg_type, order, raw = case
    sentinel = TYPE_SENTINELS[reg_type]
    regs = encode_int(raw, reg_type, order)
    decoded = decode_value(regs, reg_type, order, scale, sentinel)
    if decode_unsigned(regs, reg_type, order) == sentinel:
        assert decoded is None
        return
    assert decoded is not None
    assert encode_value(decoded, reg_type, order, scale) == regs


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
def test_string_round_trip(text: str) -> None:
    assert decode_str(encode_str(text, 10)) == text


@given(st.integers(0, 0xFFFFFFFF))
def test_sungrow_documented_word_order(value: int) -> None:
    # Sungrow: U32 0x01020304 is transmitted 03 04 01 02, i.e. low word first.
    assert encode_int(value, "u32", "low_first") == [value & 0xFFFF, value >> 16]
