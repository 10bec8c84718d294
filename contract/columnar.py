"""Batch columnar decoding of one Avro record schema in numpy (pure: numpy only).

:class:`ColumnarDecoder` is compiled once from a record schema (the raw ``.avsc`` JSON, with
its logical types) into a list of field readers; :meth:`ColumnarDecoder.decode` then reads
a whole list of single-object encoded values (``C3 01`` + fingerprint + body) field by
field, every value at once: one numpy gather per field instead of one Python call per value.

It decodes only what it can decode exactly as the raw codec (``contract.codec.raw_codec``)
does, and flags everything else for the per-record path instead of guessing. A row is
flagged (``ColumnBatch.ok`` False) when:

- the value is not ``bytes``, is shorter than the header, is not single-object framing or
  names another fingerprint than the decoder's (older writer versions need schema
  resolution; other events or Confluent framing belong to the codec);
- a varint runs past 10 bytes or overflows 64 bits, a length is negative or runs past the
  value, an enum or union index is out of range (fastavro would read a negative index as
  Python indexing does), a boolean byte is neither 0 nor 1, the body does not end exactly
  at the end of the value;
- a string is not valid UTF-8, a ``uuid`` is not in canonical lower-case form (the codec
  normalises or rejects it), an ``int`` is outside 32 bits or a ``timestamp-micros`` /
  ``-millis`` outside the years 1..9999 (the codec's raw guard rejects them).

Column values are the raw codec's: ``long``/``int`` as int64, ``double`` as float64,
``float`` as its float32 value widened to float64 (fastavro's Python float), ``boolean``
as bool, ``string`` as offsets into the joined values (``StringColumn``), ``enum`` as the
symbol index (``EnumColumn``); a ``["null", T]`` union (either order) is T's column plus a
``present`` mask. :meth:`ColumnBatch.records` materialises rows as the raw codec's dicts.
Other types (records, arrays, maps, fixed, other unions) raise :class:`UnsupportedSchemaError`
when compiling: the schema is then decoded per record.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from contract.errors import SchemaDefinitionError

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
HEADER_SIZE = 10
_PAD = 64  # zero bytes after the joined values (at least): gathers never leave the buffer
_UUID_LEN = 36
_UUID_HYPHENS = (8, 13, 18, 23)
_INT32 = (-(2**31), 2**31 - 1)
_MICROS_RANGE = (-62_135_596_800_000_000, 253_402_300_799_999_999)  # 0001-01-01..9999-12-31
_MILLIS_RANGE = (_MICROS_RANGE[0] // 1000, _MICROS_RANGE[1] // 1000)
_RANGES: dict[tuple[str, str], tuple[int, int]] = {
    ("int", ""): _INT32,
    ("long", "timestamp-micros"): _MICROS_RANGE,
    ("long", "timestamp-millis"): _MILLIS_RANGE,
}
_FIXED_WIDTH = {"double": 8, "float": 4, "boolean": 1}
# canonical uuid text: each byte's class (1 lower-case hex digit, 2 hyphen, 0 other)
_UUID_CLASS = np.zeros(256, np.uint8)
_UUID_CLASS[np.frombuffer(b"0123456789abcdef", np.uint8)] = 1
_UUID_CLASS[ord("-")] = 2
_UUID_PATTERN = np.array([2 if i in _UUID_HYPHENS else 1 for i in range(_UUID_LEN)], np.uint8)
_AR10 = np.arange(10)
_SHIFTS = (7 * np.arange(10)).astype(np.uint64)

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
U8 = npt.NDArray[np.uint8]


class UnsupportedSchemaError(SchemaDefinitionError):
    """A schema (or one of its fields) the columnar decoder does not handle."""


@dataclass
class Column:
    """One field's values for every row (garbage where the row is not ``ok``).

    ``kind``: ``long``, ``int``, ``double``, ``float``, ``boolean``, ``string``, ``enum``
    (``values`` int64, float64 or bool); ``present``: None for a non-null field, else True
    where the union holds the value (False: ``None``)."""

    kind: str
    values: npt.NDArray[Any]
    present: Bools | None


@dataclass
class StringColumn(Column):
    """``values`` are the lengths; ``starts`` the offsets into ``ColumnBatch.data``."""

    starts: I64


@dataclass
class EnumColumn(Column):
    """``values`` are symbol indexes into ``symbols``."""

    symbols: tuple[str, ...]


@dataclass
class ColumnBatch:
    """The decoded columns of a batch of values; ``ok[i]`` False: row i was not decoded here."""

    ok: Bools
    columns: dict[str, Column]
    data: bytes  # the values joined, then padding (string columns point into it)
    field_names: tuple[str, ...]
    buf: U8  # ``data`` with zero padding, as numpy bytes

    def __len__(self) -> int:
        return len(self.ok)

    def text(self, name: str, rows: npt.NDArray[np.intp]) -> list[Any]:
        """The str values of string column ``name`` at ``rows`` (None where null)."""
        column = self.columns[name]
        if not isinstance(column, StringColumn):
            raise TypeError(f"{name} is a {column.kind} column, not a string")
        return _texts(self.data, column, rows)

    def values(self, name: str, rows: npt.NDArray[np.intp]) -> list[Any]:
        """Column ``name`` at ``rows`` as the raw codec's Python values."""
        column = self.columns[name]
        if isinstance(column, StringColumn):
            return _texts(self.data, column, rows)
        if isinstance(column, EnumColumn):
            symbols = column.symbols
            out: list[Any] = [symbols[i] for i in column.values[rows].tolist()]
        else:
            out = column.values[rows].tolist()
        if column.present is not None:
            return [
                v if p else None for v, p in zip(out, column.present[rows].tolist(), strict=True)
            ]
        return out

    def codes(self, name: str, rows: npt.NDArray[np.intp]) -> tuple[I64, list[str]]:
        """Group string column ``name`` at ``rows`` (``ok`` rows, none null): a code per row
        and the distinct values it indexes (in no particular order)."""
        column = self.columns[name]
        if not isinstance(column, StringColumn) or column.kind != "string":
            raise TypeError(f"{name} is a {column.kind} column, not a string")
        starts, lengths = column.starts[rows], column.values[rows]
        widest = int(lengths.max()) if len(rows) else 0
        if widest <= _PAD:
            grouped = _hash_codes(self.buf, starts, lengths, widest)
            if grouped is not None:
                codes, firsts = grouped
                return codes, _texts(self.data, column, rows[firsts])
        seen: dict[bytes, int] = {}
        data = self.data
        spans = zip(starts.tolist(), lengths.tolist(), strict=True)
        codes = np.array([seen.setdefault(data[s : s + n], len(seen)) for s, n in spans], np.int64)
        return codes, [raw.decode() for raw in seen]

    def records(self, rows: npt.NDArray[np.intp]) -> list[dict[str, Any]]:
        """The rows as the raw codec decodes them (only rows that are ``ok``)."""
        names = self.field_names
        columns = [self.values(name, rows) for name in names]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


