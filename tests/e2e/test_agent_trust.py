"""Nobody moves money without a real approval, and nobody uses the agent API anonymously.

Decisions here are published straight onto `approval.decided`, as anyone with write
access to the broker could: forged ones (unsigned, another key, altered, about another
call, widening the edit) are refused, written to the run's history and counted, and
the money stays where it was; one signed with the stack's approval key resumes the run.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from hitl_contracts import ApprovalDecided, Channel, Decision
from hitl_contracts.signing import DecisionSigner
from hitl_shared.kafka import encode

from tests.support.agent_e2e import (
    AUDITOR_TOKEN,
    CAROL_TOKEN,
    MALLORY_TOKEN,
    OPS_TOKEN,
    agent_stack,
    balances,
    marker,
    read_events,
    run_state,
    submit,
    wait_status,
)
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def stack(
    infra: Infra, llm: tuple[ScriptedLLM, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with agent_stack(infra, llm[1], tmp_path_factory.mktemp("agent-trust")) as s:
        yield s


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    kafka = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await kafka.start()
    try:
        yield kafka
    finally:
        await kafka.stop()


async def publish(producer: AIOKafkaProducer, stack: Stack, decided: ApprovalDecided) -> None:
    await producer.send_and_wait(
        f"{stack.prefix}approval.decided", encode(decided), key=decided.run_id.encode()
    )


def decision_for(
    state: dict[str, Any], decision: Decision, arguments: dict[str, Any] | None = None
) -> ApprovalDecided:
    """A decision about the run's held call, unsigned: what a forger starts from."""
    (held,) = state["pending_approvals"]
    return ApprovalDecided(
        correlation_id=held["correlation_id"],
        run_id=state["run_id"],
        agent=state["agent"],
        tool=held["tool"],
        tool_call_id=held["tool_call_id"],
        decision=decision,
        arguments=arguments if arguments is not None else held["arguments"],
        reviewer="cfo",
        channel=Channel.API,
        decided_at=datetime.now(UTC),
    )


async def refusals(agent: httpx.AsyncClient, run_id: str, count: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        events = await read_events(agent, run_id)
        refused = [e["detail"] for e in events if e["event"] == "decision_refused"]
        return refused if len(refused) >= count else None

    return await eventually(probe, timeout=60, what=f"{count} refusals in run {run_id}")


async def refused_metric(agent: httpx.AsyncClient, reason: str) -> float:
    text = (await agent.get("/metrics")).text
    line = f'hitl_agent_decisions_refused_total{{reason="{reason}"}}'
    return next((float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)), 0.0)


async def test_forged_decisions_move_no_money_and_the_run_history_says_why(
    stack: Stack, llm: tuple[ScriptedLLM, str], producer: AIOKafkaProducer
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": 400})],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 400 to Alice {tag}")
        state = await wait_status(agent, run_id, "awaiting_approval")
        real = decision_for(state, Decision.APPROVED)
        widened = {"to_account": "bob", "amount": 4000, "from_account": "checking"}
        forgeries = [
            ("unsigned", decision_for(state, Decision.MODIFIED, widened)),
            ("unknown_key", DecisionSigner.generate().sign(real)),
            (
                "bad_signature",
                stack.signer.sign(real).model_copy(
                    update={"decision": Decision.MODIFIED, "arguments": widened}
                ),
            ),
            (
                "wrong_call",
                stack.signer.sign(real.model_copy(update={"tool_call_id": "call_other"})),
            ),
            (
                "widening_edit",
                stack.signer.sign(decision_for(state, Decision.MODIFIED, widened)),
            ),
        ]
        counted = {code: await refused_metric(agent, code) for code, _ in forgeries}
        for _, forged in forgeries:
            await publish(producer, stack, forged)
        refused = await refusals(agent, run_id, len(forgeries))
        assert [r["code"] for r in refused] == [code for code, _ in forgeries]
        assert all(r["reason"] for r in refused)
        assert "raised" in refused[-1]["reason"] or "to_account" in refused[-1]["reason"]
        state = await run_state(agent, run_id)
        assert state["status"] == "awaiting_approval", "the run waits for a real decision"
        assert await balances(agent) == before, "no money moved"
        for code, _ in forgeries:
            assert await refused_metric(agent, code) == counted[code] + 1, code

        # The real decision (signed by the approval service's key) still resumes it.
        await publish(
            producer,
            stack,
            stack.signer.sign(
                decision_for(
                    state,
                    Decision.MODIFIED,
                    {"to_account": "alice", "amount": 300, "from_account": "checking"},
                )
            ),
        )
        done = await wait_status(agent, run_id, "completed")
        assert "Transferred 300.00 from checking to alice" in done["output"]
        after = await balances(agent)
        assert after["alice"] == before["alice"] + 300
        assert after["bob"] == before["bob"]


