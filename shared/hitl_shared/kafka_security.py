"""How every hitl Kafka client authenticates and encrypts: one set of settings, two shapes.

`KafkaSecuritySettings` (mixed into `CommonSettings`) reads `KAFKA_SECURITY_PROTOCOL`,
`KAFKA_SASL_*` and `KAFKA_SSL_*`. `broker_security` turns them into FastStream's
security object for `KafkaBroker`; `client_kwargs` into the keyword arguments of the
aiokafka clients used directly (admin, tools). Both come from one mapping (FastStream's
own `parse_security`), so the broker and the raw clients can never disagree.

Production refuses a connection that is not both encrypted and authenticated
(SASL_SSL, or SSL with a client certificate) unless `KAFKA_ALLOW_INSECURE=1` says the
network is trusted on purpose: whoever can write `approval.decided` can otherwise try
to forge decisions (signatures make those harmless, but tasks and requests are not signed).
"""

import ssl
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)
from pydantic import SecretStr
from pydantic_settings import BaseSettings

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

_SASL: dict[str, type[SASLPlaintext | SASLScram256 | SASLScram512]] = {
    "SCRAM-SHA-512": SASLScram512,
    "SCRAM-SHA-256": SASLScram256,
    "PLAIN": SASLPlaintext,
}


class KafkaSecuritySettings(BaseSettings):
    kafka_security_protocol: Protocol = "PLAINTEXT"
    kafka_sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr | None = None
    # A mounted secret; read at start-up, so a rotated password needs a restart.
    kafka_sasl_password_file: Path | None = None
    # The CA that signed the broker's certificate; the system store when unset.
    kafka_ssl_cafile: Path | None = None
    # Client certificate and key (PEM) for mutual TLS.
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    # Production only: accept a connection that is not encrypted and authenticated.
    kafka_allow_insecure: bool = False

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_security_protocol.startswith("SASL_")

    def kafka_sasl_secret(self) -> str:
        """The SASL password, from KAFKA_SASL_PASSWORD or the file KAFKA_SASL_PASSWORD_FILE."""
        if self.kafka_sasl_password is not None:
            return self.kafka_sasl_password.get_secret_value()
        if self.kafka_sasl_password_file is not None:
            # A trailing newline is an artefact of `echo`/editors, never part of the secret.
            return self.kafka_sasl_password_file.read_text().rstrip("\r\n")
        return ""


def kafka_security_problems(s: KafkaSecuritySettings, *, production: bool) -> list[str]:
    """Why these settings cannot work (or are not allowed in production); empty when fine."""
    problems: list[str] = []
    if s.kafka_uses_sasl:
        if not s.kafka_sasl_username:
            problems.append(
                f"KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs KAFKA_SASL_USERNAME"
            )
        if s.kafka_sasl_password is not None and s.kafka_sasl_password_file is not None:
            problems.append("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
        elif s.kafka_sasl_password is None and s.kafka_sasl_password_file is None:
            problems.append(
                f"KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} needs KAFKA_SASL_PASSWORD "
                "or KAFKA_SASL_PASSWORD_FILE"
            )
    if (s.kafka_ssl_certfile is None) != (s.kafka_ssl_keyfile is None):
        problems.append("mutual TLS needs both KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE")
    uses_tls_files = any(
        f is not None for f in (s.kafka_ssl_cafile, s.kafka_ssl_certfile, s.kafka_ssl_keyfile)
    )
    if uses_tls_files and not s.kafka_uses_tls:
        # Otherwise a typo in the protocol silently sends everything in clear text.
        problems.append(
            f"KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol} "
            "does not use TLS (use SSL or SASL_SSL)"
        )
    for name, path in (
        ("KAFKA_SASL_PASSWORD_FILE", s.kafka_sasl_password_file if s.kafka_uses_sasl else None),
        ("KAFKA_SSL_CAFILE", s.kafka_ssl_cafile),
        ("KAFKA_SSL_CERTFILE", s.kafka_ssl_certfile),
        ("KAFKA_SSL_KEYFILE", s.kafka_ssl_keyfile),
    ):
        if path is not None and not path.is_file():
            problems.append(f"{name}={path} is not a readable file")
    if production and not s.kafka_allow_insecure:
        authenticated = s.kafka_uses_sasl or s.kafka_ssl_certfile is not None
        if not (s.kafka_uses_tls and authenticated):
            problems.append(
                f"production refuses KAFKA_SECURITY_PROTOCOL={s.kafka_security_protocol}"
                + ("" if s.kafka_uses_tls else " (not encrypted)")
                + ("" if authenticated else " (clients not authenticated)")
                + ": use SASL_SSL (or SSL with KAFKA_SSL_CERTFILE/KEYFILE), or set "
                "KAFKA_ALLOW_INSECURE=1 if the network to the broker is trusted on purpose"
            )
        if s.kafka_uses_sasl and s.kafka_sasl_mechanism == "PLAIN" and not s.kafka_uses_tls:
            problems.append(
                "production refuses SASL PLAIN without TLS: the password travels in clear"
            )
    return problems


def ssl_context(s: KafkaSecuritySettings) -> ssl.SSLContext | None:
    """A verifying TLS context (hostname checked) for SSL and SASL_SSL; None otherwise."""
    if not s.kafka_uses_tls:
        return None
    key_password = s.kafka_ssl_key_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=s.kafka_ssl_cafile,
        certfile=s.kafka_ssl_certfile,
        keyfile=s.kafka_ssl_keyfile,
        password=key_password.get_secret_value() if key_password else None,
    )
    return context


def broker_security(s: KafkaSecuritySettings) -> BaseSecurity | None:
    """FastStream's `security=` for `KafkaBroker`; None for plain text."""
    context = ssl_context(s)
    if s.kafka_uses_sasl:
        sasl = _SASL[s.kafka_sasl_mechanism]
        return sasl(
            s.kafka_sasl_username,
            s.kafka_sasl_secret(),
            ssl_context=context,
            use_ssl=s.kafka_uses_tls,
        )
    if context is not None:
        return BaseSecurity(ssl_context=context, use_ssl=True)
    return None


def client_kwargs(s: KafkaSecuritySettings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's producer, consumer and admin client."""
    kwargs: dict[str, Any] = parse_security(broker_security(s))
    return kwargs


def describe(s: KafkaSecuritySettings) -> str:
    """For the start-up log line: how this process talks to Kafka (no secrets)."""
    parts: list[str] = [s.kafka_security_protocol]
    if s.kafka_uses_sasl:
        parts.append(f"{s.kafka_sasl_mechanism} as {s.kafka_sasl_username}")
    if s.kafka_ssl_certfile is not None:
        parts.append(f"client certificate {s.kafka_ssl_certfile}")
    if s.kafka_allow_insecure:
        parts.append("KAFKA_ALLOW_INSECURE")
    return ", ".join(parts)
