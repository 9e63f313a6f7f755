"""Interrupts, halts and cost against in-memory ports: what a supervisor sees happen."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from hitl_agent.domain.cost import PriceTable, loop_prevented
from hitl_agent.domain.oversight import (
    INTERVENTION_TOOL,
    Interrupt,
    InterruptState,
)
from hitl_agent.domain.run import RunStatus, Usage
from hitl_agent.service_layer.oversight import Oversight, RunEnded
from hitl_agent.tools import intervention
from hitl_contracts import Decision, TaskSubmitted

from tests.fakes import MemoryOversightStore
from tests.support.agent_harness import Harness, call, decided, harness, say, tool_calls


def supervised(replies: list[Any]) -> tuple[Harness, Oversight, MemoryOversightStore]:
    h = harness(replies)
    store = MemoryOversightStore()
    oversight = Oversight(store, approval_timeout=timedelta(minutes=30))
    h.runner.oversight = oversight
    return h, oversight, store


def interrupt_after_first_model_call(h: Harness, oversight: Oversight) -> None:
    """The supervisor presses the button while the model thinks (mid-run)."""
    inner = h.model.complete

    async def complete(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        reply = await inner(messages, tools)
        if len(h.model.calls) == 1:
            run_id = next(iter(h.store.docs.values()))["run_id"]
            await oversight.interrupt(await h.run(run_id), reason="looks wrong", by="olga")
        return reply

    h.model.complete = complete  # type: ignore[method-assign]


async def test_an_interrupt_pauses_at_the_next_boundary_and_continues_with_a_note() -> None:
    h, oversight, store = supervised(
        [tool_calls(call("note", text="a")), tool_calls(call("note", text="b")), say("done")]
    )
    interrupt_after_first_model_call(h, oversight)
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    # The step in flight finished (the model's reply stored), and the next one waited.
    assert len(h.model.calls) == 1
    assert h.types(run_id)[-2:] == ["interrupted", "awaiting_approval"]
    (request,) = h.requests
    assert (request.context.model_extra or {})["kind"] == "supervisor"
    assert "olga interrupted this run: looks wrong" in request.arguments["reason"]
    assert store.flags[run_id].state is InterruptState.PAUSED
    assert store.flags[run_id].correlation_id == request.correlation_id

    await h.runner.resume(decided(request, Decision.APPROVED, comment="only note b"))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert h.world.notes == ["a", "b"]
    notes = [m["content"] for m in h.model.calls[1] if m["role"] == "user"]
    assert notes[-1] == "A human supervisor (rita) paused this run and says: only note b"
    # Delivered once, not again at every later boundary.
    assert sum("only note b" in str(m.get("content")) for m in h.model.calls[2]) == 1
    assert loop_prevented(run.pending) is None


async def test_a_rejected_interrupt_stops_the_run_and_counts_as_a_loop_prevented() -> None:
    h, oversight, _ = supervised([tool_calls(call("note", text="a")), say("done")])
    interrupt_after_first_model_call(h, oversight)
    run_id = await h.start()
    (request,) = h.requests
    await h.runner.resume(decided(request, Decision.REJECTED, comment="spinning"))
    run = await h.run(run_id)
    assert run.status is RunStatus.CANCELLED
    assert run.error == "stopped by rita after an interrupt: spinning"
    assert len(h.model.calls) == 1
    assert loop_prevented(run.pending) == "interrupt"


async def test_an_interrupt_of_an_ended_run_is_refused_and_one_outrun_is_reported() -> None:
    h, oversight, store = supervised([say("done")])
    run_id = await h.start()
    run = await h.run(run_id)
    with pytest.raises(RunEnded):
        await oversight.interrupt(run, reason="late", by="olga")
    # Stored while the run was still going; it ended before any boundary.
    store.flags[run_id] = Interrupt(run_id=run_id, reason="late", by="olga")
    flag = await oversight.interrupt_of(run)
    assert flag is not None
    assert flag.state is InterruptState.ENDED
    assert flag.run_status == "completed"


async def test_a_halt_parks_runs_holds_new_ones_and_resume_sets_them_going() -> None:
    h, oversight, store = supervised([tool_calls(call("note", text="a")), say("done")])
    await oversight.halt("test", reason="retry loop", by="olga")
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.HALTED
    assert h.model.calls == [], "a new task waits for the resume"
    assert h.types(run_id) == ["started", "halted"]
    assert store.parked == {run_id: "test"}

    woken: list[TaskSubmitted] = []

    async def wake(task: TaskSubmitted) -> None:
        woken.append(task)

    resumed = await oversight.resume("test", by="ada", runner=h.runner, wake=wake)
    assert resumed == [run_id]
    assert [t.task_id for t in woken] == [run_id]
    assert (await h.run(run_id)).status is RunStatus.RUNNING
    await h.runner.start(woken[0])  # the worker that receives the wake-up
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert [e.action for e in store.entries] == ["halt", "resume"]
    assert store.entries[1].detail == {"lifted": True, "runs": [run_id]}


async def test_a_run_its_worker_set_going_as_the_halt_was_lifted_counts_as_resumed() -> None:
    """The worker parks the run; the halt is lifted and the parked runs listed before
    the worker's second look at the halt, which then sets the run going itself: the
    resume still reports the run as set going by it."""
    h, oversight, store = supervised([say("done")])
    await oversight.halt("test", reason="retry loop", by="olga")
    parked, listed = asyncio.Event(), asyncio.Event()
    thinking, answer = asyncio.Event(), asyncio.Event()
    halt, halted_of, complete = store.halt, store.halted_of, h.model.complete

    async def second_look(agent: str) -> Any:  # `_park`'s look after storing the pause
        parked.set()
        await listed.wait()
        return await halt(agent)

    async def listing(agent: str, limit: int = 10_000) -> list[str]:
        parked = await halted_of(agent, limit)
        listed.set()
        await thinking.wait()  # the worker has set the run going meanwhile
        return parked

    async def model(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
        thinking.set()
        await answer.wait()
        return await complete(messages, tools)

    store.halt = second_look  # type: ignore[method-assign]
    store.halted_of = listing  # type: ignore[method-assign]
    h.model.complete = model  # type: ignore[method-assign]
    worker = asyncio.create_task(h.start())
    await parked.wait()
    assert store.parked, "indexed as parked before the pause was stored"

    async def wake(task: TaskSubmitted) -> None:
        raise AssertionError("a run already going is not woken again")

    resumed = await oversight.resume("test", by="ada", runner=h.runner, wake=wake)
    answer.set()
    run_id = await worker
    assert resumed == [run_id]
    assert (await h.run(run_id)).status is RunStatus.COMPLETED
    assert h.types(run_id) == ["started", "halted", "resumed", "model_replied", "completed"]
    assert store.parked == {}


def test_a_supervisor_approval_is_about_the_intervention_tool() -> None:
    # The approval service and the agent's trust check compare the decision's tool.
    assert INTERVENTION_TOOL == intervention.NAME


def test_prices_turn_tokens_into_money() -> None:
    table = PriceTable.load(
        inline='{"currency": "EUR", "default": {"prompt_per_million": 1.0, '
        '"completion_per_million": 4.0}, "agents": {"banking": {"prompt_per_million": 10}}}'
    )
    usage = Usage(prompt_tokens=500_000, completion_tokens=250_000)
    assert table.cost("files", usage) == 1.5
    assert table.cost("banking", usage) == 5.0
    assert table.currency == "EUR"
    assert PriceTable.load().cost("any", usage) == 0.0
    with pytest.raises(ValueError, match="AGENT_PRICES"):
        PriceTable.load(inline='{"default": {"prompt_per_million": -1}}')
