"""Throwaway TLS material for the local broker (``flowerhub broker start --tls``).

Made with the ``cryptography`` library, once per data dir (a restart reuses it):

- ``ca.pem``: a CA certificate made for this data dir only (its key is not kept: nothing
  else is ever signed by it). Clients trust it (``FLOWERHUB_SSL_CAFILE``); the broker
  trusts it for client certificates (a PEM truststore).
- ``server.pem``: the broker's PEM keystore: its private key (PKCS#8, unencrypted, file
  mode 0600) followed by its certificate for ``localhost`` and ``127.0.0.1``, then the CA's.
- ``client.pem`` + ``client-key.pem``: a client certificate for the mutual-TLS listener.
- ``sasl-password``: a random password of the SASL PLAIN user ``flowerhub`` (mode 0600).

Kafka reads PEM key and trust stores directly (KIP-651; an unencrypted key since 3.3).
Elliptic-curve keys (P-256): quick to make, accepted by Java's and Python's TLS alike.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SASL_USERNAME = "flowerhub"
HOSTS = ("localhost", "127.0.0.1")
VALID_DAYS = 825  # the longest a TLS server certificate may live (CA/Browser Forum)


@dataclass(frozen=True)
class TlsFiles:
    """Where the material of one data dir lives (see module doc)."""

    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def server_keystore(self) -> Path:
        return self.dir / "server.pem"

    @property
    def client_cert(self) -> Path:
        return self.dir / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.dir / "client-key.pem"

    @property
    def sasl_password_file(self) -> Path:
        return self.dir / "sasl-password"

    @property
    def sasl_username(self) -> str:
        return SASL_USERNAME

    def complete(self) -> bool:
        return all(
            p.is_file()
            for p in (
                self.ca_file,
                self.server_keystore,
                self.client_cert,
                self.client_key,
                self.sasl_password_file,
            )
        )

    def sasl_password(self) -> str:
        return self.sasl_password_file.read_text(encoding="ascii").strip()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "FlowerHub local broker"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def make_ca(
    common_name: str = "FlowerHub throwaway CA",
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed CA key and certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    server: bool,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a certificate signed by the CA: a TLS server one for ``hosts`` (DNS names
    and IP addresses as subject alternative names), or a TLS client one."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def write_ca(path: Path, common_name: str = "FlowerHub throwaway CA") -> Path:
    """A fresh CA certificate alone at ``path`` (e.g. a CA a broker does not use)."""
    _, cert = make_ca(common_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, pem(cert))
    return path


def ensure_tls_files(directory: Path, hosts: Sequence[str] = HOSTS) -> TlsFiles:
    """The TLS material in ``directory``, made now unless a previous start made it."""
    files = TlsFiles(directory)
    if files.complete():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    ca_key, ca_cert = make_ca()
    server_key, server_cert = issue(ca_key, ca_cert, "localhost", hosts=hosts, server=True)
    client_key, client_cert = issue(ca_key, ca_cert, "flowerhub-client", server=False)
    write_file(files.ca_file, pem(ca_cert))
    write_file(
        files.server_keystore,
        key_pem(server_key) + pem(server_cert) + pem(ca_cert),
        private=True,
    )
    write_file(files.client_cert, pem(client_cert) + pem(ca_cert))
    write_file(files.client_key, key_pem(client_key), private=True)
    write_file(files.sasl_password_file, secrets.token_urlsafe(24).encode("ascii"), private=True)
    return files
