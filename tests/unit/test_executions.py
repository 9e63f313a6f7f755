"""An idempotent call's outcome record for operators goes beside the checkpoint, not before it."""

import asyncio
import logging

import pytest
from hitl_agent.domain.policy import PolicyArgs
from hitl_agent.service_layer.executions import Executions
from hitl_agent.tools.registry import Execution, ExecutionKey, Tool

from tests.fakes import MemoryStore


class Amount(PolicyArgs):
    amount: int


class SlowRecords(MemoryStore):
    """Records wait for `release`, or fail when `broken`."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.broken = False

    async def record_execution(
        self, key: str, *, tool: str, owner: str, result: str, ok: bool
    ) -> None:
        await self.release.wait()
        if self.broken:
            raise ConnectionError("store unreachable")
        await super().record_execution(key, tool=tool, owner=owner, result=result, ok=ok)


async def pay(args: Amount, execution: Execution) -> str:
    return f"paid {args.amount} for {execution.key.tool_call_id}"


PAY = Tool(name="pay", description="pay", args=Amount, execute=pay, idempotent=True)
KEY = ExecutionKey(run_id="r1", tool_call_id="c1")


async def test_the_outcome_is_returned_before_its_record_lands_and_settle_waits_for_it() -> None:
    store = SlowRecords()
    executions = Executions(store, owner="w1")
    outcome = await asyncio.wait_for(executions.run(PAY, KEY, Amount(amount=5)), 1.0)
    assert (outcome.result, outcome.ok) == ("paid 5 for c1", True)
    assert store.execs == {}, "the record waits; the call did not"
    store.release.set()
    await executions.settle()
    record = store.execs[str(KEY)]
    assert (record["state"], record["owner"], record["result"]) == ("done", "w1", "paid 5 for c1")
    assert not executions.recording


async def test_a_record_that_cannot_be_written_is_logged_and_the_outcome_stands(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = SlowRecords()
    store.broken = True
    store.release.set()
    executions = Executions(store, owner="w1")
    with caplog.at_level(logging.WARNING):
        outcome = await executions.run(PAY, KEY, Amount(amount=7))
        await executions.settle()
    assert (outcome.result, outcome.ok) == ("paid 7 for c1", True)
    assert store.execs == {}
    assert "outcome of r1:c1 not recorded for operators" in caplog.text
