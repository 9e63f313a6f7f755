"""SMTP sender over aiosmtplib: plain, STARTTLS or implicit TLS, optional auth."""

import ssl
from email.message import EmailMessage

import aiosmtplib

from hitl_notifier.channels.errors import DeliveryError


class SmtpSender:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        starttls: bool = False,
        tls: bool = False,
        username: str = "",
        password: str = "",
        ca_file: str = "",
        timeout: float = 10.0,
    ) -> None:
        if starttls and tls:
            raise ValueError("choose STARTTLS or implicit TLS for SMTP, not both")
        self.host = host
        self.port = port
        self.starttls = starttls
        self.tls = tls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls_context = ssl.create_default_context(cafile=ca_file or None)

    async def send(self, message: EmailMessage) -> str:
        """Send; returns the Message-ID (the reference of this email)."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                use_tls=self.tls,
                start_tls=self.starttls,
                tls_context=self.tls_context if (self.tls or self.starttls) else None,
                username=self.username or None,
                password=self.password or None,
                timeout=self.timeout,
            )
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPAuthenticationError) as exc:
            raise DeliveryError(f"SMTP refused: {exc}", permanent=True) from exc
        except aiosmtplib.SMTPResponseException as exc:
            # 5xx is the server's final word; 4xx means try again later.
            raise DeliveryError(
                f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc!r}") from exc
        return str(message["Message-ID"])
