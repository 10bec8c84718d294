"""Compare two runs of the pipeline, topic by topic and key by key (pure: no Kafka).

Typical use: replay the inputs into a copy, run the streams worker on the copy, then compare
its outputs with the original outputs. Per topic and per key, the two sequences of decoded
events are aligned (``difflib.SequenceMatcher``, no junk heuristics) after dropping the
fields that legitimately differ between runs (``event_id``, ``event_time``, ``ingest_time``
by default, plus any configured ``field`` or ``topic:field``). Each left-over difference is
*missing* (only on the left), *added* (only on the right) or *changed* (aligned, with the
fields that differ), with counts and the first examples.
"""

from __future__ import annotations

import difflib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

DEFAULT_IGNORED: frozenset[str] = frozenset({"event_id", "event_time", "ingest_time"})
_MISSING = object()


class DiffOptionsError(ValueError):
    """Unusable diff options."""


@dataclass(frozen=True)
class DiffEvent:
    """One event of one side: logical topic (prefix removed), key, decoded record or raw bytes."""

    topic: str
    key: bytes | None
    record: Mapping[str, object] | None
    value: bytes | None = None


@dataclass(frozen=True)
class DiffOptions:
    """``ignore``: field names dropped everywhere, or ``topic:field`` for one topic."""

    ignore: frozenset[str] = DEFAULT_IGNORED
    max_examples: int = 3

    def __post_init__(self) -> None:
        if self.max_examples < 0:
            raise DiffOptionsError("max_examples must be >= 0")
        for item in self.ignore:
            if not item or item.startswith(":") or item.endswith(":"):
                raise DiffOptionsError(f"bad ignore entry {item!r}: use FIELD or TOPIC:FIELD")

    def ignored_for(self, topic: str) -> frozenset[str]:
        fields = {i for i in self.ignore if ":" not in i}
        fields |= {i.split(":", 1)[1] for i in self.ignore if i.split(":", 1)[0] == topic}
        return frozenset(fields)


@dataclass(frozen=True)
class FieldChange:
    field: str
    left: object
    right: object


@dataclass(frozen=True)
class Example:
    """One difference: where (key, position in each side's key sequence) and what."""

    key: str
    left_index: int | None
    right_index: int | None
    left: Mapping[str, object] | None = None
    right: Mapping[str, object] | None = None
    changes: tuple[FieldChange, ...] = ()


@dataclass
class TopicDiff:
    topic: str
    left_events: int = 0
    right_events: int = 0
    keys: int = 0
    equal: int = 0
    missing: int = 0
    added: int = 0
    changed: int = 0
    missing_examples: list[Example] = field(default_factory=list)
    added_examples: list[Example] = field(default_factory=list)
    changed_examples: list[Example] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.missing == self.added == self.changed == 0


@dataclass
class DiffReport:
    topics: list[TopicDiff]

    @property
    def identical(self) -> bool:
        return all(t.identical for t in self.topics)

    def as_json(self) -> dict[str, object]:
        def example(e: Example) -> dict[str, object]:
            return {
                "key": e.key,
                "left_index": e.left_index,
                "right_index": e.right_index,
                "left": e.left,
                "right": e.right,
                "changes": [[c.field, c.left, c.right] for c in e.changes],
            }

        return {
            "identical": self.identical,
            "topics": [
                {
                    "topic": t.topic,
                    "left_events": t.left_events,
                    "right_events": t.right_events,
                    "keys": t.keys,
                    "equal": t.equal,
                    "missing": t.missing,
                    "added": t.added,
                    "changed": t.changed,
                    "missing_examples": [example(e) for e in t.missing_examples],
                    "added_examples": [example(e) for e in t.added_examples],
                    "changed_examples": [example(e) for e in t.changed_examples],
                }
                for t in self.topics
            ],
        }

    def to_text(self) -> str:
        lines = []
        for t in self.topics:
            status = "same" if t.identical else "DIFFERENT"
            lines.append(
                f"{t.topic}: {status}: left {t.left_events}, right {t.right_events}, "
                f"keys {t.keys}, equal {t.equal}, missing {t.missing}, added {t.added}, "
                f"changed {t.changed}"
            )
            for kind, examples in (
                ("missing", t.missing_examples),
                ("added", t.added_examples),
                ("changed", t.changed_examples),
            ):
                for e in examples:
                    where = f"key {e.key} left #{e.left_index} right #{e.right_index}"
                    if e.changes:
                        what = "; ".join(f"{c.field}: {c.left!r} -> {c.right!r}" for c in e.changes)
                    else:
                        what = json.dumps(e.left if e.left is not None else e.right, default=str)
                    lines.append(f"  {kind}: {where}: {what}")
        lines.append("identical" if self.identical else "differences found")
        return "\n".join(lines)


