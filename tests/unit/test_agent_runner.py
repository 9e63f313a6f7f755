"""The agent runtime's logic against in-memory ports: pauses, resumes, guards, races."""

import asyncio
from datetime import timedelta

import pytest
from hitl_agent.domain.policy import AgentPolicy
from hitl_agent.domain.run import PendingKind, RunStatus, Style
from hitl_agent.service_layer.executions import UNKNOWN_OUTCOME
from hitl_agent.service_layer.runner import NotCancellable
from hitl_contracts import Decision, TaskSubmitted

from tests.support.agent_harness import Crash, call, decided, harness, plan, say, tool_calls


async def test_safe_calls_run_and_the_run_completes_without_approval() -> None:
    h = harness([tool_calls(call("note", text="a"), call("pay", amount=50)), say("all done")])
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == "all done"
    assert h.world.notes == ["a"]
    assert list(h.world.payments.values()) == [50]
    assert h.requests == []
    assert h.types(run_id) == [
        "started",
        "model_replied",
        "tool_executed",
        "tool_executed",
        "model_replied",
        "completed",
    ]
    assert [e.seq for e in h.published] == [1, 2, 3, 4, 5, 6]
    assert run.usage.total_tokens == 30


async def test_parallel_turn_holds_each_risky_call_and_resumes_only_after_all() -> None:
    h = harness(
        [
            tool_calls(call("note", text="n"), call("pay", amount=300), call("pay", amount=400)),
            say("final"),
        ]
    )
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert h.world.notes == ["n"], "the safe call of the turn ran"
    first, second = h.requests
    assert [r.arguments["amount"] for r in h.requests] == [300, 400]
    assert first.reason == "payment of 300 is over 100"
    assert first.risk_level.value == "high"
    assert first.arguments_schema is not None
    assert first.context.user_request == "do it"

    await h.runner.resume(decided(first, Decision.APPROVED))
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL, "one decision of two does not resume"
    assert len(h.model.calls) == 1
    assert list(h.world.payments.values()) == [300]

    await h.runner.resume(decided(second, Decision.REJECTED, comment="too much"))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert len(h.model.calls) == 2
    assert list(h.world.payments.values()) == [300]
    tool_messages = [m for m in h.model.calls[1] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == [
        "noted n",
        "paid 300",
        "The human operator rejected this: too much",
    ]
    assert h.types(run_id).count("resumed") == 1


async def test_duplicate_decisions_apply_once_even_when_racing() -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("done")])
    run_id = await h.start()
    (request,) = h.requests
    approval = decided(request, Decision.APPROVED)
    await asyncio.gather(*(h.runner.resume(approval) for _ in range(4)))
    await h.runner.resume(approval)
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert list(h.world.payments.values()) == [500]
    types = h.types(run_id)
    assert types.count("decision_applied") == 1
    assert types.count("tool_executed") == 1
    assert types.count("completed") == 1


async def test_two_workers_driving_one_run_store_each_step_once() -> None:
    h = harness([tool_calls(call("note", text="x")), tool_calls(call("note", text="y")), say("ok")])
    run_id = await h.start()
    await asyncio.gather(h.runner.drive(run_id), h.runner.drive(run_id))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert [m["role"] for m in run.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert h.types(run_id).count("completed") == 1


async def test_modified_arguments_are_revalidated_and_executed() -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("{tool}")])
    run_id = await h.start()
    (request,) = h.requests
    await h.runner.resume(decided(request, Decision.MODIFIED, arguments={"amount": 80}))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert list(h.world.payments.values()) == [80]
    result = run.messages[-2]["content"]
    assert result.startswith(
        'A human operator (rita via api) changed the arguments to {"amount": 80.0}.'
    )


async def test_invalid_edited_arguments_count_as_a_rejection_with_the_reason() -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("x")])
    run_id = await h.start()
    (request,) = h.requests
    await h.runner.resume(decided(request, Decision.MODIFIED, arguments={"amount": -5}))
    run = await h.run(run_id)
    assert h.world.payments == {}
    result = run.messages[-2]["content"]
    assert "edited arguments were invalid (amount: Input should be greater than 0)" in result
    assert "treated as a rejection" in result


@pytest.mark.parametrize(
    ("decision", "fragment"),
    [
        (Decision.EXPIRED, "timed out without a human decision"),
        (Decision.REJECTED, "The human operator rejected this: no reason given"),
    ],
)
async def test_no_go_decisions_tell_the_model_plainly_and_the_loop_continues(
    decision: Decision, fragment: str
) -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("explained")])
    run_id = await h.start()
    await h.runner.resume(decided(h.requests[0], decision))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert fragment in run.messages[-2]["content"]
    assert h.world.payments == {}