_MIX = np.uint64(0x9E3779B97F4A7C15)


def at(buf: U8, pos: npt.NDArray[np.int64], width: int) -> U8:
    """The ``width`` bytes at each of ``pos``, one row each (a copy; ``pos + width`` must
    stay within ``buf``): one row gather of a sliding window, no index matrix."""
    rows: U8 = sliding_window_view(buf, max(width, 1))[pos]
    return rows if width else rows[:, :0]


def _hash_codes(buf: U8, starts: I64, lengths: I64, widest: int) -> tuple[I64, I64] | None:
    """Codes of short byte strings by a 64-bit hash of their zero-padded words and length,
    checked: None when two different strings share a hash (the caller groups by dict).
    Returns the codes and, per code, a row holding that value."""
    words = (widest + 7) // 8
    span = np.arange(words * 8)
    chars = at(buf, starts, words * 8) * (span < lengths[:, None])
    packed = chars.astype(np.uint8).view("<u8").reshape(len(starts), words)
    mixed = lengths.astype(np.uint64) * _MIX
    with np.errstate(over="ignore"):
        for k in range(words):
            mixed = (mixed ^ packed[:, k]) * _MIX
            mixed ^= mixed >> np.uint64(31)
    _, firsts, codes = np.unique(mixed, return_index=True, return_inverse=True)
    same = (packed == packed[firsts][codes]).all() and (lengths == lengths[firsts][codes]).all()
    return (codes.astype(np.int64), firsts) if same else None


def _texts(data: bytes, column: StringColumn, rows: npt.NDArray[np.intp]) -> list[Any]:
    starts, lengths = column.starts[rows].tolist(), column.values[rows].tolist()
    spans = zip(starts, lengths, strict=True)
    if column.kind == "bytes":
        out: list[Any] = [data[s : s + n] for s, n in spans]
    else:
        out = [data[s : s + n].decode() for s, n in spans]
    if column.present is not None:
        for i, present in enumerate(column.present[rows].tolist()):
            if not present:
                out[i] = None
    return out


