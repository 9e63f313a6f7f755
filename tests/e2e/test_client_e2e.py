"""Any agent runtime, over HTTP and hitl_client: create, await, decide, on the real stack.

The approval service and the notifier run as real processes against the real Kafka and
store; the agent side is hitl_client (or plain httpx where the raw HTTP is the point).
"""

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hitl_client import (
    AsyncClient,
    Client,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    Modified,
    Outcome,
    Rejected,
    Unauthorized,
)

from tests.support import recorder
from tests.support.approval_e2e import approval_stack, client, token
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

SCHEMA = {
    "type": "object",
    "properties": {"to_account": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["to_account", "amount"],
}
WAITERS = 200


@pytest.fixture(scope="module")
def stack(
    infra: Infra, hooks: tuple[recorder.Recorder, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        "NOTIFIER_WEBHOOK_URLS": hooks[1] + "/hook",
        "APPROVAL_WATCH_REFRESH_SECONDS": "1",
        "APPROVAL_STREAM_MAX_SECONDS": "20",
    }
    logs = tmp_path_factory.mktemp("client-logs")
    with approval_stack(infra, logs, env=env, services=("approval", "notifier")) as s:
        yield s


@contextlib.asynccontextmanager
async def as_(stack: Stack, who: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(stack.url("approval"), token(who)) as hitl:
        yield hitl


def transfer(**fields: Any) -> dict[str, Any]:
    return {
        "tool": "transfer",
        "arguments": {"to_account": "alice", "amount": 500},
        "reason": "transfers above 100 need approval",
        "arguments_schema": SCHEMA,
        "run_id": f"run-{uuid.uuid4().hex[:8]}",
        **fields,
    }


async def store_commands(stack: Stack) -> float:
    async with client(stack, "ada") as ada:
        text = (await ada.get("/metrics")).text
    return sum(
        float(m.group(1))
        for m in re.finditer(r"^hitl_store_commands_total\{[^}]*\} (\S+)$", text, re.M)
    )


async def waiters(stack: Stack) -> float:
    async with client(stack, "ada") as ada:
        text = (await ada.get("/metrics")).text
    found = re.search(r"^hitl_approval_waiters (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_create_notify_decide_and_the_waiter_gets_the_edit(
    stack: Stack, hooks: tuple[recorder.Recorder, str]
) -> None:
    async with as_(stack, "agent-service") as agent, as_(stack, "ann") as ann:
        approval = await agent.request(**transfer(risk_level="high"), context="Pay Alice 500")
        assert approval.created
        assert approval.state.status == "pending"
        assert approval.state.request.requested_by == "agent-service"  # from the token
        cid = approval.id

        listed = await ann.list(run_id=approval.state.request.run_id)
        assert [a.correlation_id for a in listed.items] == [cid]

        async def notified() -> list[Any]:
            return [
                h
                for h in hooks[0].matching("correlation_id", cid)
                if h.json()["kind"] == "approval.requested"
            ]

        await eventually(notified, what="the webhook for the HTTP-created approval")

        waiter = asyncio.create_task(approval.wait(timeout=60))
        done_at: list[float] = []
        waiter.add_done_callback(lambda _: done_at.append(time.perf_counter()))
        await asyncio.sleep(0.5)  # the waiter is parked in its long-poll
        await ann.decide(cid, "modify", arguments={"to_account": "alice", "amount": 80})
        answered = time.perf_counter()
        outcome = await waiter
    assert isinstance(outcome, Modified)
    assert outcome.arguments == {"to_account": "alice", "amount": 80}
    assert outcome.reviewer == "ann"
    async with client(stack, "agent-service") as raw:
        publishes_keys = (await raw.get("/v1/keys")).status_code == 200
    # Where the service signs (GET /v1/keys answers), the client checked the signature.
    assert agent.keys.published is publishes_keys
    assert bool(outcome.decided.signature) is publishes_keys
    lag = 1000 * (done_at[0] - answered)
    # Negative: the waiter had it before the decider's response arrived (it is woken by the
    # commit, before the decision is published and the response sent).
    print(f"\nwaiter returned {lag:+.1f} ms relative to the decision's HTTP response")


async def test_expiry_reaches_the_waiter(stack: Stack) -> None:
    async with as_(stack, "agent-service") as agent:
        approval = await agent.request(**transfer(), timeout=1)
        started = time.perf_counter()
        outcome = await approval.wait(timeout=30)
    assert isinstance(outcome, Expired)
    assert outcome.reviewer == "system"
    print(f"\nexpired after {time.perf_counter() - started:.2f}s (timeout 1s)")


async def test_creating_twice_gives_one_approval(stack: Stack) -> None:
    cid = f"byo-{uuid.uuid4()}"
    body = transfer(correlation_id=cid)
    async with as_(stack, "agent-service") as agent:
        first = await agent.request(**body)
        again = await agent.request(**body)
        assert (first.created, again.created) == (True, False)
        assert again.id == first.id == cid

        key = f"key-{uuid.uuid4()}"
        by_key = await agent.request(**transfer(run_id="r-key"), idempotency_key=key)
        by_key_again = await agent.request(**transfer(run_id="r-key"), idempotency_key=key)
        assert (by_key.created, by_key_again.created) == (True, False)
        assert by_key.id == by_key_again.id

        deadline = datetime.now(UTC) + timedelta(hours=2)
        fixed = transfer(correlation_id=f"byo-{uuid.uuid4()}", expires_at=deadline)
        assert (await agent.request(**fixed)).created
        assert not (await agent.request(**fixed)).created  # same absolute deadline: same

        with pytest.raises(Conflict) as caught:
            await agent.request(**{**body, "arguments": {"to_account": "eve", "amount": 9}})
        assert "arguments" in caught.value.detail
        assert caught.value.approval is not None
        assert caught.value.approval["request"]["arguments"]["to_account"] == "alice"

        page = await agent.list(run_id=body["run_id"])
    assert [a.correlation_id for a in page.items] == [cid]


async def test_long_poll_times_out_cleanly_with_the_pending_state(stack: Stack) -> None:
    async with as_(stack, "agent-service") as agent:
        approval = await agent.request(**transfer())
    async with client(stack, "agent-service") as raw:
        started = time.perf_counter()
        response = await raw.get(f"/v1/approvals/{approval.id}", params={"wait": "1s"})
        waited = time.perf_counter() - started
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    assert 0.9 <= waited < 5


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in event:
                yield event
            event = {}
        elif line.startswith("id: "):
            event["id"] = line[4:]
        elif line.startswith("data: "):
            event["data"] = json.loads(line[6:])


async def test_sse_streams_changes_ends_at_the_decision_and_resumes(stack: Stack) -> None:
    async with as_(stack, "agent-service") as agent, as_(stack, "bob") as bob:
        approval = await agent.request(**transfer())
        cid = approval.id
        seen: list[dict[str, Any]] = []
        async with client(stack, "agent-service") as raw:
            async with raw.stream("GET", f"/v1/approvals/{cid}/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for event in sse_events(response):
                    seen.append(event)
                    if len(seen) == 1:
                        await bob.decide(cid, "reject", comment="not a payee")
            # The stream ended by itself after the terminal state.
            assert [e["data"]["status"] for e in seen] == ["pending", "rejected"]
            terminal = seen[-1]["id"]
            again = await raw.get(f"/v1/approvals/{cid}/events", headers={"Last-Event-ID": "0"})
            resumed = [json.loads(x[6:]) for x in again.text.splitlines() if x.startswith("data:")]
            assert [e["status"] for e in resumed] == ["rejected"]
            done = await raw.get(f"/v1/approvals/{cid}/events", headers={"Last-Event-ID": terminal})
            assert done.status_code == 204  # an EventSource stops reconnecting
        outcome = await approval.wait(timeout=5)
    assert isinstance(outcome, Rejected)
    assert outcome.comment == "not a payee"


async def test_many_waiters_cost_the_store_nothing_per_waiter(stack: Stack) -> None:
    async with as_(stack, "agent-service") as agent:
        approval = await agent.request(**transfer())
    cid = approval.id
    limits = httpx.Limits(max_connections=WAITERS + 10, max_keepalive_connections=WAITERS + 10)
    async with httpx.AsyncClient(
        base_url=stack.url("approval"),
        headers={"Authorization": f"Bearer {token('agent-service')}"},
        timeout=90,
        limits=limits,
    ) as raw:
        # What the store sees with nobody waiting (heartbeats, the outbox), per second.
        window = 3.0
        before = await store_commands(stack)
        await asyncio.sleep(window)
        idle_rate = (await store_commands(stack) - before) / window

        before, started = await store_commands(stack), time.perf_counter()
        polls = [
            asyncio.create_task(raw.get(f"/v1/approvals/{cid}", params={"wait": "60"}))
            for _ in range(WAITERS)
        ]

        async def all_parked() -> bool:
            return await waiters(stack) >= WAITERS

        await eventually(all_parked, timeout=60, what=f"{WAITERS} waiters parked")
        await asyncio.sleep(window)
        elapsed = time.perf_counter() - started
        spent = await store_commands(stack) - before
        extra = spent - idle_rate * elapsed

        async with as_(stack, "ann") as ann:
            await ann.decide(cid, "approve")
            answered = time.perf_counter()
        responses = await asyncio.gather(*polls)
        last = time.perf_counter()
    statuses = {r.json()["status"] for r in responses}
    print(
        f"\n{WAITERS} waiters on one approval for {elapsed:.1f}s (arriving, then parked): "
        f"{spent:.0f} store commands, {extra:.0f} more than idle ({idle_rate:.1f}/s); the last "
        f"answered {1000 * (last - answered):+.0f} ms relative to the decision's HTTP response"
    )
    assert statuses == {"approved"}
    assert all(r.status_code == 200 for r in responses)
    # A read per waiter would cost at least one command each (200); the shared watch costs
    # the first arrivals' reads and one re-read per refresh (APPROVAL_WATCH_REFRESH_SECONDS=1).
    assert extra < WAITERS / 4, (spent, idle_rate, elapsed)


async def test_create_needs_the_agent_role_and_a_valid_body(stack: Stack) -> None:
    url = stack.url("approval")
    async with httpx.AsyncClient(base_url=url) as anonymous:
        response = await anonymous.post("/v1/approvals", json=transfer())
        assert response.status_code == 401
    async with as_(stack, "ann") as ann:
        with pytest.raises(Forbidden, match="agent"):
            await ann.request(**transfer())  # a reviewer only
    async with AsyncClient(url, "no-such-token") as stranger:
        with pytest.raises(Unauthorized):
            await stranger.request(**transfer())
    async with as_(stack, "agent-service") as agent:
        with pytest.raises(Forbidden, match="only an admin"):
            await agent.request(**transfer(), requested_by="someone-else")
        with pytest.raises(Invalid) as caught:
            await agent.request(**transfer(), risk_level="apocalyptic")
        assert "risk_level" in caught.value.detail
    async with as_(stack, "ada") as ada:
        on_behalf = await ada.request(**transfer(), requested_by="carol")
        assert on_behalf.state.request.requested_by == "carol"
    async with client(stack, "agent-service") as raw:
        big = transfer(arguments={"blob": "x" * (2 * 1024 * 1024)})
        assert (await raw.post("/v1/approvals", json=big)).status_code == 413


def test_sync_client_round_trip(stack: Stack) -> None:
    with (
        Client(stack.url("approval"), token("agent-service")) as agent,
        Client(stack.url("approval"), token("bob")) as bob,
    ):
        approval = agent.request(**transfer())
        bob.decide(approval.id, "modify", arguments={"to_account": "alice", "amount": 1})
        outcome = approval.wait(timeout=30)
        resumed = agent.resume(approval.id).wait(timeout=1)
    assert isinstance(outcome, Modified)
    assert outcome.arguments == {"to_account": "alice", "amount": 1}
    assert resumed == outcome


async def test_kafka_iterator_once_per_decision_across_a_restart(
    stack: Stack, infra: Infra
) -> None:
    agent_name = f"byo-{uuid.uuid4().hex[:6]}"
    group = f"byo-consumer-{uuid.uuid4().hex[:6]}"
    topic = stack.prefix + "approval.decided"

    async def decided(hitl: AsyncClient, how_many: int, agent: str) -> list[str]:
        ids = []
        for _ in range(how_many):
            approval = await hitl.request(**transfer(agent=agent))
            ids.append(approval.id)
        return ids

    async def take(hitl: AsyncClient, count: int) -> list[Outcome]:
        got: list[Outcome] = []
        stream = hitl.decisions(
            agent=agent_name,
            group_id=group,
            bootstrap_servers=infra.kafka_bootstrap_servers,
            topic=topic,
        )
        try:
            while len(got) < count:
                got.append(await asyncio.wait_for(anext(stream), timeout=30))
            # Nothing more for this agent: no copies, nothing of the other agent.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(stream), timeout=3)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
        return got

    async with as_(stack, "agent-service") as agent, as_(stack, "ann") as ann:
        mine = await decided(agent, 2, agent_name)
        theirs = await decided(agent, 1, agent_name + "-other")
        for cid in mine + theirs:
            await ann.decide(cid, "approve")
        first = await take(agent, 2)
        assert sorted(o.correlation_id for o in first) == sorted(mine)

        later = await decided(agent, 1, agent_name)
        await ann.decide(later[0], "reject", comment="no")
        second = await take(agent, 1)  # a restarted consumer, same group
    assert [o.correlation_id for o in second] == later
    assert isinstance(second[0], Rejected)


async def test_a_waiter_on_another_replica_is_woken_by_the_decision_event(
    stack: Stack, infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # Same topics and database, its own port; its refresh is too slow to be what wakes it.
    other = Stack(
        infra,
        tmp_path_factory.mktemp("replica-logs"),
        env_extra={**stack.env_extra, "APPROVAL_WATCH_REFRESH_SECONDS": "120"},
        suffix=stack.suffix,
        signer=stack.signer,  # a replica of the same deployment signs with the same key
    )
    other.start("approval")
    try:
        async with as_(stack, "agent-service") as agent:
            approval = await agent.request(**transfer())
        async with (
            AsyncClient(other.url("approval"), token("agent-service")) as remote,
            as_(stack, "ann") as ann,
        ):
            handle = await remote.resume(approval.id)
            waiter = asyncio.create_task(handle.wait(timeout=60))
            await asyncio.sleep(1.0)  # parked on the other replica, and its consumer reading
            await ann.decide(approval.id, "approve")
            answered = time.perf_counter()
            outcome = await asyncio.wait_for(waiter, timeout=20)
            lag = time.perf_counter() - answered
    finally:
        other.close()
    assert outcome.allows_execution
    assert lag < 20  # far below the 120 s refresh: the approval.decided wake-up did it
    print(f"\nwaiter on the other replica returned {1000 * lag:.0f} ms after the decision")
