"""What the benchmark sends: approval requests straight to Kafka, decisions over HTTP."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from hitl_contracts import ApprovalRequested, RequestContext, RiskLevel
from hitl_contracts.base import utcnow
from hitl_shared.kafka import encode


def approval_request(*, agent: str = "bench") -> ApprovalRequested:
    """A request as an agent of one's own would emit it (DESIGN: 'agent builders')."""
    now = utcnow()
    run_id = f"bench-run-{uuid.uuid4().hex}"
    return ApprovalRequested(
        correlation_id=str(uuid.uuid4()),
        run_id=run_id,
        agent=agent,
        tool="transfer",
        tool_call_id=f"call_{uuid.uuid4().hex[:16]}",
        arguments={"to_account": "alice", "amount": 500.0},
        reason="transfer of 500.00 exceeds the 100.00 approval threshold",
        risk_level=RiskLevel.HIGH,
        context=RequestContext(user_request="Transfer 500 to Alice", agent_reasoning=""),
        requested_at=now,
        expires_at=now + timedelta(hours=1),
    )


@asynccontextmanager
async def producer(bootstrap: str, *, linger_ms: int) -> AsyncIterator[AIOKafkaProducer]:
    """Same durability as the services' producer (acks=all, idempotent)."""
    p = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=linger_ms
    )
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def send_request(
    p: AIOKafkaProducer, topic: str, request: ApprovalRequested
) -> "asyncio.Future[Any]":
    """Queue one request; the returned future resolves when the broker acknowledged it."""
    ack: asyncio.Future[Any] = await p.send(
        topic,
        encode(request),
        key=request.run_id.encode(),
        headers=[
            ("content-type", b"application/json"),
            ("correlation_id", request.correlation_id.encode()),
        ],
    )
    return ack


@dataclass(frozen=True)
class Decided:
    correlation_id: str
    status: int
    sent: float  # perf_counter when the request was sent
    answered: float  # perf_counter when the response was complete
    answered_wall: float  # time.time() at the same moment


async def decide(client: httpx.AsyncClient, correlation_id: str, verb: str = "approve") -> Decided:
    """POST one decision; status 0 means the connection failed (reported, not raised)."""
    sent = time.perf_counter()
    try:
        response = await client.post(
            f"/v1/approvals/{correlation_id}/decision",
            json={"decision": verb, "comment": "bench"},
        )
        status = response.status_code
    except httpx.TransportError:
        status = 0
    answered, wall = time.perf_counter(), time.time()
    return Decided(correlation_id, status, sent, answered, wall)


async def paced(
    count: int, rate: float, job: Callable[[int], Coroutine[Any, Any, None]]
) -> tuple[float, int]:
    """Start job(i) at start + i/rate (open loop: a slow answer never delays the next).

    Returns the wall time it took and how many starts fell more than 5 ms behind.
    """
    start = time.perf_counter()
    late = 0
    tasks = []
    for i in range(count):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -0.005:
            late += 1
        tasks.append(asyncio.create_task(job(i)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, late
