"""``make audit`` (tools/depaudit.py): pip-audit's JSON report to one verdict line and a status.

The reports are in pip-audit's own ``--format json`` shape; the run of the real tool against
the real services is ``make audit`` itself (CI calls it).
"""

from __future__ import annotations

from typing import Any

import pytest

from tools.depaudit import (
    EXIT_CLEAN,
    EXIT_NOT_PERFORMED,
    EXIT_VULNERABLE,
    ServiceResult,
    audit,
    failure,
    parse_report,
    verdict,
)

NOT_FOUND = "Dependency not found on PyPI and could not be audited: {} (1.0)"


def report(*deps: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(deps), "fixes": []}


def clean(name: str) -> dict[str, Any]:
    return {"name": name, "version": "1.0", "vulns": []}


def skipped(name: str) -> dict[str, Any]:
    return {"name": name, "skip_reason": NOT_FOUND.format(name)}


def vulnerable(name: str, *ids: str, fixes: tuple[str, ...] = ("2.0",)) -> dict[str, Any]:
    vulns = [{"id": i, "fix_versions": list(fixes), "aliases": [], "description": ""} for i in ids]
    return {"name": name, "version": "1.0", "vulns": vulns}


def test_every_package_known_and_clean_passes() -> None:
    lines, status = verdict([parse_report("pypi", report(clean("a"), clean("b")))], False)
    assert lines == ["dependency audit: 2 packages checked against pypi: no known vulnerabilities"]
    assert status == EXIT_CLEAN


def test_vulnerabilities_are_listed_and_fail() -> None:
    result = parse_report(
        "pypi",
        report(clean("a"), vulnerable("b", "PYSEC-1", "GHSA-2"), vulnerable("c", "X", fixes=())),
    )
    lines, status = verdict([result], False)
    assert lines == [
        "  b 1.0: PYSEC-1 (fixed in 2.0)",
        "  b 1.0: GHSA-2 (fixed in 2.0)",
        "  c 1.0: X (no fix yet)",
        "dependency audit: 3 packages checked against pypi: 3 known vulnerabilities in 2 packages",
    ]
    assert status == EXIT_VULNERABLE


def test_packages_the_service_does_not_know_are_named() -> None:
    result = parse_report("pypi", report(clean("a"), skipped("private-pkg")))
    lines, status = verdict([result], False)
    assert lines[-1].endswith("not checked (unknown to pypi): private-pkg")
    assert status == EXIT_CLEAN


@pytest.mark.parametrize(("required", "status"), [(False, EXIT_CLEAN), (True, EXIT_NOT_PERFORMED)])
def test_no_service_answering_is_said_in_one_line(required: bool, status: int) -> None:
    results = [
        parse_report("pypi", report(skipped("a"), skipped("b"))),  # a mirror without JSON API
        ServiceResult("osv", error="cannot reach api.osv.dev"),
    ]
    lines, got = verdict(results, required)
    assert lines == [
        "dependency audit NOT PERFORMED: no advisory service answered "
        "(pypi: none of 2 packages found; osv: cannot reach api.osv.dev)"
    ]
    assert got == status


def test_services_are_asked_in_order_until_one_answers() -> None:
    asked: list[str] = []

    def run(service: str) -> ServiceResult:
        asked.append(service)
        if service == "pypi":
            return ServiceResult("pypi", error="cannot reach pypi.org")
        return parse_report(service, report(clean("a")))

    results = audit(("pypi", "osv", "esms"), run)
    assert asked == ["pypi", "osv"]
    lines, status = verdict(results, True)
    assert lines == ["dependency audit: 1 package checked against osv: no known vulnerabilities"]
    assert status == EXIT_CLEAN


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (
            "Traceback ...\nrequests.exceptions.ConnectionError: HTTPSConnectionPool("
            "host='api.osv.dev', port=443): Max retries exceeded",
            "cannot reach api.osv.dev",
        ),
        ("ERROR:pip_audit._cli:something else went wrong\n", "ERROR:pip_audit._cli:something else"),
        ("", "pip-audit failed without output"),
    ],
)
def test_failures_are_short(text: str, want: str) -> None:
    assert failure(text).startswith(want)