async def test_a_crash_after_executing_and_before_storing_is_finished_by_the_redelivery() -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("done")])
    run_id = await h.start()
    approval = decided(h.requests[0], Decision.APPROVED)
    h.world.crash_after.add("pay")
    with pytest.raises(Crash):
        await h.runner.resume(approval)
    # Decision and outcome are stored together: nothing was stored, nothing told yet.
    crashed = await h.run(run_id)
    assert crashed.status is RunStatus.AWAITING_APPROVAL
    assert "resumed" not in h.types(run_id)
    await h.runner.resume(approval)  # Kafka redelivers the uncommitted decision
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert list(h.world.payments.values()) == [500], "the keyed effect applied once"
    assert h.types(run_id).count("resumed") == 1
    assert h.types(run_id).count("tool_executed") == 1


async def test_an_interrupted_call_of_a_non_idempotent_tool_is_never_repeated() -> None:
    h = harness([tool_calls(call("fire", target="x")), say("{r}")])
    run_id = await h.start()
    approval = decided(h.requests[0], Decision.APPROVED)
    h.world.crash_after.add("fire")
    with pytest.raises(Crash):
        await h.runner.resume(approval)
    await h.runner.resume(approval)
    run = await h.run(run_id)
    assert h.world.fired == ["x"]
    assert run.messages[-2]["content"] == UNKNOWN_OUTCOME


async def test_a_tool_that_keeps_failing_trips_the_guard_and_a_human_lets_it_go_on() -> None:
    failing = tool_calls(call("broken", text="same"))
    h = harness(
        [failing, failing, failing, say("after guard")], policy=AgentPolicy(max_repeated_failures=3)
    )
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    (guard,) = run.open_calls()
    assert guard.kind is PendingKind.GUARD
    assert guard.tool == "request_human_intervention"
    assert "broken failed 3 times with the same arguments" in guard.reason
    assert len(h.model.calls) == 3
    await h.runner.resume(decided(h.requests[0], Decision.APPROVED, comment="use note instead"))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert "says: use note instead" in h.model.calls[-1][-1]["content"]


async def test_the_step_limit_pauses_and_a_rejection_stops_the_run() -> None:
    h = harness(
        [tool_calls(call("note", text=str(i))) for i in range(5)] + [say("x")],
        policy=AgentPolicy(max_steps=2),
    )
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert run.steps == 2
    assert "limit of 2 model steps" in run.open_calls()[0].reason
    await h.runner.resume(decided(h.requests[0], Decision.REJECTED, comment="enough"))
    run = await h.run(run_id)
    assert run.status is RunStatus.FAILED
    assert run.error is not None
    assert "loop guard" in run.error
    assert "enough" in run.error


async def test_the_token_budget_pauses_and_approval_grants_a_fresh_budget() -> None:
    h = harness(
        [tool_calls(call("note", text=str(i))) for i in range(3)] + [say("x")],
        policy=AgentPolicy(token_budget=1_000),
        tokens=(500, 100),
    )
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert (
        run.open_calls()[0].reason
        == "loop guard: the run used 1200 tokens, over its budget of 1000"
    )
    await h.runner.resume(decided(h.requests[0], Decision.APPROVED))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.ceilings.tokens == 2_200
    assert len(h.model.calls) == 4


async def test_router_holds_actions_below_the_confidence_threshold_and_runs_the_rest() -> None:
    h = harness(
        [
            plan(
                {"tool": "note", "arguments": {"text": "sure"}, "confidence": 0.95},
                {"tool": "pay", "arguments": {"amount": 50}, "confidence": 0.4},
            ),
            plan(final="finished"),
        ],
        policy=AgentPolicy(style=Style.ROUTER, confidence_threshold=0.8),
    )
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.style is Style.ROUTER
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert h.world.notes == ["sure"]
    (request,) = h.requests
    assert request.tool == "pay"
    assert request.reason == "model confidence 0.40 is below the 0.80 threshold"
    assert request.context.model_extra == {"confidence": 0.4, "kind": "tool"}
    await h.runner.resume(decided(request, Decision.APPROVED))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert run.output == "finished"
    results = h.model.calls[1][-1]
    assert results["role"] == "user"
    assert results["content"].splitlines()[1:] == [
        '1. note {"text": "sure"}: noted sure',
        '2. pay {"amount": 50}: paid 50',
    ]


async def test_router_tells_the_model_when_its_plan_is_not_valid() -> None:
    from hitl_agent.adapters.chat import Reply

    h = harness(
        [Reply({"role": "assistant", "content": "not json"}), plan(final="ok")],
        policy=AgentPolicy(style=Style.ROUTER),
    )
    run_id = await h.start()
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert "not a valid action plan" in h.model.calls[1][-1]["content"]