def key_text(key: bytes | None) -> str:
    if key is None:
        return "<null>"
    return key.decode("utf-8", errors="backslashreplace")


def normalize(event: DiffEvent, ignored: frozenset[str]) -> dict[str, object]:
    """The record without ignored fields; undecodable events compare by their raw bytes."""
    if event.record is None:
        return {"__raw__": None if event.value is None else event.value.hex()}
    return {k: v for k, v in event.record.items() if k not in ignored}


def _canonical(record: Mapping[str, object]) -> str:
    return json.dumps(record, sort_keys=True, default=str, separators=(",", ":"))


def field_changes(
    left: Mapping[str, object], right: Mapping[str, object]
) -> tuple[FieldChange, ...]:
    """Fields whose values differ (a field absent on one side shows as ``None``)."""
    changes = []
    for name in sorted(set(left) | set(right)):
        a, b = left.get(name, _MISSING), right.get(name, _MISSING)
        if a is _MISSING or b is _MISSING or _canonical({"v": a}) != _canonical({"v": b}):
            changes.append(
                FieldChange(name, None if a is _MISSING else a, None if b is _MISSING else b)
            )
    return tuple(changes)


def _by_key(
    events: Iterable[DiffEvent], ignored: Mapping[str, frozenset[str]]
) -> dict[str, dict[str, list[dict[str, object]]]]:
    grouped: dict[str, dict[str, list[dict[str, object]]]] = defaultdict(lambda: defaultdict(list))
    for event in events:
        grouped[event.topic][key_text(event.key)].append(normalize(event, ignored[event.topic]))
    return grouped


def _note(examples: list[Example], limit: int, example: Example) -> None:
    if len(examples) < limit:
        examples.append(example)


def diff_key(
    result: TopicDiff,
    key: str,
    left: Sequence[dict[str, object]],
    right: Sequence[dict[str, object]],
    limit: int,
) -> None:
    """Align one key's two sequences and add the outcome to ``result``."""
    matcher = difflib.SequenceMatcher(
        None, [_canonical(r) for r in left], [_canonical(r) for r in right], autojunk=False
    )
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            result.equal += i2 - i1
            continue
        pairs = min(i2 - i1, j2 - j1) if tag == "replace" else 0
        for n in range(pairs):
            result.changed += 1
            _note(
                result.changed_examples,
                limit,
                Example(
                    key,
                    i1 + n,
                    j1 + n,
                    left[i1 + n],
                    right[j1 + n],
                    field_changes(left[i1 + n], right[j1 + n]),
                ),
            )
        for i in range(i1 + pairs, i2):
            result.missing += 1
            _note(result.missing_examples, limit, Example(key, i, None, left=left[i]))
        for j in range(j1 + pairs, j2):
            result.added += 1
            _note(result.added_examples, limit, Example(key, None, j, right=right[j]))


def diff_events(
    left: Iterable[DiffEvent], right: Iterable[DiffEvent], options: DiffOptions | None = None
) -> DiffReport:
    """Compare two runs (each side's events in their per-partition order)."""
    options = options or DiffOptions()
    left_events, right_events = list(left), list(right)
    topics = sorted({e.topic for e in left_events} | {e.topic for e in right_events})
    ignored = {topic: options.ignored_for(topic) for topic in topics}
    lefts, rights = _by_key(left_events, ignored), _by_key(right_events, ignored)
    report = DiffReport([])
    for topic in topics:
        result = TopicDiff(topic)
        lk, rk = lefts.get(topic, {}), rights.get(topic, {})
        result.left_events = sum(len(v) for v in lk.values())
        result.right_events = sum(len(v) for v in rk.values())
        keys = sorted(set(lk) | set(rk))
        result.keys = len(keys)
        for key in keys:
            diff_key(result, key, lk.get(key, []), rk.get(key, []), options.max_examples)
        report.topics.append(result)
    return report
