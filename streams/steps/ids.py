"""Deterministic ids (uuid5): re-processing the same input after a crash yields the same ids.

The edge bridge is idempotent on ``command_id``; consumers may de-duplicate on ``event_id``.
"""

from __future__ import annotations

import uuid

#: Namespace of every FlowerHub uuid5 (fixed forever: changing it changes every derived id).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:flowerhub:streams")


def derived_id(*parts: object) -> str:
    """A uuid5 over the parts joined with ``|`` (lower-case canonical text)."""
    return str(uuid.uuid5(NAMESPACE, "|".join(str(p) for p in parts)))


def command_id_for(site_id: str, setpoint_id: str) -> str:
    """The command id of the command a site setpoint becomes (the same on every re-processing)."""
    return derived_id("command", site_id, setpoint_id)


def command_event_id(command_id: str) -> str:
    """The event id of the SiteCommand carrying ``command_id``."""
    return derived_id("command-event", command_id)
