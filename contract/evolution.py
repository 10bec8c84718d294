"""Schema evolution: the history rule and the BACKWARD_TRANSITIVE check.

- History rule: the current ``<domain>/<Event>.avsc`` must equal (as JSON) its newest
  ``history/<Event>/v<N>.avsc``. Changing a schema therefore always adds ``v<N+1>``
  (``freeze``, or ``flowerhub events freeze NAME``), so the bytes of every released version
  stay decodable by fingerprint forever.
- BACKWARD_TRANSITIVE: data written with *every* historical version must be readable with the
  current schema. ``reader_problems(writer, reader)`` implements the Avro specification's
  schema-resolution rules statically (promotions, record fields by name or alias with
  defaults, enum symbols or enum default, union branch matching, array/map items, fixed
  sizes, named-type names). The contract tests also write generated records with each old
  version and read them with fastavro's resolution, so the static check and the real reader
  must agree.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from contract.registry import (
    HISTORY_DIR,
    NAMESPACE,
    SCHEMA_ROOT,
    SchemaRegistry,
    current_schema_files,
    history_files,
    read_schema_json,
    released_form,
)

# writer type -> reader types it may be read as (Avro spec, "Schema Resolution")
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"int", "long", "float", "double"}),
    "long": frozenset({"long", "float", "double"}),
    "float": frozenset({"float", "double"}),
    "double": frozenset({"double"}),
    "string": frozenset({"string", "bytes"}),
    "bytes": frozenset({"bytes", "string"}),
    "null": frozenset({"null"}),
    "boolean": frozenset({"boolean"}),
}
_NAMED = ("record", "error", "enum", "fixed")


class _Names:
    """Named types of one schema, registered as the walk meets their definitions."""

    def __init__(self) -> None:
        self.types: dict[str, Mapping[str, Any]] = {}

    def define(self, schema: Mapping[str, Any], namespace: str) -> str:
        name = str(schema["name"])
        full = name if "." in name else f"{schema.get('namespace', namespace)}.{name}"
        self.types[full] = schema
        return full

    def resolve(self, schema: Any, namespace: str) -> Any:
        """Replace a reference (a name string) by its definition; keep anything else."""
        if isinstance(schema, str) and schema not in _PROMOTIONS:
            full = schema if "." in schema else f"{namespace}.{schema}"
            return self.types.get(full, schema)
        return schema


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return str(schema["type"])


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


class _Checker:
    def __init__(self) -> None:
        self.writer_names = _Names()
        self.reader_names = _Names()
        self.seen: set[tuple[str, str]] = set()  # named pairs already compared (recursion)

    def problems(self, writer: Any, reader: Any, path: str) -> list[str]:
        writer = self._normalize(writer, self.writer_names)
        reader = self._normalize(reader, self.reader_names)
        if isinstance(writer, dict) and writer["type"] in _NAMED:
            self.writer_names.define(writer, NAMESPACE)
        if isinstance(reader, dict) and reader["type"] in _NAMED:
            self.reader_names.define(reader, NAMESPACE)
        wkind, rkind = _kind(writer), _kind(reader)
        if wkind == "union":
            # every branch the writer may have used must be readable
            out: list[str] = []
            for index, branch in enumerate(writer):
                out.extend(self.problems(branch, reader, f"{path}<branch {index}>"))
            return out
        if rkind == "union":
            for branch in reader:
                if not self._probe(writer, branch, path):
                    return []
            return [f"{path}: no branch of the reader union reads writer type {wkind}"]
        return self._same_kind(writer, reader, wkind, rkind, path)

    @staticmethod
    def _normalize(schema: Any, names: _Names) -> Any:
        """Unwrap ``{"type": <schema>}`` and resolve named-type references."""
        while isinstance(schema, dict) and (
            not isinstance(schema["type"], str)
            or schema["type"] not in (*_PROMOTIONS, *_NAMED, "array", "map")
        ):
            schema = schema["type"]
        return names.resolve(schema, NAMESPACE)

    def _probe(self, writer: Any, reader: Any, path: str) -> list[str]:
        """Problems of one union branch, without leaving the named-type registrations."""
        saved_w = dict(self.writer_names.types)
        saved_r = dict(self.reader_names.types)
        found = self.problems(writer, reader, path)
        if found:
            self.writer_names.types, self.reader_names.types = saved_w, saved_r
        return found

    def _same_kind(  # noqa: PLR0911  # one return per Avro rule
        self, writer: Any, reader: Any, wkind: str, rkind: str, path: str
    ) -> list[str]:
        if wkind in _PROMOTIONS:
            if rkind not in _PROMOTIONS[wkind]:
                return [f"{path}: writer {wkind} cannot be read as {rkind}"]
            return []
        if wkind != rkind and not (wkind in ("record", "error") and rkind in ("record", "error")):
            return [f"{path}: writer {wkind} cannot be read as {rkind}"]
        if wkind == "array":
            return self.problems(writer["items"], reader["items"], f"{path}[]")
        if wkind == "map":
            return self.problems(writer["values"], reader["values"], f"{path}{{}}")
        if _short(writer["name"]) != _short(reader["name"]) and _short(writer["name"]) not in {
            _short(a) for a in reader.get("aliases", [])
        }:
            return [f"{path}: named type {writer['name']} read as {reader['name']}"]
        if wkind == "fixed":
            if writer["size"] != reader["size"]:
                return [f"{path}: fixed size {writer['size']} read as {reader['size']}"]
            return []
        if wkind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [f"{path}: reader enum lacks symbols {missing} and has no default"]
            return []
        return self._record(writer, reader, path)

    def _record(self, writer: Mapping[str, Any], reader: Mapping[str, Any], path: str) -> list[str]:
        pair = (str(writer["name"]), str(reader["name"]))
        if pair in self.seen:
            return []
        self.seen.add(pair)
        out: list[str] = []
        by_name = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            names = [field["name"], *field.get("aliases", [])]
            match = next((by_name[n] for n in names if n in by_name), None)
            where = f"{path}.{field['name']}"
            if match is None:
                if "default" not in field:
                    out.append(f"{where}: added without a default")
                continue
            out.extend(self.problems(match["type"], field["type"], where))
        return out


def reader_problems(writer: Mapping[str, Any], reader: Mapping[str, Any]) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can)."""
    return _Checker().problems(dict(writer), dict(reader), str(reader.get("name", "")))


