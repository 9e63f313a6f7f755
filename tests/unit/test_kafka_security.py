"""Kafka SASL/TLS settings: what each combination builds, and what is refused at start-up."""

import os
import ssl
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import TopicAlreadyExistsError
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from hitl_approval.settings import ApprovalSettings
from hitl_shared.kafka import _check_created
from hitl_shared.kafka_security import broker_security, client_kwargs, describe
from hitl_shared.settings import CommonSettings
from pydantic import ValidationError

CA = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")

pytestmark = pytest.mark.skipif(not CA.is_file(), reason="needs a system CA bundle as a CA file")


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> CommonSettings:
    for name in list(os.environ):
        if name.startswith("KAFKA_") or name == "HITL_ENV":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CommonSettings()


def refused(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as info:
        settings(monkeypatch, **env)
    return str(info.value)


SASL_SSL = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_USERNAME": "hitl-agent",
    "KAFKA_SASL_PASSWORD": "s3cret",
    "KAFKA_SSL_CAFILE": str(CA),
}


def test_the_default_is_plaintext_without_security(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch)
    assert broker_security(s) is None
    assert client_kwargs(s) == {}


def test_sasl_ssl_builds_scram_512_with_a_verifying_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch, **SASL_SSL)
    security = broker_security(s)
    assert isinstance(security, SASLScram512)
    assert security.use_ssl
    assert security.ssl_context is not None
    assert security.ssl_context.check_hostname
    assert security.ssl_context.verify_mode == ssl.CERT_REQUIRED
    kwargs: dict[str, Any] = client_kwargs(s)
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == (
        "hitl-agent",
        "s3cret",
    )
    assert "s3cret" not in describe(s)
    assert describe(s) == "SASL_SSL, SCRAM-SHA-512 as hitl-agent"


@pytest.mark.parametrize(
    ("mechanism", "kind"),
    [("SCRAM-SHA-256", SASLScram256), ("PLAIN", SASLPlaintext), ("SCRAM-SHA-512", SASLScram512)],
)
def test_each_mechanism_maps_to_its_faststream_class(
    monkeypatch: pytest.MonkeyPatch, mechanism: str, kind: type[BaseSecurity]
) -> None:
    s = settings(monkeypatch, **SASL_SSL, KAFKA_SASL_MECHANISM=mechanism)
    assert type(broker_security(s)) is kind
    assert client_kwargs(s)["sasl_mechanism"] == mechanism


def test_the_password_file_is_read_without_its_trailing_newline(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "kafka.password"
    secret.write_text("from-a-file\n")
    env = {k: v for k, v in SASL_SSL.items() if k != "KAFKA_SASL_PASSWORD"}
    s = settings(monkeypatch, **env, KAFKA_SASL_PASSWORD_FILE=str(secret))
    assert client_kwargs(s)["sasl_plain_password"] == "from-a-file"


def test_ssl_alone_is_tls_without_sasl(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CAFILE=str(CA))
    kwargs = client_kwargs(s)
    assert kwargs["security_protocol"] == "SSL"
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert "sasl_mechanism" not in kwargs


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "a"},
            "needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE",
        ),
        (
            {**SASL_SSL, "KAFKA_SASL_PASSWORD_FILE": str(CA)},
            "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both",
        ),
        ({**SASL_SSL, "KAFKA_SSL_CAFILE": "/nonexistent/ca.crt"}, "is not a readable file"),
        ({**SASL_SSL, "KAFKA_SSL_CERTFILE": str(CA)}, "needs both KAFKA_SSL_CERTFILE and"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT", "KAFKA_SSL_CAFILE": str(CA)},
            "does not use TLS",
        ),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_TLS"}, "kafka_security_protocol"),
        ({**SASL_SSL, "KAFKA_SASL_MECHANISM": "GSSAPI"}, "kafka_sasl_mechanism"),
    ],
)
def test_settings_that_cannot_work_fail_at_start_up(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], reason: str
) -> None:
    assert reason in refused(monkeypatch, **env)


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({}, "production refuses KAFKA_SECURITY_PROTOCOL=PLAINTEXT (not encrypted) (clients not"),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "KAFKA_SASL_USERNAME": "a",
                "KAFKA_SASL_PASSWORD": "b",
            },
            "refuses KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT (not encrypted)",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": str(CA)},
            "refuses KAFKA_SECURITY_PROTOCOL=SSL (clients not authenticated)",
        ),
    ],
)
def test_production_refuses_kafka_that_is_not_encrypted_and_authenticated(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], reason: str
) -> None:
    message = refused(monkeypatch, HITL_ENV="production", **env)
    assert reason in message
    assert "KAFKA_ALLOW_INSECURE=1" in message


def test_production_accepts_sasl_ssl_and_mutual_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    # HITL_ENV=production on CommonSettings checks only what is common (Kafka here).
    assert settings(monkeypatch, HITL_ENV="production", **SASL_SSL).kafka_uses_sasl
    # CA stands in for a PEM certificate and key: only their presence is checked here.
    mtls = settings(
        monkeypatch,
        HITL_ENV="production",
        KAFKA_SECURITY_PROTOCOL="SSL",
        KAFKA_SSL_CAFILE=str(CA),
        KAFKA_SSL_CERTFILE=str(CA),
        KAFKA_SSL_KEYFILE=str(CA),
    )
    assert mtls.kafka_uses_tls


def test_kafka_allow_insecure_lets_production_use_plaintext_on_purpose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s = settings(monkeypatch, HITL_ENV="production", KAFKA_ALLOW_INSECURE="1")
    assert s.kafka_security_protocol == "PLAINTEXT"
    assert describe(s) == "PLAINTEXT, KAFKA_ALLOW_INSECURE"


def test_a_refused_topic_creation_stops_start_up_naming_the_topic() -> None:
    _check_created([("agent.tasks", 0), ("agent.runs", TopicAlreadyExistsError.errno)])
    with pytest.raises(RuntimeError, match=r"agent\.tasks: TopicAuthorizationFailedError"):
        _check_created([("agent.tasks", 29, "not authorized")])


def test_production_names_every_refusal_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    settings(monkeypatch)  # clears KAFKA_* from the environment
    with pytest.raises(ValidationError) as info:
        ApprovalSettings(hitl_env="production")
    assert "APPROVAL_REVIEWERS" in str(info.value)
    assert "KAFKA_SECURITY_PROTOCOL=PLAINTEXT" in str(info.value)
