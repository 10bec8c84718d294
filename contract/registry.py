"""The schema registry: every event's current schema and every earlier version, parsed once.

Layout on disk (``SCHEMA_ROOT`` is this package's directory):

- ``<domain>/<Event>.avsc``: the current schema of ``Event`` (the contract).
- ``history/<Event>/v<N>.avsc``: frozen copies of every released version, ``v1`` first.
  The current schema equals the newest history file; ``contract.evolution`` checks that, and
  that every version stays readable by the current one (BACKWARD_TRANSITIVE).

Fingerprints are CRC-64-AVRO (Rabin) over the Parsing Canonical Form, as 8 little-endian
bytes: the form written after ``C3 01`` by Avro single-object encoding.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form

from contract.errors import SchemaDefinitionError, UnknownEventError

SCHEMA_ROOT = Path(__file__).resolve().parent
HISTORY_DIR = "history"
NAMESPACE = "flowerhub"
_VERSION_RE = re.compile(r"^v([1-9][0-9]*)\.avsc$")

# Avro types whose encoding may be zero bytes long: an array of them lets a few garbage bytes
# claim billions of items, so such schemas are refused (see ``min_encoded_size``).
_ZERO_SIZE_PRIMITIVES = frozenset({"null"})
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def fingerprint(schema: Mapping[str, Any] | str | list[Any]) -> bytes:
    """CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, 8 bytes little-endian."""
    canonical = to_parsing_canonical_form(schema)  # type: ignore[arg-type]  # fastavro's Schema alias is narrower than JSON
    return bytes.fromhex(_fastavro_fingerprint(canonical, "CRC-64-AVRO"))


@dataclass(frozen=True, eq=False)
class EventSchema:
    """One version of one event's schema, parsed once."""

    name: str  # record name without namespace, e.g. "SiteTelemetry"
    version: int  # 1-based; the current schema carries the number of its history copy
    path: Path
    raw: Mapping[str, Any] = field(repr=False)  # the JSON as written
    parsed: Any = field(repr=False)  # fastavro.parse_schema(raw)
    canonical_form: str = field(repr=False)
    fingerprint: bytes = field(repr=False)

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()


@dataclass(frozen=True, eq=False)
class Resolution:
    """How to read bytes written with ``writer``: the parsed (writer, reader) pair.

    ``reader`` is None when the writer is the current schema (no resolution needed).
    """

    writer: EventSchema
    current: EventSchema
    reader: Any


#: Key of the project's own metadata in a schema (the checks typed records apply:
#: ``contract.codegen``). Avro ignores it, it is not part of the Parsing Canonical Form, and
#: history files do not carry it: ``released_form`` compares schemas without it.
CHECKS_KEY = "flowerhub"


def released_form(schema: Any) -> Any:
    """``schema`` without the project's check metadata (``CHECKS_KEY``) at any depth: what a
    history file freezes (the wire shape, defaults and docs)."""
    if isinstance(schema, dict):
        return {k: released_form(v) for k, v in schema.items() if k != CHECKS_KEY}
    if isinstance(schema, list):
        return [released_form(v) for v in schema]
    return schema


