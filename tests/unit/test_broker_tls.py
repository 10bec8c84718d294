"""The local broker's throwaway TLS material: a chain Python's TLS accepts for localhost and
127.0.0.1, a client certificate a server requiring one accepts, private files, made once."""

from __future__ import annotations

import asyncio
import ssl
import stat
from pathlib import Path

import pytest

from flowerhub.broker.tls import TlsFiles, ensure_tls_files, write_ca


async def handshake(files: TlsFiles, host: str, ca: Path, *, client_cert: bool) -> str:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(files.server_keystore)  # key + chain in one PEM, as Kafka's
    server_ctx.load_verify_locations(files.ca_file)
    server_ctx.verify_mode = ssl.CERT_REQUIRED if client_cert else ssl.CERT_NONE

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(ca))
    if client_cert:
        client_ctx.load_cert_chain(files.client_cert, files.client_key)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname=host
        )
        data = await reader.read()
        writer.close()
        return data.decode()
    finally:
        server.close()
        await server.wait_closed()
        # a refused handshake ends on the server's side a moment later, in its own task
        # (wait_closed does not wait for it): let it end here, not in the next test
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if others:
            await asyncio.wait(others, timeout=5.0)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_the_server_certificate_verifies_for_both_names(tmp_path: Path, host: str) -> None:
    files = ensure_tls_files(tmp_path / "tls")
    assert asyncio.run(handshake(files, host, files.ca_file, client_cert=True)) == "hello"


def test_another_ca_is_refused(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path / "tls")
    other = write_ca(tmp_path / "other.pem")
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        asyncio.run(handshake(files, "127.0.0.1", other, client_cert=False))


def test_private_files_are_private_and_made_once(tmp_path: Path) -> None:
    files = ensure_tls_files(tmp_path / "tls")
    for path in (files.server_keystore, files.client_key, files.sasl_password_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert len(files.sasl_password()) >= 24
    before = files.server_keystore.read_bytes()
    again = ensure_tls_files(tmp_path / "tls")
    assert again.server_keystore.read_bytes() == before
    assert again.sasl_password() == files.sasl_password()
