"""Who may read the UI: loopback by default, a token or basic auth for anything else (pure).

Rules (``check_bind`` at start, ``decide`` per request):

- The UI binds 127.0.0.1 by default. Any address that is not loopback (``0.0.0.0``, a LAN
  address, a host name resolving to one) is refused unless a token or basic-auth
  credentials are configured: an operations view of a power plant is not for the whole
  network to read.
- With credentials, every request needs them, loopback or not: ``Authorization: Bearer
  <token>``, the session cookie, or ``Authorization: Basic`` (browsers ask for it). Opening
  ``/?token=<token>`` once sets the cookie (HttpOnly, SameSite=Strict) and redirects to the
  same page without the token in the address bar, so the page's own requests and its
  event stream carry it. Comparisons are constant-time (``hmac.compare_digest``).
- Read-only: only GET and HEAD are served (405 otherwise).
- On a loopback bind without credentials, the ``Host`` header must name a loopback host: a
  web page elsewhere cannot read the UI through DNS rebinding.

Secrets are read from a file or the environment (``FLOWERHUB_UI_TOKEN``,
``FLOWERHUB_UI_BASIC_AUTH`` as ``user:password``), never from the command line, where any
local user could read them in the process list.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

COOKIE = "flowerhub_ui"
MIN_TOKEN_CHARS = 16
TOKEN_ENV = "FLOWERHUB_UI_TOKEN"  # noqa: S105  # the variable's name, not a secret
BASIC_ENV = "FLOWERHUB_UI_BASIC_AUTH"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class AuthConfigError(ValueError):
    """A bind address or credential setting the UI refuses."""


@dataclass(frozen=True)
class Access:
    """The credentials a request must carry (none: open, loopback only)."""

    token: str | None = None
    basic_user: str | None = None
    basic_password: str | None = None

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise AuthConfigError(f"the UI token must be at least {MIN_TOKEN_CHARS} characters")
        if (self.basic_user is None) != (self.basic_password is None):
            raise AuthConfigError("basic auth needs both a user and a password")
        if self.basic_password is not None and len(self.basic_password) < MIN_TOKEN_CHARS:
            raise AuthConfigError(
                f"the basic-auth password must be at least {MIN_TOKEN_CHARS} characters"
            )

    @property
    def required(self) -> bool:
        return self.token is not None or self.basic_user is not None


def parse_basic(text: str, where: str) -> tuple[str, str]:
    """``user:password`` (the first colon splits) from a file or the environment."""
    user, sep, password = text.strip().partition(":")
    if not sep or not user or not password:
        raise AuthConfigError(f"{where}: expected 'user:password'")
    return user, password


def is_loopback(host: str) -> bool:
    """True when every address ``host`` stands for is a loopback address."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except (socket.gaierror, UnicodeError):
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def check_bind(host: str, access: Access) -> None:
    """Refuse a non-loopback bind without credentials (``AuthConfigError`` says why)."""
    if not is_loopback(host) and not access.required:
        raise AuthConfigError(
            f"refusing to serve the UI on {host} without authentication: {host} is not a "
            f"loopback address. Set a token ({TOKEN_ENV} or --token-file) or basic auth "
            f"({BASIC_ENV} or --basic-auth-file), or bind 127.0.0.1"
        )


class Decision(Enum):
    ALLOW = "allow"
    SET_COOKIE = "set-cookie"  # the token came in the query: set the cookie, redirect
    UNAUTHORIZED = "unauthorized"
    BAD_METHOD = "bad-method"
    BAD_HOST = "bad-host"


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _host_name(host_header: str) -> str:
    host = host_header.strip()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def decide(
    access: Access,
    *,
    method: str,
    host_header: str,
    headers: Mapping[str, str],
    cookies: Mapping[str, str],
    query: Mapping[str, str],
    loopback_bind: bool,
) -> Decision:
    """What to do with one request (see the module doc)."""
    if method not in ("GET", "HEAD"):
        return Decision.BAD_METHOD
    if not access.required:
        if loopback_bind and not is_loopback_host_header(host_header):
            return Decision.BAD_HOST
        return Decision.ALLOW
    return _credentials(access, headers.get("Authorization", ""), cookies, query)


def _credentials(
    access: Access, authorization: str, cookies: Mapping[str, str], query: Mapping[str, str]
) -> Decision:
    scheme, _, value = authorization.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if access.token is not None:
        if scheme == "bearer" and _same(value, access.token):
            return Decision.ALLOW
        if _same(cookies.get(COOKIE, ""), access.token):
            return Decision.ALLOW
        if _same(query.get("token", ""), access.token):
            return Decision.SET_COOKIE
    if access.basic_user is None or access.basic_password is None or scheme != "basic":
        return Decision.UNAUTHORIZED
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return Decision.UNAUTHORIZED
    # both compared, always (no early exit on the user name)
    user_ok = _same(user, access.basic_user)
    password_ok = _same(password, access.basic_password)
    return Decision.ALLOW if user_ok and password_ok else Decision.UNAUTHORIZED


def is_loopback_host_header(host_header: str) -> bool:
    """The ``Host`` header names a loopback host (a name, not resolved: no DNS per request)."""
    name = _host_name(host_header).lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