def read_schema_json(path: Path) -> dict[str, Any]:
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaDefinitionError(f"{path}: unreadable schema ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SchemaDefinitionError(f"{path}: an event schema must be a JSON record schema")
    return raw


def min_encoded_size(schema: Any, named: dict[str, int] | None = None) -> int:
    """The fewest bytes a value of ``schema`` can encode to (named types resolved as met)."""
    named = {} if named is None else named
    if isinstance(schema, list):  # union: the branch index takes at least one byte
        return 1
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return 0 if schema in _ZERO_SIZE_PRIMITIVES else 1
        return named.get(schema, named.get(f"{NAMESPACE}.{schema}", 1))
    kind = schema["type"]
    if kind in _PRIMITIVES:
        return 0 if kind in _ZERO_SIZE_PRIMITIVES else 1
    if kind in ("array", "map"):
        size = 1  # the block count
    elif kind == "enum":
        size = 1
    elif kind == "fixed":
        size = int(schema["size"])
    elif kind in ("record", "error"):
        size = sum(min_encoded_size(f["type"], named) for f in schema["fields"])
    else:
        size = min_encoded_size(kind, named)
    if kind in ("enum", "fixed", "record", "error"):
        name = schema["name"]
        full = name if "." in name else f"{schema.get('namespace', NAMESPACE)}.{name}"
        named[full] = size
        named[name] = size
    return size


def check_decodable(schema: Any, where: str, named: dict[str, int] | None = None) -> None:
    """Refuse arrays whose items can encode to zero bytes (garbage could loop for 2**63 items)."""
    named = {} if named is None else named
    if isinstance(schema, list):
        for branch in schema:
            check_decodable(branch, where, named)
        return
    if not isinstance(schema, dict):
        return
    kind = schema["type"]
    if kind == "array":
        check_decodable(schema["items"], where, named)
        if min_encoded_size(schema["items"], named) == 0:
            raise SchemaDefinitionError(
                f"{where}: array items can encode to zero bytes; such arrays cannot be "
                "decoded safely from untrusted bytes"
            )
    elif kind == "map":
        check_decodable(schema["values"], where, named)
    elif kind in ("record", "error"):
        for f in schema["fields"]:
            check_decodable(f["type"], f"{where}.{f['name']}", named)
    min_encoded_size(schema, named)  # records named types for later references


def build_event_schema(raw: Mapping[str, Any], version: int, path: Path) -> EventSchema:
    name = str(raw.get("name", ""))
    if raw.get("namespace") != NAMESPACE or not name or "." in name:
        raise SchemaDefinitionError(
            f"{path}: an event schema needs a plain name and namespace {NAMESPACE!r}"
        )
    try:
        parsed = fastavro.parse_schema(dict(raw))
        canonical = to_parsing_canonical_form(dict(raw))
    except Exception as exc:  # fastavro raises SchemaParseException, ValueError, KeyError...
        raise SchemaDefinitionError(f"{path}: invalid Avro schema ({exc})") from exc
    check_decodable(raw, name)
    return EventSchema(
        name=name,
        version=version,
        path=path,
        raw=raw,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=fingerprint(dict(raw)),
    )


def current_schema_files(root: Path = SCHEMA_ROOT) -> list[Path]:
    """``<domain>/<Event>.avsc`` under ``root``, history excluded, sorted."""
    return sorted(p for p in root.glob("*/*.avsc") if p.parent.name != HISTORY_DIR)


def history_files(root: Path, name: str) -> list[tuple[int, Path]]:
    """``(version, path)`` of ``history/<name>/v<N>.avsc``, oldest first; gaps are an error."""
    folder = root / HISTORY_DIR / name
    found: list[tuple[int, Path]] = []
    for path in folder.glob("*.avsc") if folder.is_dir() else ():
        match = _VERSION_RE.match(path.name)
        if match is None:
            raise SchemaDefinitionError(f"{path}: history files are named v<N>.avsc")
        found.append((int(match.group(1)), path))
    found.sort()
    if [v for v, _ in found] != list(range(1, len(found) + 1)):
        raise SchemaDefinitionError(
            f"{folder}: history versions must be v1..vN without gaps, got "
            f"{[p.name for _, p in found]}"
        )
    return found


class SchemaRegistry:
    """Event name -> current schema; fingerprint -> (writer version, current reader)."""

    def __init__(self, versions: Iterable[EventSchema], current: Iterable[EventSchema]) -> None:
        self._current: dict[str, EventSchema] = {}
        for schema in current:
            if schema.name in self._current:
                raise SchemaDefinitionError(
                    f"event {schema.name} defined twice: {self._current[schema.name].path} "
                    f"and {schema.path}"
                )
            self._current[schema.name] = schema
        self._versions: dict[str, list[EventSchema]] = {n: [] for n in self._current}
        for schema in sorted(versions, key=lambda s: (s.name, s.version)):
            if schema.name not in self._current:
                raise SchemaDefinitionError(
                    f"{schema.path}: history of {schema.name}, which has no current schema"
                )
            self._versions[schema.name].append(schema)
        self._by_fingerprint: dict[bytes, Resolution] = {}
        for name, current_schema in self._current.items():
            # Oldest first, current last: on a shared fingerprint (doc-only change) the
            # newest version wins.
            for writer in [*self._versions[name], current_schema]:
                owner = self._by_fingerprint.get(writer.fingerprint)
                if owner is not None and owner.writer.name != name:
                    raise SchemaDefinitionError(
                        f"{writer.path} and {owner.writer.path} share fingerprint "
                        f"{writer.fingerprint_hex}"
                    )
                same = writer.fingerprint == current_schema.fingerprint
                reader = None if same else current_schema.parsed
                self._by_fingerprint[writer.fingerprint] = Resolution(
                    writer, current_schema, reader
                )

    @classmethod
    def load(cls, root: Path = SCHEMA_ROOT) -> SchemaRegistry:
        """Read ``<domain>/*.avsc`` and ``history/<Event>/v<N>.avsc`` under ``root``."""
        current: list[EventSchema] = []
        versions: list[EventSchema] = []
        for path in current_schema_files(root):
            raw = read_schema_json(path)
            if raw.get("name") != path.stem:
                raise SchemaDefinitionError(f"{path}: record name must equal the file name")
            history: list[EventSchema] = []
            for version, hpath in history_files(root, path.stem):
                hraw = read_schema_json(hpath)
                if hraw.get("name") != path.stem:
                    raise SchemaDefinitionError(f"{hpath}: record name must be {path.stem}")
                history.append(build_event_schema(hraw, version, hpath))
            newest = history[-1] if history else None
            # The current schema is version N when it equals history vN; otherwise it is an
            # unreleased version N+1 (``contract.evolution.check_history`` flags that).
            if newest is not None and released_form(newest.raw) == released_form(raw):
                version = newest.version
            else:
                version = len(history) + 1
            current.append(build_event_schema(raw, version, path))
            versions.extend(history)
        if not current:
            raise SchemaDefinitionError(f"{root}: no <domain>/<Event>.avsc schema files")
        return cls(versions, current)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._current))

    def current(self, name: str) -> EventSchema:
        try:
            return self._current[name]
        except KeyError:
            raise UnknownEventError(
                f"unknown event {name!r}; known: {', '.join(self.names())}"
            ) from None

    def history(self, name: str) -> tuple[EventSchema, ...]:
        """The frozen versions of ``name``, oldest first (the current schema not included)."""
        self.current(name)
        return tuple(self._versions[name])

    def resolution(self, fp: bytes) -> Resolution | None:
        """The cached (writer, reader) pair for a fingerprint, or None when unknown."""
        return self._by_fingerprint.get(fp)

    def fingerprints(self) -> Iterator[tuple[bytes, Resolution]]:
        return iter(self._by_fingerprint.items())

    def __contains__(self, name: object) -> bool:
        return name in self._current

    def __len__(self) -> int:
        return len(self._current)
