"""Basic256Sha256 Sign / SignAndEncrypt with generated certificates, and user/password identity."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua
from asyncua.crypto import cert_gen
from connector_testkit import TEST_NS, OpcuaTestServer, opcua_source_dict
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from connectors.opcua import OpcuaConnector
from connectors.opcua_config import OpcuaSource

pytestmark = pytest.mark.asyncio(loop_scope="module")

SERVER_URI = "urn:freeopcua:python:server"  # asyncua's default application URI
CLIENT_URI = "urn:kilnwatch:test:client"
PASSWORD_ENV = "KILNWATCH_TEST_OPCUA_PASSWORD"


def make_cert(directory: Path, name: str, uri: str, usage: x509.ObjectIdentifier) -> tuple[Path, Path]:
    """A self-signed application certificate (PEM) and its key, as OPC UA Part 6 §6.2.2 wants them."""
    key = cert_gen.generate_private_key()
    host = socket.gethostname()
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "kilnwatch tests"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName(host), x509.DNSName("localhost")],
        extended=[usage],
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_file, key_file


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    server_cert, server_key = make_cert(d, "server", SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = make_cert(d, "client", CLIENT_URI, ExtendedKeyUsageOID.CLIENT_AUTH)
    return {
        "server_cert": server_cert,
        "server_key": server_key,
        "client_cert": client_cert,
        "client_key": client_key,
    }


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def secure_server(certs: dict[str, Path]) -> AsyncIterator[OpcuaTestServer]:
    server = OpcuaTestServer(
        security=(
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
            ua.SecurityPolicyType.Basic256Sha256_Sign,
        ),
        cert_file=certs["server_cert"],
        key_file=certs["server_key"],
        users={"operator": "s3cret"},
    )
    await server.start({"Feed": 287.5})
    assert server.server is not None
    server.server.set_identity_tokens([ua.UserNameIdentityToken])
    try:
        yield server
    finally:
        await server.stop()


def source(server: OpcuaTestServer, certs: dict[str, Path], **kw: Any) -> OpcuaSource:
    tags = [{"name": "kiln1.feed", "node_id": f"nsu={TEST_NS};s=Feed"}]
    settings: dict[str, Any] = {
        "security": "Basic256Sha256_SignAndEncrypt",
        "cert_file": str(certs["client_cert"]),
        "key_file": str(certs["client_key"]),
        "server_cert_file": str(certs["server_cert"]),
        "username": "operator",
        "password_env": PASSWORD_ENV,
        "timeout_ms": 2000,
    }
    settings.update(kw)
    return OpcuaSource.model_validate(opcua_source_dict(server.endpoint, tags, **settings))


async def read(src: OpcuaSource) -> tuple[float | None, str]:
    frame = await OpcuaConnector(src).read_once()
    value, quality = frame.row(0)[2:]
    return value, quality


@pytest.mark.parametrize("security", ["Basic256Sha256_SignAndEncrypt", "Basic256Sha256_Sign"])
async def test_secure_session_with_client_certificate_and_password_reads_values(
    secure_server: OpcuaTestServer, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch, security: str
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    assert await read(source(secure_server, certs, security=security)) == (287.5, "good")


async def test_server_certificate_can_be_fetched_from_the_endpoint_when_not_pinned(
    secure_server: OpcuaTestServer, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    assert await read(source(secure_server, certs, server_cert_file=None)) == (287.5, "good")


async def test_unsecured_session_is_refused_by_a_secure_only_server(
    secure_server: OpcuaTestServer, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    src = source(
        secure_server,
        certs,
        security="None",
        cert_file=None,
        key_file=None,
        server_cert_file=None,
        allow_plaintext_password=True,  # refused by the config otherwise (the password would go in clear)
    )
    assert await read(src) == (None, "comm_error")


async def test_wrong_password_is_a_comm_error_not_a_crash(
    secure_server: OpcuaTestServer, certs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong")
    conn = OpcuaConnector(source(secure_server, certs))
    frame = await conn.read_once()
    assert frame.row(0)[2:] == (None, "comm_error")
    assert conn.stats.errors == 1 and not conn.stats.connected


async def test_password_from_a_file_opens_a_secure_session(
    secure_server: OpcuaTestServer, certs: dict[str, Path], tmp_path: Path
) -> None:
    secret = tmp_path / "opcua-password"
    secret.write_text("s3cret\n", encoding="utf-8")  # a trailing newline, as editors and systemd write it
    src = source(secure_server, certs, password_env=None, password_file=str(secret))
    assert src.password() == "s3cret"
    assert await read(src) == (287.5, "good")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # already gone
        return b""


@pytest.mark.parametrize("verbosity", [[], ["-v"], ["-vv"]])
async def test_the_password_never_reaches_logs_or_the_command_line(
    secure_server: OpcuaTestServer, certs: dict[str, Path], tmp_path: Path, verbosity: list[str]
) -> None:
    """``kilnwatch once`` at every verbosity against a server that takes user/password: the value is
    read, and the password appears neither in the output (asyncua prints the identity token at -vv;
    common/redact.py masks it) nor in the process's command line (docs/reliability.md)."""
    import asyncio
    import os
    import sys

    path = tmp_path / "c.toml"
    path.write_text(
        f"""
[agent]
site = "p1"
db_path = "{tmp_path / "kw.duckdb"}"

[[sources]]
name = "ua"
type = "opcua"
endpoint = "{secure_server.endpoint}"
mode = "poll"
security = "Basic256Sha256_SignAndEncrypt"
cert_file = "{certs["client_cert"]}"
key_file = "{certs["client_key"]}"
server_cert_file = "{certs["server_cert"]}"
username = "operator"
password_env = "{PASSWORD_ENV}"
timeout_ms = 4000

  [[sources.tags]]
  name = "kiln1.feed"
  node_id = "nsu={TEST_NS};s=Feed"
""",
        encoding="utf-8",
    )
    env = {**os.environ, PASSWORD_ENV: "s3cret"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "agent",
        *verbosity,
        "once",
        "--config",
        str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    cmdline = await asyncio.to_thread(_cmdline, proc.pid)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-2000:]
    assert re.search(r"kiln1\.feed\s*│\s*288\s*│.*good", text), text  # read with the password (287.5)
    assert "s3cret" not in text and b"s3cret".hex() not in text
    if verbosity == ["-vv"]:  # asyncua logs the identity token at DEBUG: masked, not absent
        assert "Password=b'***'" in text
    assert b"s3cret" not in cmdline
