"""A real SMTP server for tests (aiosmtpd), optionally with STARTTLS and AUTH.

It keeps every message it accepts, parsed, so a test can read the links in a
notification email exactly as a reviewer's mail client would.
"""

import email
import email.policy
import ssl
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.http_server import free_port


@dataclass
class Mailbox:
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str, **headers: str) -> list[EmailMessage]:
        with self.lock:
            found = [m for m in self.messages if address in str(m["To"])]
        return [m for m in found if all(m[k] == v for k, v in headers.items())]


@dataclass(frozen=True)
class SmtpServer:
    mailbox: Mailbox
    host: str
    port: int
    ca_file: str | None
    username: str | None
    password: str | None


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made with the openssl command line."""
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@contextmanager
def smtp_server(
    *, tls_dir: Path | None = None, username: str | None = None, password: str | None = None
) -> Iterator[SmtpServer]:
    """With `tls_dir`: STARTTLS required (and AUTH only after it, as real servers do)."""
    mailbox = Mailbox()
    port = free_port()
    kwargs: dict[str, Any] = {}
    ca_file = None
    if tls_dir is not None:
        cert, key = self_signed_cert(tls_dir)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs.update(tls_context=context, require_starttls=True)
        ca_file = str(cert)
    if username is not None:

        def authenticate(
            server: Any, session: Any, envelope: Any, mechanism: str, data: Any
        ) -> AuthResult:
            ok = (
                isinstance(data, LoginPassword)
                and data.login.decode() == username
                and data.password.decode() == password
            )
            return AuthResult(success=ok)

        kwargs.update(authenticator=authenticate, auth_required=True)
        kwargs["auth_require_tls"] = tls_dir is not None
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(mailbox, "127.0.0.1", port, ca_file, username, password)
    finally:
        controller.stop()
