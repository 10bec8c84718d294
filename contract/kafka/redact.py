"""Keep SASL secrets out of aiokafka's debug log.

At DEBUG, aiokafka logs every request it sends (``aiokafka.conn``: "Request to host:port n:
<request>"), and the request of a SASL login holds the credentials: for PLAIN, the user name
and the password in clear (``SaslAuthenticateRequest(sasl_auth_bytes=b'user\\x00user\\x00pw')``).
The filter installed here replaces any SASL authentication request in such a record by its
name alone. It is installed when :mod:`contract.kafka.clients` is imported, i.e. before any
client of the project exists.
"""

from __future__ import annotations

import logging

LOGGER = "aiokafka.conn"


class _Redacted:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{self.name}(<redacted>)"

    __str__ = __repr__


def _is_sasl_auth(value: object) -> bool:
    name = type(value).__name__
    return name.startswith("SaslAuthenticate") and "Request" in name


class RedactSasl(logging.Filter):
    """Replace SASL authentication requests in a record's arguments by a redacted stand-in."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl_auth(a) for a in args):
            record.args = tuple(
                _Redacted(type(a).__name__) if _is_sasl_auth(a) else a for a in args
            )
        return True


def install() -> None:
    """Add the filter to aiokafka's connection logger (once)."""
    logger = logging.getLogger(LOGGER)
    if not any(isinstance(f, RedactSasl) for f in logger.filters):
        logger.addFilter(RedactSasl())