class _Batch:
    """Decoding state: the joined bytes, each row's position, end and trouble flag."""

    def __init__(self, values: list[bytes], ends: I64, pad: int) -> None:
        self.data = b"".join([*values, bytes(pad)])  # the values, then zero padding
        self.buf: U8 = np.frombuffer(self.data, np.uint8)
        self.ends = ends
        self.bad: Bools = np.zeros(len(ends), np.bool_)
        self._high: I64 | None = None
        self._windows: dict[int, U8] = {}

    def at(self, pos: I64, width: int) -> U8:
        """``at(self.buf, pos, width)`` with the sliding window view made once per width."""
        if width == 0:
            return np.zeros((len(pos), 0), np.uint8)
        view = self._windows.get(width)
        if view is None:
            view = self._windows[width] = sliding_window_view(self.buf, width)
        rows: U8 = view[pos]
        return rows

    def high_bytes(self) -> I64:
        """Offsets of the bytes >= 0x80 (non-ASCII text lives only around them)."""
        if self._high is None:
            self._high = np.flatnonzero(self.buf >= 0x80)
        return self._high


# A field reader: (batch, rows, positions) -> (column or None, new positions, bad rows).
# ``rows`` selects the rows being read (all of them, or a union's branch); positions and
# flags are per selected row. A reader never reads past the padding.
Reader = Callable[[_Batch, npt.NDArray[np.intp], I64], tuple[Column | None, I64, Bools]]


def _varint(batch: _Batch, pos: I64) -> tuple[I64, I64, Bools]:
    """Zigzag varints at ``pos``: (values, positions after, malformed)."""
    buf = batch.buf
    first = buf[pos]
    if not (first >= 0x80).any():  # the common case: one byte each
        small = first.astype(np.int64)
        return (small >> 1) ^ -(small & 1), pos + 1, np.zeros(len(pos), np.bool_)
    grid = batch.at(pos, 10)
    last = grid < 0x80
    found = last.any(axis=1)
    count = np.argmax(last, axis=1) + 1
    payload = (grid & 0x7F) * (count[:, None] > _AR10)
    raw = np.zeros(len(pos), np.uint64)
    for k in range(10):  # column by column: most varints are short, their high columns zero
        column = payload[:, k]
        if column.any():
            raw |= column.astype(np.uint64) << _SHIFTS[k]
    bad = ~found | ((count == 10) & (grid[:, 9] > 1))  # 10 bytes hold 64 bits: one bit left
    value = (raw >> np.uint64(1)).astype(np.int64) ^ -(raw & np.uint64(1)).astype(np.int64)
    return value, pos + count, bad


def _long_reader(kind: str, logical: str) -> Reader:
    bounds = _RANGES.get((kind, logical)) or (_INT32 if kind == "int" else None)

    def read(batch: _Batch, rows: npt.NDArray[np.intp], pos: I64) -> tuple[Column, I64, Bools]:
        value, after, bad = _varint(batch, pos)
        if bounds is not None:
            bad |= (value < bounds[0]) | (value > bounds[1])
        return Column(kind, value, None), after, bad

    return read


def block_width(kinds: Sequence[str]) -> int:
    return sum(_FIXED_WIDTH[k] for k in kinds)


