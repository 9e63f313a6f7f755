"""A notifier with no recipient anywhere, through real processes, Kafka and the store.

It stores nothing about any approval (nothing it stored could ever be used), but it is
not a way round the decision signature: forged `approval.decided` records are still
refused and dead-lettered with the reason, and it says at start-up that it is silent.
"""

import functools
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from hitl_contracts import ApprovalDecided, Channel, Decision
from hitl_contracts.signing import DecisionSigner, private_key_pem
from hitl_notifier.adapters.store import APPROVALS, DELIVERIES
from pymongo import AsyncMongoClient

from tests.e2e.test_approval_trust import TRANSFER, pending
from tests.support.approval_e2e import (
    Bus,
    approval_stack,
    client,
    consumed_all,
    notifier_refuses_forgeries,
    now,
)
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

SIGNER = DecisionSigner.generate()


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("silent-logs")
    # No NOTIFIER_EMAIL_TO, NOTIFIER_SLACK_CHANNELS, NOTIFIER_WEBHOOK_URLS or routes.
    env = {"APPROVAL_SIGNING_KEY": private_key_pem(SIGNER.key).decode()}
    with approval_stack(infra, logs, env=env, services=("approval", "notifier")) as s:
        yield s


@pytest.fixture(scope="module")
async def bus(infra: Infra, stack: Stack) -> AsyncIterator[Bus]:
    async with Bus(infra, stack) as b:
        yield b


async def test_a_silent_notifier_stores_nothing_and_still_refuses_forged_decisions(
    infra: Infra, bus: Bus, stack: Stack
) -> None:
    run_id = f"r-silent-{uuid.uuid4().hex[:8]}"
    cid = await pending(bus, stack, run_id=run_id)
    async with client(stack, "ann") as ann:
        response = await ann.post(f"/v1/approvals/{cid}/decision", json={"decision": "reject"})
        assert response.status_code == 200, response.text

    # An attacker who can write to approval.decided tries the silent notifier.
    real = ApprovalDecided(
        correlation_id=cid,
        run_id=run_id,
        decision=Decision.APPROVED,
        arguments={**TRANSFER, "to_account": "mallory"},
        reviewer="cfo",
        channel=Channel.API,
        decided_at=now(),
        agent="banking",
        tool="transfer",
    )
    await notifier_refuses_forgeries(infra, bus, stack, real, SIGNER)

    # Every record of both topics handled (the request, the real decision, the forged).
    for consumed in ("approval.requested", "approval.decided"):
        await eventually(
            functools.partial(
                consumed_all, infra, f"{stack.prefix}hitl-notifier", stack.prefix + consumed
            ),
            timeout=60,
            what=f"the notifier to consume {consumed}",
        )
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        db = mongo[stack.database]
        assert await db[APPROVALS].count_documents({}) == 0, "nothing about approvals stored"
        assert await db[DELIVERIES].count_documents({}) == 0, "nothing sent"
    finally:
        await mongo.close()
    log = (stack.logs / "notifier.log").read_text()
    assert "no recipient configured" in log
