"""Who may read the UI (flowerhub.ui.auth): bind rules and per-request decisions, as tables."""

from __future__ import annotations

import base64

import pytest

from flowerhub.ui.auth import (
    COOKIE,
    Access,
    AuthConfigError,
    Decision,
    check_bind,
    decide,
    is_loopback,
    is_loopback_host_header,
    parse_basic,
)

TOKEN = "t" * 24
BASIC = Access(basic_user="ops", basic_password="p" * 20)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # the bind the UI must refuse
        ("::", False),
        ("192.168.1.20", False),
        ("10.0.0.1", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_non_loopback_bind_without_credentials_is_refused(host: str) -> None:
    with pytest.raises(AuthConfigError, match="without authentication"):
        check_bind(host, Access())
    check_bind(host, Access(token=TOKEN))  # with a token: allowed
    check_bind(host, BASIC)


def test_loopback_bind_needs_nothing() -> None:
    check_bind("127.0.0.1", Access())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token": "short"}, "at least 16"),
        ({"basic_user": "ops"}, "both a user and a password"),
        ({"basic_user": "ops", "basic_password": "short"}, "at least 16"),
    ],
)
def test_weak_or_half_credentials_are_refused(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        Access(**kwargs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("ops:secret:with:colons", ("ops", "secret:with:colons")), (" ops:pw \n", ("ops", "pw"))],
)
def test_parse_basic(text: str, expected: tuple[str, str]) -> None:
    assert parse_basic(text, "env") == expected


@pytest.mark.parametrize("text", ["nocolon", ":pw", "ops:"])
def test_parse_basic_rejects(text: str) -> None:
    with pytest.raises(AuthConfigError, match="user:password"):
        parse_basic(text, "env")


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("access", "method", "host", "headers", "cookies", "query", "expected"),
    [
        (Access(), "GET", "127.0.0.1:8765", {}, {}, {}, Decision.ALLOW),
        (Access(), "HEAD", "localhost:8765", {}, {}, {}, Decision.ALLOW),
        (Access(), "POST", "127.0.0.1:8765", {}, {}, {}, Decision.BAD_METHOD),
        (Access(), "DELETE", "127.0.0.1", {}, {}, {}, Decision.BAD_METHOD),
        # DNS rebinding: a foreign name in Host on a loopback bind
        (Access(), "GET", "evil.example:8765", {}, {}, {}, Decision.BAD_HOST),
        (Access(), "GET", "[::1]:8765", {}, {}, {}, Decision.ALLOW),
        (Access(token=TOKEN), "GET", "ops.local", {}, {}, {}, Decision.UNAUTHORIZED),
        (
            Access(token=TOKEN),
            "GET",
            "ops.local",
            {"Authorization": f"Bearer {TOKEN}"},
            {},
            {},
            Decision.ALLOW,
        ),
        (
            Access(token=TOKEN),
            "GET",
            "ops.local",
            {"Authorization": "Bearer wrong"},
            {},
            {},
            Decision.UNAUTHORIZED,
        ),
        (Access(token=TOKEN), "GET", "ops.local", {}, {COOKIE: TOKEN}, {}, Decision.ALLOW),
        (Access(token=TOKEN), "GET", "ops.local", {}, {COOKIE: "x"}, {}, Decision.UNAUTHORIZED),
        (Access(token=TOKEN), "GET", "ops.local", {}, {}, {"token": TOKEN}, Decision.SET_COOKIE),
        (Access(token=TOKEN), "GET", "ops.local", {}, {}, {"token": "nope"}, Decision.UNAUTHORIZED),
        (
            Access(token=TOKEN),
            "POST",
            "ops.local",
            {"Authorization": f"Bearer {TOKEN}"},
            {},
            {},
            Decision.BAD_METHOD,
        ),
        (
            BASIC,
            "GET",
            "ops.local",
            {"Authorization": _basic("ops", "p" * 20)},
            {},
            {},
            Decision.ALLOW,
        ),
        (
            BASIC,
            "GET",
            "ops.local",
            {"Authorization": _basic("ops", "wrong" * 4)},
            {},
            {},
            Decision.UNAUTHORIZED,
        ),
        (
            BASIC,
            "GET",
            "ops.local",
            {"Authorization": _basic("root", "p" * 20)},
            {},
            {},
            Decision.UNAUTHORIZED,
        ),
        (
            BASIC,
            "GET",
            "ops.local",
            {"Authorization": "Basic !!!notbase64"},
            {},
            {},
            Decision.UNAUTHORIZED,
        ),
        (BASIC, "GET", "ops.local", {}, {}, {"token": "p" * 20}, Decision.UNAUTHORIZED),
    ],
)
def test_decide(
    *,
    access: Access,
    method: str,
    host: str,
    headers: dict[str, str],
    cookies: dict[str, str],
    query: dict[str, str],
    expected: Decision,
) -> None:
    got = decide(
        access,
        method=method,
        host_header=host,
        headers=headers,
        cookies=cookies,
        query=query,
        loopback_bind=True,
    )
    assert got is expected


@pytest.mark.parametrize(
    ("header", "loopback"),
    [
        ("127.0.0.1:8765", True),
        ("localhost", True),
        ("[::1]:80", True),
        ("example.org", False),
        ("127.0.0.1.nip.io:8765", False),
        ("", False),
    ],
)
def test_host_header(header: str, loopback: bool) -> None:
    assert is_loopback_host_header(header) is loopback
