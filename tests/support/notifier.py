"""Helpers for the notifier's end-to-end tests: Kafka in and out, requests, stack env."""

import asyncio
import contextlib
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hitl_contracts import ApprovalRequested, RiskLevel

from tests.factories import approval_request


def request(
    *,
    tool: str = "transfer",
    agent: str = "banking",
    risk: RiskLevel = RiskLevel.HIGH,
    timeout: float = 600.0,
    **overrides: Any,
) -> ApprovalRequested:
    return approval_request(
        tool=tool,
        agent=agent,
        risk_level=risk,
        timeout=timedelta(seconds=timeout),
        reason="transfers above 100 need a human",
        **overrides,
    )


async def publish(bootstrap: str, topic: str, event: ApprovalRequested, *, times: int = 1) -> None:
    """The same bytes `times` times: what a redelivering broker would hand out."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        raw = event.model_dump_json().encode()
        for _ in range(times):
            await producer.send_and_wait(topic, raw, key=event.run_id.encode())
    finally:
        await producer.stop()


@dataclass
class TopicTail:
    """Everything published on some topics since the start, read by a fresh group."""

    bootstrap: str
    topics: list[str]
    seen: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def on(self, topic: str, **equal: Any) -> list[dict[str, Any]]:
        return [
            value
            for t, value in self.seen
            if t == topic and all(value.get(k) == v for k, v in equal.items())
        ]

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["TopicTail"]:
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=self.bootstrap,
            group_id=f"test-tail-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=20,
        )
        await consumer.start()

        async def pump() -> None:
            async for record in consumer:
                with contextlib.suppress(ValueError):
                    self.seen.append((record.topic, json.loads(record.value)))

        task = asyncio.create_task(pump())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await consumer.stop()


def reviewer_entry(name: str, token: str, **attributes: str) -> dict[str, Any]:
    return {
        "name": name,
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "roles": ["reviewer"],
        **attributes,
    }
