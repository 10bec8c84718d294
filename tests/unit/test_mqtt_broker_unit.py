"""The generated Mosquitto config and the MQTT CA, without starting Mosquitto."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from flowerhub.mqtt.config import MosquittoPlan, render_acl, render_conf
from flowerhub.mqtt.pki import PkiError, common_name, ensure_ca, issue_client


def plan(tmp_path: Path) -> MosquittoPlan:
    return MosquittoPlan(
        data_dir=tmp_path,
        host="127.0.0.1",
        port=18883,
        cafile=tmp_path / "ca.pem",
        certfile=tmp_path / "server.pem",
        keyfile=tmp_path / "server-key.pem",
        user="flowerhub",
    )


def test_the_config_has_one_tls_listener_with_client_certificates(tmp_path: Path) -> None:
    lines = render_conf(plan(tmp_path)).splitlines()
    listeners = [line for line in lines if line.startswith(("listener", "port "))]
    assert listeners == ["listener 18883 127.0.0.1"]  # nothing on 1883, loopback only
    for must in (
        "allow_anonymous false",
        "require_certificate true",
        "use_identity_as_username true",
        "use_username_as_clientid true",
        "persistence true",
        f"acl_file {tmp_path / 'acl'}",
        f"cafile {tmp_path / 'ca.pem'}",
    ):
        assert must in lines
    # the identity options sit in the listener block (Mosquitto 2: listener settings)
    assert lines.index("use_identity_as_username true") > lines.index("listener 18883 127.0.0.1")


def test_the_acl_lists_each_gateway() -> None:
    text = render_acl(["a", "b"])
    assert "user gateway@a" in text
    assert "user gateway@b" in text


def test_certificates_carry_the_identity_and_chain_to_the_ca(tmp_path: Path) -> None:
    pki = ensure_ca(tmp_path / "certs", ("localhost", "127.0.0.1", "mqtt.internal"))
    site = issue_client(pki, "se-0001")
    gw = issue_client(pki, "gateway@1")
    assert common_name(site.cert) == "se-0001"
    assert common_name(gw.cert) == "gateway@1"
    assert pki.gateways() == ["1"]
    assert oct(site.key.stat().st_mode & 0o777) == "0o600"
    ca = x509.load_pem_x509_certificate(pki.ca_file.read_bytes())
    cert = x509.load_pem_x509_certificate(site.cert.read_bytes())
    cert.verify_directly_issued_by(ca)
    server = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mqtt.internal" in san.get_values_for_type(x509.DNSName)
    # the same directory later: the same CA signs the next home
    again = ensure_ca(tmp_path / "certs", ("localhost", "127.0.0.1", "mqtt.internal"))
    assert again.ca_file.read_bytes() == pki.ca_file.read_bytes()
    assert issue_client(again, "se-0001").cert.read_bytes() == site.cert.read_bytes()


@pytest.mark.parametrize("identity", ["a/b", "+", "", "gateway@", "x y"])
def test_no_certificate_for_an_identity_that_could_widen_the_acl(
    tmp_path: Path, identity: str
) -> None:
    pki = ensure_ca(tmp_path / "certs")
    with pytest.raises(ValueError, match="must be"):
        issue_client(pki, identity)


def test_a_broken_ca_says_so(tmp_path: Path) -> None:
    pki = ensure_ca(tmp_path / "certs")
    pki.ca_key.write_text("not a key")
    with pytest.raises(PkiError, match="cannot read the CA"):
        issue_client(pki, "se-9")