def _fixed_block(kinds: Sequence[str]) -> Reader:
    """Consecutive fixed-width fields (double, float, boolean) in one gather."""
    offsets = np.cumsum([0, *(_FIXED_WIDTH[k] for k in kinds)])[:-1].tolist()
    width = block_width(kinds)

    def read(
        batch: _Batch, rows: npt.NDArray[np.intp], pos: I64
    ) -> tuple[Column | None, I64, Bools]:
        grid = batch.at(pos, width)
        doubles = grid.view("<f8") if width % 8 == 0 else None  # rows of aligned doubles
        bad = np.zeros(len(pos), np.bool_)
        columns = []
        for kind, offset in zip(kinds, offsets, strict=True):
            if kind == "double":
                aligned = doubles is not None and offset % 8 == 0
                values: npt.NDArray[Any] = (
                    doubles[:, offset // 8]
                    if doubles is not None and aligned
                    else grid[:, offset : offset + 8].copy().view("<f8")[:, 0]
                )
            elif kind == "float":
                values = grid[:, offset : offset + 4].copy().view("<f4")[:, 0].astype(np.float64)
            else:
                byte = grid[:, offset]
                bad |= byte > 1
                values = byte == 1
            columns.append(Column(kind, values, None))
        return _Block(columns), pos + width, bad

    return read


class _Block(Column):
    """Several fixed-width columns read together (split by the record reader)."""

    def __init__(self, columns: list[Column]) -> None:
        super().__init__("block", np.empty(0), None)
        self.parts = columns


def _non_ascii(batch: _Batch, start: I64, length: I64) -> Bools:
    """Which strings hold a byte >= 0x80 (only those need a UTF-8 check)."""
    widest = int(length.max())
    if widest <= _PAD:  # short strings: one gather
        span = np.arange(widest)
        chars = batch.at(start, widest)
        found = np.zeros(len(start), np.bool_)
        np.any((chars >= 0x80) & (span < length[:, None]), axis=1, out=found)
        return found
    high = batch.high_bytes()
    spanned: Bools = np.searchsorted(high, start) != np.searchsorted(high, start + length)
    return spanned


def _string_reader(logical: str, *, utf8: bool = True) -> Reader:
    uuid = logical == "uuid"

    def read(batch: _Batch, rows: npt.NDArray[np.intp], pos: I64) -> tuple[Column, I64, Bools]:
        length, start, bad = _varint(batch, pos)
        bad |= (length < 0) | (length > batch.ends[rows] - start)
        length = np.where(bad, 0, length)
        after = start + length
        if utf8 and not uuid and len(pos):  # (a canonical uuid is ASCII: checked below)
            has_high = _non_ascii(batch, start, length)
            for i in np.flatnonzero(has_high & ~bad).tolist():
                try:
                    batch.data[start[i] : after[i]].decode()
                except UnicodeDecodeError:
                    bad[i] = True
        if uuid:
            bad |= length != _UUID_LEN
            candidates = np.flatnonzero(~bad)
            if len(candidates):
                chars = batch.at(start[candidates], _UUID_LEN)
                good = (_UUID_CLASS[chars] == _UUID_PATTERN).all(axis=1)
                bad[candidates[~good]] = True
        return StringColumn("string" if utf8 else "bytes", length, None, start), after, bad

    return read


def _enum_reader(symbols: tuple[str, ...]) -> Reader:
    def read(batch: _Batch, rows: npt.NDArray[np.intp], pos: I64) -> tuple[Column, I64, Bools]:
        index, after, bad = _varint(batch, pos)
        bad |= (index < 0) | (index >= len(symbols))
        return EnumColumn("enum", index, None, symbols), after, bad

    return read


def _optional_reader(inner: Reader, value_branch: int) -> Reader:
    """A ``["null", T]`` union (or ``[T, "null"]``): T's column with a ``present`` mask."""

    def read(batch: _Batch, rows: npt.NDArray[np.intp], pos: I64) -> tuple[Column, I64, Bools]:
        branch, after, bad = _varint(batch, pos)
        bad |= (branch < 0) | (branch > 1)
        present = (branch == value_branch) & ~bad
        sub = np.flatnonzero(present)
        column, sub_after, sub_bad = inner(batch, rows[sub], after[sub])
        if column is None or isinstance(column, _Block):
            parts = [] if column is None else column.parts
            if len(parts) != 1:
                raise UnsupportedSchemaError("a union branch must hold one value")
            column = parts[0]
        after[sub] = sub_after
        bad[sub] |= sub_bad
        return _widen(column, sub, len(pos), present), after, bad

    return read


def _widen(column: Column, sub: npt.NDArray[np.intp], n: int, present: Bools) -> Column:
    """A column read for rows ``sub`` spread over ``n`` rows (zeros where absent)."""
    values = np.zeros(n, column.values.dtype)
    values[sub] = column.values
    if isinstance(column, StringColumn):
        starts = np.zeros(n, np.int64)
        starts[sub] = column.starts
        return StringColumn(column.kind, values, present, starts)
    if isinstance(column, EnumColumn):
        return EnumColumn(column.kind, values, present, column.symbols)
    return Column(column.kind, values, present)


class _Compiler:
    """Turns a record schema into a list of (field names, reader) steps."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.widest = 0  # the widest fixed-width block, bytes

    def reader(self, schema: Any, path: str) -> Reader | tuple[str]:  # noqa: PLR0911  # per type
        """A reader, or ``(kind,)`` for a fixed-width primitive (merged into blocks)."""
        if isinstance(schema, list):
            return self._union(schema, path)
        if isinstance(schema, str):
            if schema in _FIXED_WIDTH:
                return (schema,)
            if schema in ("long", "int"):
                return _long_reader(schema, "")
            if schema in ("string", "bytes"):
                return _string_reader("", utf8=schema == "string")
            if schema in self.named:
                return self.reader(self.named[schema], path)
            raise UnsupportedSchemaError(f"{path}: type {schema!r} is not decoded column-wise")
        kind = schema.get("type")
        logical = str(schema.get("logicalType", ""))
        if kind == "enum":
            self._name(schema)
            return _enum_reader(tuple(schema["symbols"]))
        if kind in ("long", "int"):
            return _long_reader(kind, logical)
        if kind == "string":
            return _string_reader(logical)
        if kind in _FIXED_WIDTH or kind == "bytes":
            return self.reader(kind, path)
        raise UnsupportedSchemaError(f"{path}: type {kind!r} is not decoded column-wise")

    def _name(self, schema: Mapping[str, Any]) -> None:
        name = str(schema["name"])
        self.named[name] = schema
        self.named[name.rsplit(".", 1)[-1]] = schema
        if "namespace" in schema and "." not in name:
            self.named[f"{schema['namespace']}.{name}"] = schema

    def _union(self, branches: list[Any], path: str) -> Reader:
        nulls = [i for i, b in enumerate(branches) if b == "null"]
        if len(branches) != 2 or len(nulls) != 1:
            raise UnsupportedSchemaError(f"{path}: only [null, T] unions are decoded column-wise")
        value_branch = 1 - nulls[0]
        inner = self.reader(branches[value_branch], path)
        if isinstance(inner, tuple):
            inner = _fixed_block(inner)
        return _optional_reader(inner, value_branch)

    def steps(self, schema: Mapping[str, Any]) -> list[tuple[tuple[str, ...], Reader]]:
        if schema.get("type") != "record":
            raise UnsupportedSchemaError("a columnar decoder needs a record schema")
        self._name(schema)
        steps: list[tuple[tuple[str, ...], Reader]] = []
        block: list[tuple[str, str]] = []  # (field name, fixed-width kind)

        def close_block() -> None:
            if block:
                names, kinds = zip(*block, strict=True)
                self.widest = max(self.widest, block_width(kinds))
                steps.append((tuple(names), _fixed_block(kinds)))
                block.clear()

        for field in schema["fields"]:
            name = str(field["name"])
            reader = self.reader(field["type"], f"{schema['name']}.{name}")
            if isinstance(reader, tuple):
                block.append((name, reader[0]))
                continue
            close_block()
            steps.append(((name,), reader))
        close_block()
        return steps


_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").fullmatch


class ColumnarDecoder:
    """Decodes single-object values of one writer schema (``fingerprint``) column-wise."""

    def __init__(self, schema: Mapping[str, Any], fingerprint: bytes) -> None:
        if len(fingerprint) != 8:
            raise UnsupportedSchemaError(f"a fingerprint is 8 bytes, got {len(fingerprint)}")
        self.name = str(schema.get("name", ""))
        self.fingerprint = fingerprint
        compiler = _Compiler()
        self._steps = compiler.steps(schema)
        self._pad = _PAD + compiler.widest
        self.field_names = tuple(n for names, _ in self._steps for n in names)
        bad_names = [n for n in self.field_names if _VALID_NAME(n) is None]
        if bad_names:
            raise UnsupportedSchemaError(f"invalid field names {bad_names}")
        self._header = int.from_bytes(SINGLE_OBJECT_MAGIC + fingerprint[:6], "little")
        self._header_tail = int.from_bytes(fingerprint[6:], "little")

    def decode(self, values: Sequence[object]) -> ColumnBatch:
        """Every value's columns; rows this decoder cannot decode exactly are not ``ok``."""
        count = len(values)
        usable = [v if type(v) is bytes else b"" for v in values]
        lengths = np.fromiter(map(len, usable), np.int64, count)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        batch = _Batch(usable, ends, self._pad)
        head = batch.at(starts, 16).view("<u8")  # the header and 6 bytes after it
        framed = (
            (head[:, 0] == np.uint64(self._header))
            & ((head[:, 1] & np.uint64(0xFFFF)) == np.uint64(self._header_tail))
            & (lengths >= HEADER_SIZE)
        )
        batch.bad = ~framed
        pos = np.where(framed, starts + HEADER_SIZE, ends)
        rows = np.arange(count)
        columns: dict[str, Column] = {}
        for names, read in self._steps:
            column, after, bad = read(batch, rows, pos)
            batch.bad |= bad | (after > ends)
            pos = np.minimum(after, ends)
            parts = column.parts if isinstance(column, _Block) else [column]
            columns.update(
                (name, part) for name, part in zip(names, parts, strict=True) if part is not None
            )
        ok = ~batch.bad & (pos == ends)
        return ColumnBatch(ok, columns, batch.data, self.field_names, batch.buf)
