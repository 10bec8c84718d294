"""How to reach the MQTT broker: address, the CA to trust, the client certificate and the
session policy. One model for the bridge's ``mqtt:`` section, the gateway and the tools.

The address may be a DNS name: it is resolved again on every (re)connect, so a broker that
moves behind a name is found after its next failover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_PORT = 8883  # IANA's MQTT over TLS; the local broker picks a free one


class MqttSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Annotated[str, Field(min_length=1)] = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = DEFAULT_PORT
    ca_file: Path = Field(description="PEM CA the broker's certificate must chain to")
    cert_file: Path | None = Field(
        default=None, description="client certificate (PEM); CN = site id or gateway@<name>"
    )
    key_file: Path | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    connect_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    # MQTT v5 session expiry: how long the broker keeps a disconnected client's session
    # (subscriptions and queued QoS 1 messages). A home's commands queued while it is
    # offline arrive on reconnect within this time; older ones are gone with the session.
    session_expiry_s: Annotated[int, Field(ge=0, le=0xFFFFFFFF)] = 24 * 3600

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def with_identity(self, cert_file: Path, key_file: Path) -> MqttSettings:
        return self.model_copy(update={"cert_file": cert_file, "key_file": key_file})

    def describe(self) -> str:
        who = self.cert_file.name if self.cert_file is not None else "no client certificate"
        return f"mqtts://{self.address} ({who})"
