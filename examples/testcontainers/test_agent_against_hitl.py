"""Test your own agent against hitl, with the stack in containers.

Install the plugin next to your tests (`pip install hitl-testcontainers`, or from this
repository: `pip install ./testing ./contracts`) and ask for the `hitl_stack` fixture:
Kafka, MongoDB and the approval, agent and notifier services start once per session
(images: see hitl_testcontainers.containers) and are removed at the end.

The agent here is the smallest one the contract allows: it asks for approval by
publishing `approval.requested` and acts only on the `approval.decided` that answers it.
A reviewer decides through the approval service's REST API, as a person would.
Run: `deploy/docker.sh test` (or pytest on this file with a Docker engine).
"""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hitl_contracts.approval import ApprovalDecided, ApprovalRequested, RequestContext
from hitl_testcontainers import Stack


class RefundAgent:
    """A user's agent: refunds need a human, so it asks hitl and waits for the answer."""

    def __init__(self, bootstrap_servers: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
        self.decisions = AIOKafkaConsumer(
            "approval.decided",
            bootstrap_servers=bootstrap_servers,
            group_id=f"refund-agent-{uuid.uuid4()}",
            auto_offset_reset="earliest",
        )

    async def __aenter__(self) -> "RefundAgent":
        await self.producer.start()
        await self.decisions.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.decisions.stop()
        await self.producer.stop()

    async def ask(self, order: str, amount: float) -> ApprovalRequested:
        now = datetime.now(UTC)
        request = ApprovalRequested(
            correlation_id=str(uuid.uuid4()),
            run_id=f"refund-{order}",
            agent="refunds",
            tool="refund",
            arguments={"order": order, "amount": amount},
            reason="refunds need a human",
            context=RequestContext(user_request=f"refund order {order}"),
            requested_at=now,
            expires_at=now + timedelta(minutes=10),
        )
        await self.producer.send_and_wait(
            "approval.requested", request.model_dump_json().encode(), key=request.run_id.encode()
        )
        return request

    async def decision_for(self, correlation_id: str) -> ApprovalDecided:
        async for record in self.decisions:
            decided = ApprovalDecided.model_validate_json(record.value)
            if decided.correlation_id == correlation_id:
                return decided
        raise AssertionError("the decisions stream ended")


async def pending(api: httpx.AsyncClient, correlation_id: str) -> dict[str, Any]:
    """The approval as the reviewer sees it, once hitl has stored it."""
    for _ in range(300):
        response = await api.get(f"/v1/approvals/{correlation_id}")
        if response.status_code == 200:
            approval: dict[str, Any] = response.json()
            return approval
        await asyncio.sleep(0.1)
    raise AssertionError(f"approval {correlation_id} never listed")


async def test_the_agent_acts_only_on_the_reviewers_decision(hitl_stack: Stack) -> None:
    async with (
        RefundAgent(hitl_stack.kafka_bootstrap_servers) as agent,
        httpx.AsyncClient(
            base_url=hitl_stack.approval_url,
            headers={"Authorization": f"Bearer {hitl_stack.reviewer_token}"},
            timeout=30,
        ) as reviewer,
    ):
        request = await agent.ask("42", 120.0)

        approval = await pending(reviewer, request.correlation_id)
        assert approval["status"] == "pending"
        assert approval["request"]["arguments"] == {"order": "42", "amount": 120.0}

        decided = await reviewer.post(
            f"/v1/approvals/{request.correlation_id}/decision",
            json={"decision": "approve", "comment": "refund ok"},
        )
        assert decided.status_code == 200, decided.text

        decision = await asyncio.wait_for(agent.decision_for(request.correlation_id), 60)
        assert decision.decision == "approved"
        assert decision.run_id == "refund-42"
        assert decision.arguments == {"order": "42", "amount": 120.0}
        assert decision.comment == "refund ok"