async def test_every_route_needs_a_token_and_runs_are_their_submitters(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": 450})],
        Say("Final: {tool_results}"),
    )
    async with (
        stack.agent(token="") as anonymous,
        stack.agent("not-a-token") as unknown,
        stack.agent(CAROL_TOKEN) as carol,
        stack.agent(MALLORY_TOKEN) as mallory,
        stack.agent(AUDITOR_TOKEN) as auditor,
        stack.agent(OPS_TOKEN) as ops,
    ):
        run_id = await submit(carol, f"Transfer 450 to Alice {tag}", submitted_by="ops")
        state = await wait_status(carol, run_id, "awaiting_approval")
        assert state["submitted_by"] == "carol", "from the token, not the metadata"
        for client in (anonymous, unknown):
            assert (await client.post("/v1/runs", json={"input": "Deposit 5"})).status_code == 401
            assert (await client.get(f"/v1/runs/{run_id}")).status_code == 401
            assert (await client.get(f"/v1/runs/{run_id}/events")).status_code == 401
            assert (await client.post(f"/v1/runs/{run_id}/cancel")).status_code == 401
            assert (await client.get("/v1/accounts")).status_code == 401
        # Someone else's run does not exist, as far as mallory can tell.
        missing = str(uuid.uuid4())
        assert (await mallory.get(f"/v1/runs/{missing}")).json() == {
            "detail": f"no run with id {missing!r}"
        }
        for path in (f"/v1/runs/{run_id}", f"/v1/runs/{run_id}/events"):
            response = await mallory.get(path)
            assert response.status_code == 404
            assert response.json() == {"detail": f"no run with id {run_id!r}"}
        assert (await mallory.post(f"/v1/runs/{run_id}/cancel")).status_code == 404
        assert (await auditor.get(f"/v1/runs/{run_id}")).status_code == 200
        assert (await auditor.post(f"/v1/runs/{run_id}/cancel")).status_code == 403
        assert (await auditor.post("/v1/runs", json={"input": "Deposit 5"})).status_code == 403
        assert (await carol.get("/v1/accounts")).status_code == 403

        cancelled = await ops.post(f"/v1/runs/{run_id}/cancel", json={"reason": "fraud check"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["error"] == "cancelled by ops: fraud check"
        events = await read_events(carol, run_id)
        (cancel,) = [e for e in events if e["event"] == "cancelled"]
        assert cancel["detail"]["by"] == "ops"


async def test_split_transfers_and_large_deposits_need_approval(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [Call("transfer", {"to_account": "bob", "amount": 99}) for _ in range(5)],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent:
        before = await balances(agent)
        run_id = await submit(agent, f"Send 5 x 99 to bob {tag}")
        state = await wait_status(agent, run_id, "awaiting_approval")
        held = state["pending_approvals"]
        assert len(held) == 4, "only the first 99 ran without approval"
        assert all("split amounts add up" in p["reason"] for p in held)
        after = await balances(agent)
        assert after["bob"] == before["bob"] + 99

        tag = marker()
        llm[0].script(tag, [Call("deposit", {"amount": 999_999})], Say("Final: {tool_results}"))
        run_id = await submit(agent, f"Deposit 999999 {tag}")
        state = await wait_status(agent, run_id, "awaiting_approval")
        (deposit,) = state["pending_approvals"]
        assert deposit["reason"].startswith("deposit of 999999.00 exceeds")
        assert (await balances(agent))["checking"] == after["checking"]


async def test_idempotency_keys_replay_the_run_and_refuse_another_body(stack: Stack) -> None:
    key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
    body = {"input": f"What is my balance? {marker()}", "agent": "banking"}
    async with stack.agent(CAROL_TOKEN) as carol, stack.agent(MALLORY_TOKEN) as mallory:
        first = await carol.post("/v1/runs", json=body, headers=key)
        assert first.status_code == 202, first.text
        again = await carol.post("/v1/runs", json=body, headers=key)
        assert again.status_code == 200, again.text
        assert again.json()["run_id"] == first.json()["run_id"]
        other = await carol.post("/v1/runs", json={**body, "input": "Deposit 5"}, headers=key)
        assert other.status_code == 409, other.text
        # Keys are per caller: mallory's same key is mallory's own run.
        theirs = await mallory.post("/v1/runs", json=body, headers=key)
        assert theirs.status_code == 202
        assert theirs.json()["run_id"] != first.json()["run_id"]


async def test_bad_input_is_refused_before_anything_is_stored(stack: Stack) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"input": "Deposit 5", "metadata": {"pad": "'
        for _ in range(40):
            yield b"x" * 1024 * 1024
            await asyncio.sleep(0)
        yield b'"}}'

    async with stack.agent() as agent:
        oversize = await agent.post(
            "/v1/runs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert oversize.status_code == 413
        for raw in (
            '{"input": "Deposit 5", "metadata": {"x": NaN}}',
            '{"input": "Deposit 5", "metadata": {"x": 1e999}}',
            '{"input": "Deposit 5", "metadata": {"x": 123456789012345678901234567890}}',
            json.dumps({"input": "Deposit 5", "metadata": {"a\u0000b": 1}}),
            json.dumps({"input": "Deposit 5", "metadata": {"$where": 1}}),
        ):
            response = await agent.post(
                "/v1/runs", content=raw, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 422, (raw, response.text)
