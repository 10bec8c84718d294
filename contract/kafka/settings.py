"""Kafka connection settings: one pydantic-settings model for every client of the project.

One naming scheme, prefix ``FLOWERHUB_``, the same in every service and CLI verb (the flags
of :mod:`contract.kafka.cliargs` carry the same names)::

    FLOWERHUB_BOOTSTRAP_SERVERS=broker1:9093,broker2:9093  # or KAFKA_BOOTSTRAP_SERVERS
    FLOWERHUB_SECURITY_PROTOCOL=SASL_SSL         # PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL
    FLOWERHUB_SSL_CAFILE=/etc/flowerhub/ca.pem   # CA bundle (PEM); else the system's CAs
    FLOWERHUB_SSL_CERTFILE=/etc/flowerhub/client.pem     # client certificate (mutual TLS)
    FLOWERHUB_SSL_KEYFILE=/etc/flowerhub/client-key.pem  # its private key (unencrypted PEM)
    FLOWERHUB_SASL_MECHANISM=SCRAM-SHA-512       # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    FLOWERHUB_SASL_USERNAME=flowerhub
    FLOWERHUB_SASL_PASSWORD=...                  # or FLOWERHUB_SASL_PASSWORD_FILE=/run/secrets/x
    FLOWERHUB_CLIENT_ID=flowerhub

``KAFKA_BOOTSTRAP_SERVERS`` is honoured when ``FLOWERHUB_BOOTSTRAP_SERVERS`` is not set (it is
documented and used by CI, docker-compose and the benches). The password is a ``SecretStr``:
never in ``repr``, ``str``, ``model_dump_json`` or :meth:`KafkaSettings.describe`; it comes
from the environment or from a file, never from a command-line flag.

Pure: pydantic and ``ssl`` only (the clients are made in :mod:`contract.kafka.clients`).
"""

from __future__ import annotations

import re
import ssl
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.errors import InvalidConfigError

ENV_PREFIX = "FLOWERHUB_"
BOOTSTRAP_ENV = ("FLOWERHUB_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS")
DEFAULT_BOOTSTRAP = "localhost:9092"
DEFAULT_CLIENT_ID = "flowerhub"
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class KafkaSettingsError(InvalidConfigError):
    """Connection settings that cannot work; the message names the setting (flag and
    environment variable) and never holds a secret."""


class SecurityProtocol(StrEnum):
    """Kafka ``security.protocol``."""

    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"

    @property
    def uses_sasl(self) -> bool:
        return self in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL)

    @property
    def uses_tls(self) -> bool:
        return self in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)


class SaslMechanism(StrEnum):
    """Kafka ``sasl.mechanism`` (the ones aiokafka and Faust both speak with a password)."""

    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


def env_name(field: str) -> str:
    """The environment variable of a connection field: ``FLOWERHUB_<FIELD>``."""
    return ENV_PREFIX + field.upper()


def flag_name(field: str) -> str:
    """The command-line flag of a connection field (``bootstrap_servers`` is ``--bootstrap``)."""
    return "--bootstrap" if field == "bootstrap_servers" else "--" + field.replace("_", "-")


def where(field: str) -> str:
    """``field (--flag / FLOWERHUB_FIELD)`` for error messages."""
    if field == "sasl_password":  # never a flag: the environment or a file
        return (
            f"sasl_password ({env_name(field)}, or {flag_name('sasl_password_file')} / "
            f"{env_name('sasl_password_file')})"
        )
    return f"{field} ({flag_name(field)} / {env_name(field)})"