def check_backward_transitive(registry: SchemaRegistry) -> list[str]:
    """Problems reading any historical version of any event with its current schema."""
    out: list[str] = []
    for name in registry.names():
        current = registry.current(name)
        for old in registry.history(name):
            out.extend(
                f"{name} v{old.version} -> current: {problem}"
                for problem in reader_problems(old.raw, current.raw)
            )
    return out


def check_history(root: Path = SCHEMA_ROOT) -> list[str]:
    """Current schemas without an identical newest history copy (empty: all frozen)."""
    out: list[str] = []
    for path in current_schema_files(root):
        versions = history_files(root, path.stem)
        if not versions:
            out.append(f"{path.stem}: no {HISTORY_DIR}/{path.stem}/v1.avsc")
            continue
        newest_version, newest = versions[-1]
        if released_form(read_schema_json(newest)) != released_form(read_schema_json(path)):
            out.append(
                f"{path.stem}: {path.relative_to(root)} differs from "
                f"{newest.relative_to(root)}; freeze it as v{newest_version + 1}"
            )
    return out


def freeze(name: str, root: Path = SCHEMA_ROOT) -> Path | None:
    """Copy the current schema of ``name`` to the next history version.

    Returns the new file, or None when the newest history version already equals the current
    schema. Refuses (ValueError) when the change is not BACKWARD_TRANSITIVE.
    """
    paths = [p for p in current_schema_files(root) if p.stem == name]
    if not paths:
        raise ValueError(f"no current schema {name}.avsc under {root}")
    current = read_schema_json(paths[0])
    versions = history_files(root, name)
    if versions and released_form(read_schema_json(versions[-1][1])) == released_form(current):
        return None
    problems = [
        f"v{version}: {problem}"
        for version, path in versions
        for problem in reader_problems(read_schema_json(path), current)
    ]
    if problems:
        raise ValueError(f"{name} is not BACKWARD_TRANSITIVE: " + "; ".join(problems))
    target = root / HISTORY_DIR / name / f"v{len(versions) + 1}.avsc"
    target.parent.mkdir(parents=True, exist_ok=True)
    # the released form: wire shape, defaults and docs, without the check metadata
    target.write_text(json.dumps(released_form(current), indent=2, ensure_ascii=False) + "\n")
    json.loads(target.read_text(encoding="utf-8"))  # the copy is readable
    return target
