"""The audit reports the Activations view browses: ``flowerhub audit`` output directories.

A report is a directory holding ``verdicts.json`` (the verdict rows ``flowerhub audit``
writes; see ``analytics.audit.report``) and usually ``report.html`` with its ``plots/``.
:class:`ReportIndex` finds them under the configured roots (a root may be a report itself, or
hold reports up to ``MAX_DEPTH`` levels down, as a demo run directory holds ``report/``),
summarises each (overall status, per activation: product, PASS/FAIL counts, worst status)
and serves its files read-only: a path outside the report directory is refused.

Scanning is cheap (a glob and the JSON of each report, re-read only when its mtime changes),
so the index is refreshed on each request: a report written while the UI runs shows up.
A broken ``verdicts.json`` is listed with its error, never hidden. A report is titled as the
audit titled it (``summary.json``: the activation and fleet), else by where it sits.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERDICTS = "verdicts.json"
SUMMARY = "summary.json"  # the audit's title and overall verdict (analytics.audit.report)
MAX_DEPTH = 3
MAX_REPORTS = 500
_RANK = {"PASS": 0, "WARN": 1, "ERROR": 2, "FAIL": 2}


@dataclass(frozen=True)
class Report:
    """One audit report directory and what its verdicts say."""

    report_id: str
    path: Path
    title: str
    mtime: float
    rows: tuple[dict[str, Any], ...]
    error: str | None = None
    has_html: bool = False
    activations: tuple[dict[str, Any], ...] = field(default=())

    @property
    def status(self) -> str:
        if self.error is not None:
            return "ERROR"
        statuses = [str(r.get("status", "ERROR")) for r in self.rows]
        if not statuses:
            return "EMPTY"
        return max(statuses, key=lambda s: _RANK.get(s, 2))

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.report_id,
            "title": self.title,
            "path": str(self.path),
            "mtime": self.mtime,
            "status": self.status,
            "error": self.error,
            "verdicts": len(self.rows),
            "failed": sum(1 for r in self.rows if r.get("status") != "PASS"),
            "html": f"/reports/{self.report_id}/report.html" if self.has_html else None,
            "activations": list(self.activations),
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "rows": list(self.rows)}


def _activations(rows: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    by_id: dict[str, dict[str, Any]] = {}
    for row in rows:
        aid = str(row.get("activation", "?"))
        entry = by_id.setdefault(
            aid, {"activation": aid, "product": row.get("product"), "pass": 0, "fail": 0}
        )
        status = str(row.get("status", "ERROR"))
        entry["pass" if status == "PASS" else "fail"] += 1
    for entry in by_id.values():
        entry["status"] = "PASS" if entry["fail"] == 0 else "FAIL"
    return tuple(by_id.values())


def report_title(path: Path, fallback: str) -> str:
    """The title the audit gave the report (``summary.json``: the activation and fleet),
    else ``fallback`` (where it sits); a broken summary falls back too."""
    try:
        title = json.loads((path / SUMMARY).read_text(encoding="utf-8")).get("title")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return fallback
    return title if isinstance(title, str) and title.strip() else fallback


def read_report(path: Path, report_id: str, title: str) -> Report:
    """The report in directory ``path`` (its ``verdicts.json`` checked to be a list of rows)."""
    verdicts = path / VERDICTS
    mtime = verdicts.stat().st_mtime
    has_html = (path / "report.html").is_file()
    title = report_title(path, title)
    try:
        data = json.loads(verdicts.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Report(report_id, path, title, mtime, (), f"{VERDICTS}: {exc}", has_html)
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        return Report(
            report_id, path, title, mtime, (), f"{VERDICTS}: not a list of rows", has_html
        )
    rows = tuple(data)
    return Report(report_id, path, title, mtime, rows, None, has_html, _activations(rows))


def _walk(root: Path, depth: int) -> Iterable[Path]:
    if (root / VERDICTS).is_file():
        yield root
    if depth <= 0:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())
    except OSError:
        return
    for child in children:
        yield from _walk(child, depth - 1)


class ReportIndex:
    """The reports under ``roots`` (see the module doc)."""

    def __init__(self, roots: Iterable[Path]) -> None:
        self.roots = [Path(os.path.abspath(r)) for r in roots]
        self._cache: dict[Path, Report] = {}

    @staticmethod
    def id_of(path: Path) -> str:
        return hashlib.sha256(str(path).encode()).hexdigest()[:16]

    def _title(self, path: Path) -> str:
        for root in self.roots:
            if path == root:
                return f"{root.parent.name}/{root.name}" if root.parent.name else root.name
            if path.is_relative_to(root):
                return f"{root.name}/{path.relative_to(root)}"
        return path.name

    def scan(self) -> list[Report]:
        """Every report, newest first."""
        found: dict[Path, Report] = {}
        for root in self.roots:
            for path in _walk(root, MAX_DEPTH):
                if path in found or len(found) >= MAX_REPORTS:
                    continue
                try:
                    mtime = (path / VERDICTS).stat().st_mtime
                except OSError:
                    continue
                cached = self._cache.get(path)
                if cached is None or cached.mtime != mtime:
                    cached = read_report(path, self.id_of(path), self._title(path))
                found[path] = cached
        self._cache = found
        return sorted(found.values(), key=lambda r: r.mtime, reverse=True)

    def get(self, report_id: str) -> Report | None:
        return next((r for r in self.scan() if r.report_id == report_id), None)

    def file(self, report_id: str, relative: str) -> Path | None:
        """A file inside a report directory, or None (unknown report, outside it, missing)."""
        report = self.get(report_id)
        if report is None:
            return None
        base = report.path.resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base) or not target.is_file():
            return None
        return target