def _read_password_file(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(
            f"{where('sasl_password_file')}: cannot read {path}: {exc.strerror or exc}"
        ) from None
    password = text.rstrip("\r\n")
    if not password:
        raise ValueError(f"{where('sasl_password_file')}: {path} is empty")
    return password


class KafkaSettings(BaseSettings):
    """How to reach Kafka; ``KafkaSettings()`` reads the environment (see module doc)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    bootstrap_servers: str = Field(
        default=DEFAULT_BOOTSTRAP,
        validation_alias=AliasChoices(*BOOTSTRAP_ENV),
        description="Comma-separated host:port list.",
    )
    security_protocol: SecurityProtocol = SecurityProtocol.PLAINTEXT
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = Field(default=None, repr=False)
    sasl_password_file: Path | None = None
    client_id: str = DEFAULT_CLIENT_ID

    @model_validator(mode="before")
    @classmethod
    def _password_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        path = data.get("sasl_password_file")
        if path is None:
            return data
        if data.get("sasl_password") is not None:
            raise ValueError(
                f"the SASL password is given twice: {env_name('sasl_password')} and "
                f"{where('sasl_password_file')}; keep one"
            )
        return {**data, "sasl_password": SecretStr(_read_password_file(Path(path)))}

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        servers = self.bootstrap_server_list
        if not servers:
            raise ValueError(f"{where('bootstrap_servers')} is empty")
        bad = [s for s in servers if not _HOST_PORT.match(s)]
        if bad:
            raise ValueError(f"{where('bootstrap_servers')}: not host:port: {', '.join(bad)}")
        if not _CLIENT_ID.match(self.client_id):
            raise ValueError(
                f"{where('client_id')} {self.client_id!r}: letters, digits, '.', '_', '-' only"
            )
        protocol = self.security_protocol
        if protocol.uses_sasl:
            missing = [
                where(name)
                for name in ("sasl_mechanism", "sasl_username", "sasl_password")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"security_protocol {protocol} needs {', '.join(missing)}")
        elif self.sasl_password is not None or self.sasl_username is not None:
            raise ValueError(
                f"SASL credentials given but security_protocol is {protocol} "
                "(SASL_SSL or SASL_PLAINTEXT use them)"
            )
        tls_files = {
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
        }
        if not protocol.uses_tls and any(tls_files.values()):
            raise ValueError(
                f"TLS files given but security_protocol is {protocol} (SSL or SASL_SSL use them)"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError(f"{where('ssl_certfile')} and {where('ssl_keyfile')} go together")
        for name, path in tls_files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{where(name)}: no such file: {path}")
        return self

    # ----------------------------------------------------------------- reading
    @classmethod
    def of(cls, **fields: Any) -> Self:
        """Settings from ``fields`` over the environment; a :class:`KafkaSettingsError` with a
        readable message (no secret) when they cannot work."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise KafkaSettingsError(explain(exc, _what(cls))) from None

    @property
    def bootstrap_server_list(self) -> list[str]:
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def broker_urls(self) -> list[str]:
        """Faust broker URLs (``kafka://host:port`` each)."""
        return [f"kafka://{s}" for s in self.bootstrap_server_list]

    def describe(self) -> str:
        """For logs and errors: where and how, never a secret.

        ``SASL_SSL://b1:9093,b2:9093 (SCRAM-SHA-512 as flowerhub, CA /etc/ca.pem)``
        """
        notes = []
        if self.security_protocol.uses_sasl:
            notes.append(f"{self.sasl_mechanism} as {self.sasl_username}")
        if self.security_protocol.uses_tls:
            notes.append(f"CA {self.ssl_cafile}" if self.ssl_cafile else "system CAs")
            if self.ssl_certfile is not None:
                notes.append(f"client certificate {self.ssl_certfile}")
        servers = ",".join(self.bootstrap_server_list)
        tail = f" ({', '.join(notes)})" if notes else ""
        return f"{self.security_protocol}://{servers}{tail}"

    def connection_fields(self) -> dict[str, Any]:
        """The connection fields that differ from the defaults (no secret; the password is
        named by its file when it came from one)."""
        out: dict[str, Any] = {}
        for name in KafkaSettings.model_fields:
            if name == "sasl_password":
                continue
            value = getattr(self, name)
            if value != KafkaSettings.model_fields[name].default:
                out[name] = value
        return out

    def environment(self) -> dict[str, str]:
        """The ``FLOWERHUB_*`` variables that give a child process these settings (the
        password included, in clear, when it did not come from a file: the environment of a
        child is private to its user, unlike its command line)."""
        env = {env_name(k): str(v) for k, v in self.connection_fields().items()}
        env["FLOWERHUB_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        if self.sasl_password is not None and self.sasl_password_file is None:
            env["FLOWERHUB_SASL_PASSWORD"] = self.sasl_password.get_secret_value()
        return env

    def arguments(self) -> list[str]:
        """The command-line flags that give a child these settings, every field spelled out
        (so its environment cannot change them) except the password: pass
        :meth:`environment` too when it did not come from a file."""
        out: list[str] = []
        for name in KafkaSettings.model_fields:
            value = getattr(self, name)
            if name != "sasl_password" and value is not None:
                out += [flag_name(name), str(value)]
        return out

    # ------------------------------------------------------------- client side
    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context of these settings (server verified against ``ssl_cafile`` or the
        system CAs, hostname checked; the client certificate when given)."""
        try:
            context = ssl.create_default_context(
                cafile=None if self.ssl_cafile is None else str(self.ssl_cafile)
            )
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSettingsError(
                f"{where('ssl_cafile')}: cannot load {self.ssl_cafile}: {exc}"
            ) from None
        if self.ssl_certfile is not None and self.ssl_keyfile is not None:
            try:
                context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile))
            except (OSError, ssl.SSLError) as exc:
                raise KafkaSettingsError(
                    f"{where('ssl_certfile')} / {where('ssl_keyfile')}: cannot load "
                    f"{self.ssl_certfile} with {self.ssl_keyfile}: {exc}"
                ) from None
        return context

    def auth_options(self) -> dict[str, Any]:
        """aiokafka's connection keyword options (``bootstrap_servers``, ``security_protocol``,
        ``ssl_context``, ``sasl_*``, ``client_id``). Holds the SASL password in clear: pass it
        on to a client, never log it."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_server_list,
            "security_protocol": self.security_protocol.value,
            "client_id": self.client_id,
        }
        if self.security_protocol.uses_tls:
            options["ssl_context"] = self.ssl_context()
        if self.security_protocol.uses_sasl:
            assert self.sasl_mechanism is not None  # noqa: S101  # checked by _consistent
            assert self.sasl_password is not None  # noqa: S101  # idem
            options["sasl_mechanism"] = self.sasl_mechanism.value
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options


def _what(cls: type[KafkaSettings]) -> str:
    return "Kafka connection settings" if cls is KafkaSettings else f"{cls.__name__}"


def explain(exc: ValidationError, what: str = "Kafka connection settings") -> str:
    """A pydantic error as one readable line per problem, built from the locations and
    messages only (the inputs, which may hold a password, are left out)."""
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(p) for p in error["loc"])
        if loc and loc in KafkaSettings.model_fields:
            loc = where(loc)
        lines.append(f"{loc}: {message}" if loc else message)
    return f"{what}: " + "; ".join(lines)


def settings_for(bootstrap: str, **fields: Any) -> KafkaSettings:
    """Settings for ``bootstrap`` with only the given fields (PLAINTEXT unless they say
    otherwise): the environment is NOT read. For tests, benches and launchers that know
    exactly which broker they mean."""
    return KafkaSettings.model_validate(
        {
            "bootstrap_servers": bootstrap,
            "security_protocol": SecurityProtocol.PLAINTEXT,
            **fields,
        }
    )
