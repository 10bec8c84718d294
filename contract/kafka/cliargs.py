"""The connection flags of every CLI verb that talks to Kafka, and settings from them.

:func:`add_kafka_arguments` adds the same flags everywhere (named like the settings and
their ``FLOWERHUB_*`` variables): ``--bootstrap``, ``--security-protocol``,
``--ssl-cafile``, ``--ssl-certfile``, ``--ssl-keyfile``, ``--sasl-mechanism``,
``--sasl-username``, ``--sasl-password-file``, ``--client-id``. There is no password flag:
a flag's value is visible to every user in ``ps``; the password comes from
``FLOWERHUB_SASL_PASSWORD`` or a file.

:func:`resolve` turns the layers into :class:`~contract.kafka.settings.KafkaSettings`,
field by field, the first that gives a value winning:

1. the flags;
2. a config file's ``kafka:`` section (:class:`KafkaOptions`, e.g. the bridge's YAML);
3. the environment (``FLOWERHUB_*``, ``KAFKA_BOOTSTRAP_SERVERS``);
4. a fallback when none of the above names the bootstrap servers (the CLI passes the
   running local broker of ``flowerhub broker start``, its TLS settings included);
5. the defaults (``localhost:9092``, PLAINTEXT).

Bad settings raise :class:`~contract.kafka.settings.KafkaSettingsError` with one readable
message (the CLI turns it into its error line).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from contract.kafka.settings import (
    BOOTSTRAP_ENV,
    KafkaSettings,
    KafkaSettingsError,
    SaslMechanism,
    SecurityProtocol,
    _what,
    env_name,
    explain,
)

S = TypeVar("S", bound=KafkaSettings)


class KafkaOptions(BaseModel):
    """Connection fields some source gives (None: not given). A config file's ``kafka:``
    section has this shape; a password is only ever named by its file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str | None = None
    security_protocol: SecurityProtocol | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password_file: Path | None = None
    client_id: str | None = None

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


def options_of(settings: KafkaSettings) -> KafkaOptions:
    """The connection of ``settings`` as a config section (every field spelled out; the
    password only by its file: settings whose password came from the environment give a
    section that needs ``FLOWERHUB_SASL_PASSWORD`` again)."""
    return KafkaOptions(
        **{name: getattr(settings, name) for name in KafkaOptions.model_fields},
    )


_FLAGS: tuple[tuple[str, str, dict[str, Any], str], ...] = (
    ("--bootstrap", "bootstrap_servers", {"metavar": "HOST:PORT[,...]"}, "bootstrap servers"),
    (
        "--security-protocol",
        "security_protocol",
        {"choices": [p.value for p in SecurityProtocol]},
        "PLAINTEXT (default), SSL, SASL_PLAINTEXT or SASL_SSL",
    ),
    ("--ssl-cafile", "ssl_cafile", {"type": Path, "metavar": "PEM"}, "CA bundle to trust"),
    ("--ssl-certfile", "ssl_certfile", {"type": Path, "metavar": "PEM"}, "client certificate"),
    ("--ssl-keyfile", "ssl_keyfile", {"type": Path, "metavar": "PEM"}, "its private key"),
    (
        "--sasl-mechanism",
        "sasl_mechanism",
        {"choices": [m.value for m in SaslMechanism]},
        "SASL mechanism",
    ),
    ("--sasl-username", "sasl_username", {"metavar": "USER"}, "SASL user name"),
    (
        "--sasl-password-file",
        "sasl_password_file",
        {"type": Path, "metavar": "FILE"},
        "file holding the SASL password (or set FLOWERHUB_SASL_PASSWORD; never a flag)",
    ),
    ("--client-id", "client_id", {"metavar": "ID"}, "Kafka client id (default flowerhub)"),
)
DEST = "kafka_"  # argparse dest prefix: no clash with a verb's own options


def add_kafka_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the connection flags (see module doc) in their own help group. No flag has a
    default, so ``--help`` never shows a value from the environment."""
    group = parser.add_argument_group(
        "Kafka connection",
        "Each flag overrides its FLOWERHUB_* variable (FLOWERHUB_BOOTSTRAP_SERVERS or "
        "KAFKA_BOOTSTRAP_SERVERS, FLOWERHUB_SECURITY_PROTOCOL, ...); without any, the local "
        "broker of `flowerhub broker start`, else localhost:9092.",
    )
    for flag, field, extra, text in _FLAGS:
        group.add_argument(
            flag, dest=DEST + field, default=None, help=f"{text} ({env_name(field)})", **extra
        )
    return parser


def options_from_args(args: argparse.Namespace) -> KafkaOptions:
    """The connection flags given on the command line."""
    values = {
        field: getattr(args, DEST + field)
        for _, field, _, _ in _FLAGS
        if getattr(args, DEST + field, None) is not None
    }
    return KafkaOptions(**values)


def _environment_names_bootstrap(env: Mapping[str, str]) -> bool:
    return any(env.get(name, "").strip() for name in BOOTSTRAP_ENV)


def resolve(
    *layers: KafkaOptions | None,
    fallback: Callable[[], KafkaOptions | None] | None = None,
) -> KafkaSettings:
    """Settings from ``layers`` (first wins: flags, then a config section), the environment,
    then ``fallback()`` when nothing named the bootstrap servers. See the module doc."""
    return resolve_as(KafkaSettings, *layers, fallback=fallback)


def resolve_as(
    cls: type[S],
    *layers: KafkaOptions | None,
    fallback: Callable[[], KafkaOptions | None] | None = None,
    **extra: Any,
) -> S:
    """:func:`resolve` into a subclass of the settings; ``extra`` are its own fields (e.g.
    the streams worker's app id), given like flags."""
    given: dict[str, Any] = {}
    for layer in reversed([layer for layer in layers if layer is not None]):
        given.update(layer.given())
    if (
        fallback is not None
        and "bootstrap_servers" not in given
        and not _environment_names_bootstrap(os.environ)
    ):
        found = fallback()
        if found is not None:
            given = {**found.given(), **given}
    try:
        return cls(**given, **extra)
    except ValidationError as exc:
        raise KafkaSettingsError(explain(exc, _what(cls))) from None


def settings_from_args(
    args: argparse.Namespace,
    *,
    base: KafkaOptions | None = None,
    fallback: Callable[[], KafkaOptions | None] | None = None,
) -> KafkaSettings:
    """:func:`resolve` of the flags in ``args`` over ``base`` (a config file's section)."""
    return resolve(options_from_args(args), base, fallback=fallback)
