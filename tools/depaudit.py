"""``make audit``: pip-audit over the installed environment, ending in one verdict line.

pip-audit asks an advisory service about every distribution installed in the environment
that runs it (the project itself, installed editable, is skipped). The services are tried
in order: ``pypi`` (PyPI's JSON API), then ``osv`` (api.osv.dev). A service that knows none
of the installed packages (a package index without the JSON API answers "not found" for
every one) or cannot be reached has not answered; the first service that answers decides.

The last line printed is the verdict, one of::

    dependency audit: 87 packages checked against pypi: no known vulnerabilities
    dependency audit: 87 packages checked against pypi: 2 known vulnerabilities in 1 package
    dependency audit NOT PERFORMED: no advisory service answered (pypi: ...; osv: ...)

A package the answering service does not know is named on the line (``not checked: ...``).

Exit status:

- 0: audited and no known vulnerability, or NOT PERFORMED (the line says so; never a
  silent pass);
- 1: audited and known vulnerabilities found (listed above the line);
- 2: NOT PERFORMED while ``FLOWERHUB_AUDIT_REQUIRED=1`` (a CI with access to an advisory
  service that must not pass without one).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICES = ("pypi", "osv")
TIMEOUT_S = 15  # pip-audit's per-request socket timeout
EXIT_CLEAN, EXIT_VULNERABLE, EXIT_NOT_PERFORMED = 0, 1, 2


@dataclass(frozen=True)
class Vulnerability:
    package: str
    version: str
    id: str
    fix_versions: tuple[str, ...]


@dataclass
class ServiceResult:
    """What one service said: the packages it checked, those it did not, or why it failed."""

    service: str
    checked: list[str] = field(default_factory=list)
    unchecked: dict[str, str] = field(default_factory=dict)  # package -> pip-audit's reason
    vulnerabilities: list[Vulnerability] = field(default_factory=list)
    error: str | None = None

    @property
    def answered(self) -> bool:
        return self.error is None and bool(self.checked)

    def why_not(self) -> str:
        if self.error is not None:
            return self.error
        return f"none of {len(self.unchecked)} packages found"


def parse_report(service: str, report: dict[str, Any]) -> ServiceResult:
    """A pip-audit JSON report (``--format json``) as a :class:`ServiceResult`."""
    result = ServiceResult(service)
    for dep in report.get("dependencies", []):
        name = str(dep["name"])
        if "skip_reason" in dep:
            result.unchecked[name] = str(dep["skip_reason"])
            continue
        result.checked.append(name)
        for vuln in dep.get("vulns", []):
            fixes = tuple(str(v) for v in vuln.get("fix_versions", []))
            result.vulnerabilities.append(
                Vulnerability(name, str(dep.get("version", "?")), str(vuln["id"]), fixes)
            )
    return result


def verdict(results: Sequence[ServiceResult], required: bool) -> tuple[list[str], int]:
    """The lines to print (the verdict last) and the exit status."""
    for result in results:
        if not result.answered:
            continue
        lines = [
            f"  {v.package} {v.version}: {v.id}"
            + (f" (fixed in {', '.join(v.fix_versions)})" if v.fix_versions else " (no fix yet)")
            for v in result.vulnerabilities
        ]
        n_checked = len(result.checked)
        line = f"dependency audit: {n_checked} package{'' if n_checked == 1 else 's'} checked"
        line += f" against {result.service}"
        if result.vulnerabilities:
            packages = {v.package for v in result.vulnerabilities}
            n, k = len(result.vulnerabilities), len(packages)
            line += (
                f": {n} known vulnerabilit{'y' if n == 1 else 'ies'}"
                f" in {k} package{'' if k == 1 else 's'}"
            )
        else:
            line += ": no known vulnerabilities"
        if result.unchecked:
            line += f"; not checked (unknown to {result.service}): "
            line += ", ".join(sorted(result.unchecked))
        return [*lines, line], EXIT_VULNERABLE if result.vulnerabilities else EXIT_CLEAN
    reasons = "; ".join(f"{r.service}: {r.why_not()}" for r in results)
    line = f"dependency audit NOT PERFORMED: no advisory service answered ({reasons})"
    return [line], EXIT_NOT_PERFORMED if required else EXIT_CLEAN


_HOST = re.compile(r"host='([^']+)'")


def failure(text: str) -> str:
    """pip-audit's last words, short: a connection failure names the host it could not reach."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return "pip-audit failed without output"
    last = lines[-1]
    host = _HOST.search(last)
    if "ConnectionError" in last and host:
        return f"cannot reach {host.group(1)}"
    return last[:200]


def run_pip_audit(service: str, python: str = sys.executable) -> ServiceResult:
    """Run pip-audit against ``service`` over the environment of ``python``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        args = [python, "-m", "pip_audit", "--vulnerability-service", service]
        args += ["--format", "json", "--output", str(out), "--progress-spinner", "off"]
        args += ["--skip-editable", "--timeout", str(TIMEOUT_S)]
        try:
            proc = subprocess.run(args, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            return ServiceResult(service, error="no answer within 600 s")
        if not out.exists():  # pip-audit failed before reporting: its last words say why
            return ServiceResult(service, error=failure(proc.stderr or proc.stdout))
        try:
            report = json.loads(out.read_text(encoding="utf-8"))
        except ValueError as exc:
            return ServiceResult(service, error=f"unreadable pip-audit report: {exc}")
    return parse_report(service, report)


def audit(
    services: Sequence[str] = SERVICES,
    run: Callable[[str], ServiceResult] = run_pip_audit,
) -> list[ServiceResult]:
    """Ask the services in order until one answers."""
    results = []
    for service in services:
        result = run(service)
        results.append(result)
        if result.answered:
            break
    return results


def main() -> int:
    required = os.environ.get("FLOWERHUB_AUDIT_REQUIRED", "") == "1"
    lines, status = verdict(audit(), required)
    for line in lines:
        print(line)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