async def test_the_model_asks_a_human_and_gets_the_answer_as_the_tool_result() -> None:
    h = harness(
        [
            tool_calls(
                call(
                    "request_human_intervention",
                    reason="Which account?",
                    context="two match",
                    action_type="clarification",
                )
            ),
            say("{x}"),
        ]
    )
    run_id = await h.start()
    (request,) = h.requests
    assert request.reason == "the agent asks for help: Which account?"
    await h.runner.resume(decided(request, Decision.APPROVED, comment="the savings one"))
    run = await h.run(run_id)
    assert (
        run.messages[-2]["content"] == "The human operator (rita via api) answered: the savings one"
    )


async def test_cancelling_a_paused_run_cancels_its_approvals_and_ignores_late_decisions() -> None:
    h = harness([tool_calls(call("pay", amount=300), call("pay", amount=400)), say("x")])
    run_id = await h.start()
    run = await h.runner.cancel(run_id, "changed my mind")
    assert run.status is RunStatus.CANCELLED
    assert sorted(c for c, _ in h.approvals.cancelled) == sorted(
        r.correlation_id for r in h.requests
    )
    assert all(comment == "run cancelled: changed my mind" for _, comment in h.approvals.cancelled)
    await h.runner.resume(decided(h.requests[0], Decision.APPROVED))
    assert h.world.payments == {}
    assert (await h.run(run_id)).status is RunStatus.CANCELLED
    with pytest.raises(NotCancellable):
        await h.runner.cancel(run_id, "again")


async def test_the_relay_delivers_what_a_failed_publish_left_behind() -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("x")])
    failures = iter([True])

    original = h.runner.outbox.publish_request

    async def flaky(request):  # type: ignore[no-untyped-def]
        if next(failures, False):
            raise ConnectionError("broker down")
        await original(request)

    h.runner.outbox.publish_request = flaky
    await h.start()
    assert h.requests == []
    # Delivered markers go in the relay's batch; the undelivered one stays after it.
    assert len(h.runner.outbox.done) == len(h.store.markers) - 1
    assert len(h.store.markers) > 1
    assert await h.runner.outbox.relay(grace=timedelta(seconds=-1)) == 1
    assert len(h.requests) == 1
    assert h.store.markers == {}
    assert await h.runner.outbox.relay(grace=timedelta(seconds=-1)) == 0


async def test_the_relay_projects_where_the_run_is_now_not_the_older_checkpoint() -> None:
    h = harness([tool_calls(call("pay", amount=500)), say("x")])
    run_id = await h.start()
    paused = await h.run(run_id)
    await h.runner.resume(decided(h.requests[0], Decision.APPROVED))
    done = await h.run(run_id)
    assert done.status is RunStatus.COMPLETED
    await h.runner.outbox.forget_delivered()
    assert h.store.markers == {}
    # The paused checkpoint's marker is back (its deletion was lost in a crash):
    # the relay re-delivers it, and the listing must still show the completed run.
    h.store.markers[f"{run_id}:{paused.seq:08d}"] = {
        "_id": f"{run_id}:{paused.seq:08d}",
        "at": paused.updated_at,
    }
    assert await h.runner.outbox.relay(grace=timedelta(seconds=-1)) == 1
    assert h.store.projected[run_id].status is RunStatus.COMPLETED
    assert h.store.projected[run_id].seq == done.seq


async def test_only_runs_in_progress_are_listed_for_rescue_and_a_stalled_one_is_carried_on() -> (
    None
):
    h = harness([tool_calls(call("pay", amount=500)), say("x")])
    task_run = await h.runner.submit(TaskSubmitted(task_id="stuck", input="do it", agent="test"))
    assert list(h.store.in_progress) == [task_run.run_id], "queued: listed"
    # Nobody ever consumes its task (say the publish after the REST call failed).
    assert await h.runner.recover(stalled_after=timedelta(seconds=-1)) == 1
    run = await h.run("stuck")
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert h.store.in_progress == {}, "paused: no longer listed"
    await h.runner.resume(decided(h.requests[0], Decision.APPROVED))
    assert (await h.run("stuck")).status is RunStatus.COMPLETED
    assert h.store.in_progress == {}


async def test_a_replica_racing_on_a_non_idempotent_call_reuses_the_result() -> None:
    h = harness([tool_calls(call("fire", target="x")), say("done")], wait_seconds=5)
    run_id = await h.start()
    approval = decided(h.requests[0], Decision.APPROVED)
    await asyncio.gather(h.runner.resume(approval), h.runner.resume(approval))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert h.world.fired == ["x"]
    assert run.messages[-2]["content"] == "fired at x"
