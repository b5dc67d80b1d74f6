"""The email channel against aiosmtpd (STARTTLS with a certificate made here, then login) and
the command channel (argv, no shell, the event JSON on stdin); and `notify test`'s sender."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from console.notify.delivery import Notifier
from console.store import Store
from tests.console.notify.support import deploy_that_ends, notify_config, settle

PASSWORD = "s3cret-Smtp-Passw0rd"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "smtp.crt", directory / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Any]] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        self.messages.append(
            (envelope, message_from_bytes(envelope.content, policy=policy.default))
        )
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword) and data.password.decode() == PASSWORD:
            self.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[tuple[Mailbox, int, Path]]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=context,
        require_starttls=True,
        authenticator=mailbox.authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield mailbox, port, cert
    finally:
        controller.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "store.db") as opened:
        yield opened


def email_channel(port: int, cert: Path, password: str = 'password_env = "NOTIFY_SMTP_PW"') -> str:
    return f"""[notify.channels.oncall]
type = "email"
host = "127.0.0.1"
port = {port}
username = "deploys"
{password}
ca_file = "{cert}"
from = "deploys@example.com"
to = ["oncall@example.com", "lead@example.com"]
timeout = 10

[[notify.routes]]
clusters = ["prod1"]
events = ["failed"]
channels = ["oncall"]
"""


async def test_a_failure_is_mailed_over_starttls_after_login(
    tmp_path: Path,
    store: Store,
    smtp: tuple[Mailbox, int, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mailbox, port, cert = smtp
    monkeypatch.setenv("NOTIFY_SMTP_PW", PASSWORD)
    config = notify_config(tmp_path, email_channel(port, cert))
    record = await deploy_that_ends(store, "failed")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    ((envelope, mail),) = mailbox.messages
    assert mailbox.logins == ["deploys"]
    assert envelope.rcpt_tos == ["oncall@example.com", "lead@example.com"]
    assert mail["Subject"].startswith(f"[deploy-console] deploy {record.id} storefront → prod1")
    assert "failed" in mail["Subject"] and "ticket CHG-7" in mail["Subject"]
    (delivery,) = await store.outbox.for_deploy(record.id)
    assert mail["Idempotency-Key"] == delivery.event.key
    body = mail.get_content()
    assert f"idempotency_key: {delivery.event.key}" in body and "ticket: CHG-7" in body
    assert PASSWORD not in body


async def test_a_password_file_works_and_a_wrong_password_is_a_masked_retry(
    tmp_path: Path, store: Store, smtp: tuple[Mailbox, int, Path]
) -> None:
    mailbox, port, cert = smtp
    secret = tmp_path / "smtp-password"
    secret.write_text("wrong-Passw0rd-given\n")
    config = notify_config(
        tmp_path, email_channel(port, cert, f'password_file = "{secret}"'), attempts=1
    )
    await deploy_that_ends(store, "failed")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    (failed,) = await store.outbox.unsettled()
    assert failed.state == "failed" and "SMTPAuthenticationError" in failed.last_error
    assert "wrong-Passw0rd-given" not in failed.last_error
    assert mailbox.messages == []
    secret.write_text(PASSWORD)
    await deploy_that_ends(store, "failed")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    assert len(mailbox.messages) == 1


async def test_a_certificate_not_trusted_is_refused(
    tmp_path: Path, store: Store, smtp: tuple[Mailbox, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    mailbox, port, cert = smtp
    monkeypatch.setenv("NOTIFY_SMTP_PW", PASSWORD)
    text = email_channel(port, cert).replace(f'ca_file = "{cert}"\n', "")
    config = notify_config(tmp_path, text, attempts=1)
    await deploy_that_ends(store, "failed")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    (failed,) = await store.outbox.unsettled()
    assert "CERTIFICATE_VERIFY_FAILED" in failed.last_error
    assert mailbox.messages == [] and mailbox.logins == []


async def test_a_command_gets_the_event_on_stdin_with_no_shell(
    tmp_path: Path, store: Store
) -> None:
    out = tmp_path / "events.jsonl"
    script = tmp_path / "record.py"
    script.write_text(
        "import sys\n"
        "data = sys.stdin.read()\n"
        "open(sys.argv[1], 'a').write(data + '\\n')\n"
        "sys.exit(3 if '\"failed\"' in data and len(sys.argv) > 2 else 0)\n"
    )
    channels = f"""[notify.channels.log]
type = "command"
command = ["{sys.executable}", "{script}", "{out}"]

[notify.channels.grumpy]
type = "command"
command = ["{sys.executable}", "{script}", "{tmp_path / "grumpy.jsonl"}", "$(touch pwned)"]

[[notify.routes]]
channels = ["log", "grumpy"]
events = ["failed", "succeeded"]
"""
    config = notify_config(tmp_path, channels, attempts=2)
    await deploy_that_ends(store, "failed")
    await settle(Notifier(store.outbox, config.notify, holder="test"))
    (event,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert event["event"] == "failed" and event["ticket"] == "CHG-7"
    (grumpy,) = await store.outbox.unsettled()
    assert grumpy.channel == "grumpy" and grumpy.attempts == 2
    assert grumpy.last_error == f"{sys.executable} exited 3"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
