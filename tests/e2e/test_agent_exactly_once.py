"""Exactly once, end to end: duplicate decisions, two agent replicas, a crash mid-resume.

The transfer is the witness: the ledger holds one entry per tool call id, and the
balances show whether money moved once, twice or not at all.
"""

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from hitl_contracts import ApprovalDecided, Channel, Decision
from hitl_shared.kafka import encode

from tests.support.agent_e2e import (
    AgentProcess,
    agent_stack,
    balances,
    decide,
    marker,
    pending,
    read_events,
    submit,
    wait_status,
)
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import DEV_AGENT_TOKEN, Stack
from tests.support.wait import eventually

PARTITIONS = 3  # of every topic a stack creates (KAFKA_PARTITIONS default)


@pytest.fixture(scope="module")
def stack(
    infra: Infra, llm: tuple[ScriptedLLM, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with agent_stack(infra, llm[1], tmp_path_factory.mktemp("agent-exactly-once")) as s:
        yield s


def script_transfer(llm: ScriptedLLM, tag: str, amount: float) -> None:
    llm.script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": amount})],
        Say("Final: {tool_results}"),
    )


async def publish_everywhere(infra: Infra, stack: Stack, decided: ApprovalDecided) -> None:
    """A duplicate of the decision on every partition, so every replica gets one at once."""
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        for partition in range(PARTITIONS):
            await producer.send_and_wait(
                f"{stack.prefix}approval.decided",
                encode(decided),
                key=decided.run_id.encode(),
                partition=partition,
            )
    finally:
        await producer.stop()


async def ledger_entries(store: Any, run_id: str) -> int:
    count: int = await store["ledger"].count_documents({"_id": {"$regex": f"^{run_id}:"}})
    return count


async def test_duplicate_decisions_and_two_agent_replicas_move_the_money_once(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str], store: Any
) -> None:
    second = AgentProcess(stack, "agent-2")
    try:
        tags = [marker() for _ in range(3)]
        for tag in tags:
            script_transfer(llm[0], tag, 500)
        async with stack.agent() as agent, stack.reviewer() as reviewer:
            before = await balances(agent)
            runs = [await submit(agent, f"Transfer 500 to Alice {tag}") for tag in tags]
            approvals = [(await pending(reviewer, run_id))[0] for run_id in runs]
            for approval in approvals:
                decision = await decide(reviewer, approval["correlation_id"], "approve")
                assert decision["status"] == "approved"
                request = approval["request"]
                # Duplicates as the approval service would sign them (the stack's key).
                await publish_everywhere(
                    infra,
                    stack,
                    stack.signer.sign(
                        ApprovalDecided(
                            correlation_id=approval["correlation_id"],
                            run_id=request["run_id"],
                            agent=request["agent"],
                            tool=request["tool"],
                            tool_call_id=request["tool_call_id"],
                            decision=Decision.APPROVED,
                            arguments=request["arguments"],
                            reviewer="dev",
                            channel=Channel.API,
                            decided_at=datetime.now(UTC),
                        )
                    ),
                )
            for run_id in runs:
                done = await wait_status(agent, run_id, "completed")
                assert "Transferred 500.00 from checking to alice" in done["output"]
                assert await ledger_entries(store, run_id) == 1
                types = [e["event"] for e in await read_events(agent, run_id)]
                assert types.count("decision_applied") == 1, types
                assert types.count("tool_executed") == 1, types
                assert types.count("resumed") == 1, types
                assert types.count("completed") == 1, types

            after = await balances(agent)
            assert after["alice"] == before["alice"] + 1500
            assert after["checking"] == before["checking"] - 1500

            # Each decision arrived four times (the real one + one per partition).
            # A run can complete before the copies on other partitions are read (the
            # second replica may still be joining the group), so wait until every
            # extra delivery was recognised and refused, on either replica...
            def refusals(correlation_id: str) -> int:
                logs = (stack.logs / "agent.log").read_text() + second.log.read_text()
                return sum(
                    1
                    for line in logs.splitlines()
                    if correlation_id in line and "already applied" in line
                )

            for approval in approvals:
                cid = approval["correlation_id"]

                async def refused(cid: str = cid) -> bool:
                    return refusals(cid) >= 2

                await eventually(refused, timeout=60, what=f"duplicates of {cid} refused")

            # ...and only then check that those late copies moved nothing either.
            assert await balances(agent) == after
            for run_id in runs:
                assert await ledger_entries(store, run_id) == 1
                types = [e["event"] for e in await read_events(agent, run_id)]
                assert types.count("tool_executed") == 1, types
    finally:
        second.stop()


async def test_a_crash_between_executing_and_recording_is_finished_by_the_redelivery(
    stack: Stack, llm: tuple[ScriptedLLM, str], store: Any
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 300)
    stack.stop("agent")
    faulty = AgentProcess(stack, "agent-faulty", AGENT_FAULT_CRASH_AFTER_EXECUTION="transfer")
    try:
        async with (
            stack.reviewer() as reviewer,
            httpx.AsyncClient(
                base_url=faulty.url,
                headers={"Authorization": f"Bearer {DEV_AGENT_TOKEN}"},
                timeout=30,
            ) as agent,
        ):
            before = await balances(agent)
            run_id = await submit(agent, f"Transfer 300 to Alice {tag}")
            (approval,) = await pending(reviewer, run_id)
            await decide(reviewer, approval["correlation_id"], "approve")

        async def crashed() -> bool:
            return faulty.proc.poll() == 70

        await eventually(crashed, timeout=60, what="the agent to crash after the transfer")
        # The crash window: the money moved, the run does not know yet (decision and
        # outcome are stored together, so it is still paused on the decision).
        assert await ledger_entries(store, run_id) == 1
        latest = await store["run_steps"].find_one({"run_id": run_id}, sort=[("seq", -1)])
        assert latest["state"]["status"] == "awaiting_approval"
        assert latest["state"]["turn"]["results"] == []
        # The transfer is idempotent (keyed by the call): it ran unclaimed, and its
        # record is written only after it, so the crash left none.
        assert await store["tool_executions"].find_one({"_id": {"$regex": f"^{run_id}:"}}) is None
    finally:
        faulty.stop()

    stack.start("agent")
    async with stack.agent() as agent:
        done = await wait_status(agent, run_id, "completed", timeout=90)
        assert "Transferred 300.00 from checking to alice" in done["output"]
        after = await balances(agent)
        assert after["alice"] == before["alice"] + 300
        assert after["checking"] == before["checking"] - 300
        assert await ledger_entries(store, run_id) == 1
