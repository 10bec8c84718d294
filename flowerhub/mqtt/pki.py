"""The MQTT certificate authority: a CA, the broker's server certificate, and one client
certificate per home (CN = site id) and per gateway instance (CN = ``gateway@<name>``).

Unlike the local Kafka's throwaway material (:mod:`flowerhub.broker.tls`, whose helpers this
reuses), the CA key is kept (``ca-key.pem``, mode 0600): new homes get certificates from the
same CA later (``flowerhub mqtt certs --site ID``). Layout of a certificate directory::

    ca.pem, ca-key.pem                the CA (clients trust ca.pem; the key signs new certs)
    server.pem, server-key.pem        the broker (localhost, 127.0.0.1 and any --host)
    clients/<identity>.pem            a client's certificate (then the CA's: a chain)
    clients/<identity>-key.pem        its key (0600)

In production the CA key belongs in an offline store or a KMS; the directory is the local
and test form.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from contract.mqtt.layout import check_site_id, gateway_identity, is_gateway_identity
from flowerhub.broker.tls import HOSTS, issue, key_pem, make_ca, pem, write_file


class PkiError(ValueError):
    """A certificate directory that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class ClientFiles:
    identity: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.dir / "ca-key.pem"

    @property
    def server_cert(self) -> Path:
        return self.dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.dir / "server-key.pem"

    @property
    def clients_dir(self) -> Path:
        return self.dir / "clients"

    def client(self, identity: str) -> ClientFiles:
        return ClientFiles(
            identity,
            self.clients_dir / f"{identity}.pem",
            self.clients_dir / f"{identity}-key.pem",
        )

    def site(self, site_id: str) -> ClientFiles:
        return self.client(check_site_id(site_id))

    def gateway(self, name: str) -> ClientFiles:
        return self.client(gateway_identity(name))

    def has_ca(self) -> bool:
        return self.ca_file.is_file() and self.ca_key.is_file()

    def gateways(self) -> list[str]:
        """Names of the gateway instances that have a certificate here."""
        if not self.clients_dir.is_dir():
            return []
        names = []
        for cert in sorted(self.clients_dir.glob("gateway@*.pem")):
            identity = cert.name.removesuffix(".pem")
            if not identity.endswith("-key") and is_gateway_identity(identity):
                names.append(identity.split("@", 1)[1])
        return names


def _load_ca(pki: Pki) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        cert = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
        key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise PkiError(f"{pki.dir}: cannot read the CA ({exc}); `flowerhub mqtt certs`") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{pki.ca_key}: not an elliptic-curve key")
    return key, cert


def ensure_ca(directory: Path, hosts: Sequence[str] = HOSTS) -> Pki:
    """The CA and the broker's certificate in ``directory``, made now unless they exist. A
    server certificate lacking one of ``hosts`` is issued again by the same CA."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if not pki.has_ca():
        key, cert = make_ca("FlowerHub MQTT CA")
        write_file(pki.ca_key, key_pem(key), private=True)
        write_file(pki.ca_file, pem(cert))
    if not _server_covers(pki, hosts):
        ca_key, ca_cert = _load_ca(pki)
        key, cert = issue(ca_key, ca_cert, hosts[0], hosts=hosts, server=True)
        write_file(pki.server_key, key_pem(key), private=True)
        write_file(pki.server_cert, pem(cert) + pem(ca_cert))
    return pki


def _server_covers(pki: Pki, hosts: Sequence[str]) -> bool:
    if not (pki.server_cert.is_file() and pki.server_key.is_file()):
        return False
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    have |= set(san.get_values_for_type(x509.DNSName))
    return set(hosts) <= have


def issue_client(pki: Pki, identity: str, *, force: bool = False) -> ClientFiles:
    """A client certificate for ``identity`` (a site id or ``gateway@<name>``) signed by the
    directory's CA. An existing one is kept unless ``force``."""
    if not is_gateway_identity(identity):
        check_site_id(identity)
    files = pki.client(identity)
    if files.cert.is_file() and files.key.is_file() and not force:
        return files
    ca_key, ca_cert = _load_ca(pki)
    pki.clients_dir.mkdir(parents=True, exist_ok=True)
    key, cert = issue(ca_key, ca_cert, identity, server=False)
    write_file(files.key, key_pem(key), private=True)
    write_file(files.cert, pem(cert) + pem(ca_cert))
    return files


def common_name(cert_file: Path) -> str:
    """The CN of the first certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise PkiError(f"{cert_file}: the certificate has no CN")
    return str(names[0].value)
