"""Deterministic ids (uuid5): re-processing the same input after a crash yields the same ids.

The edge bridge is idempotent on ``command_id``; consumers may de-duplicate on ``event_id``.
``derived_id`` is RFC 4122 uuid5 (equal to ``str(uuid.uuid5(NAMESPACE, name))``, checked by
the tests), computed without building ``uuid.UUID`` objects: ids are made per site and per
command, 10,000 at a time.
"""

from __future__ import annotations

import hashlib
import uuid

#: Namespace of every FlowerHub uuid5 (fixed forever: changing it changes every derived id).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flowerhub:streams")
_NAMESPACE_BYTES = NAMESPACE.bytes


def uuid5_text(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, faster."""
    # uuid5 is defined on SHA-1; not a security use
    sha = hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False)
    digest = bytearray(sha.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derived_id(*parts: object) -> str:
    """A uuid5 over the parts joined with ``|`` (lower-case canonical text)."""
    return uuid5_text("|".join(str(p) for p in parts))


def command_id_for(site_id: str, setpoint_id: str) -> str:
    """The command id of the command a site setpoint becomes (the same on every re-processing)."""
    return uuid5_text(f"command|{site_id}|{setpoint_id}")


def command_event_id(command_id: str) -> str:
    """The event id of the SiteCommand carrying ``command_id``."""
    return uuid5_text(f"command-event|{command_id}")
