"""The walking skeleton on a secured broker: SASL_SSL, SCRAM-SHA-512, one user and the
ACLs of deploy/local/kafka/acls.txt per service; what the ACLs and TLS keep out."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError
from hitl_shared.kafka_security import KafkaSecuritySettings, client_kwargs

from tests.e2e.test_walking_skeleton import (
    balances,
    marker,
    one_pending,
    script_transfer,
    submit,
    wait_status,
)
from tests.support import fake_openai
from tests.support.infra import Infra
from tests.support.secure_kafka import SecureKafka, secure_kafka
from tests.support.stack import Stack

SERVICE_USERS = {"approval": "hitl-approval", "agent": "hitl-agent", "notifier": "hitl-notifier"}


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    with secure_kafka(tmp_path_factory.mktemp("sasl-state")) as secured:
        yield secured


@pytest.fixture(scope="module")
def stack(
    infra: Infra,
    kafka: SecureKafka,
    llm: tuple[fake_openai.ScriptedLLM, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("sasl-stack-logs")
    s = Stack(
        Infra(kafka.bootstrap, infra.mongodb_url),
        logs,
        env_extra={
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm[1] + "/v1",
            "OPENAI_MODEL": "scripted",
            # The broker is the test's own; acls.txt names the unprefixed topics.
            "HITL_TOPIC_PREFIX": "",
        },
        service_env={name: kafka.env(user) for name, user in SERVICE_USERS.items()},
    )
    try:
        s.start_all()
        yield s
    finally:
        s.close()
        print(f"service logs: {logs}")


def client_settings(kafka: SecureKafka, user: str, **overrides: Any) -> dict[str, Any]:
    env = {k.lower(): v for k, v in kafka.env(user).items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    settings = KafkaSecuritySettings.model_validate({**env, **overrides})
    return {"bootstrap_servers": kafka.bootstrap, **client_kwargs(settings)}


async def start_and_poll(consumer: AIOKafkaConsumer) -> None:
    # Refused when it fetches the topic's metadata: at start or at the first poll.
    await consumer.start()
    await consumer.getmany(timeout_ms=5000)


async def test_submit_approve_executed_over_sasl_ssl(
    stack: Stack, llm: tuple[fake_openai.ScriptedLLM, str]
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 500, "alice")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 500 to Alice {tag}")
        cid = (await one_pending(reviewer, run_id))["correlation_id"]
        decided = await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert decided.status_code == 200, decided.text
        done = await wait_status(agent, run_id, "completed")
        assert "Transferred 500.00 from checking to alice" in done["output"]
        after = await balances(agent)
        assert after["alice"] == before["alice"] + 500
    for name in SERVICE_USERS:
        assert "SASL_SSL, SCRAM-SHA-512 as hitl-" in (stack.logs / f"{name}.log").read_text()


async def test_a_wrong_password_is_refused(kafka: SecureKafka, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password")
    producer = AIOKafkaProducer(
        **client_settings(kafka, "hitl-client", kafka_sasl_password_file=str(wrong)),
        request_timeout_ms=5000,
    )
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


async def test_without_tls_the_listener_answers_nothing(kafka: SecureKafka) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, request_timeout_ms=5000)
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


@pytest.mark.parametrize("user", ["hitl-client", "hitl-notifier", "hitl-agent"])
async def test_only_the_approval_service_may_write_decisions(
    kafka: SecureKafka, stack: Stack, user: str
) -> None:
    producer = AIOKafkaProducer(**client_settings(kafka, user), request_timeout_ms=5000)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(stack.env["HITL_TOPIC_PREFIX"] + "approval.decided", b"{}")
    finally:
        await producer.stop()


async def test_a_client_reads_decisions_but_not_tasks(kafka: SecureKafka, stack: Stack) -> None:
    allowed = AIOKafkaConsumer(
        "approval.decided",
        group_id="hitl-client-dashboard",
        auto_offset_reset="earliest",
        **client_settings(kafka, "hitl-client"),
    )
    await allowed.start()
    try:
        await allowed.getmany(timeout_ms=2000)
    finally:
        await allowed.stop()
    refused = AIOKafkaConsumer(
        "agent.tasks",
        group_id="hitl-client-dashboard",
        auto_offset_reset="earliest",
        **client_settings(kafka, "hitl-client"),
    )
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await start_and_poll(refused)
    finally:
        await refused.stop()
