"""The agent acts only on decisions the approval service signed, about the call it holds."""

import pytest
from hitl_agent.domain.run import RunStatus
from hitl_agent.service_layer.trust import DecisionRefused
from hitl_contracts import ApprovalDecided, Decision
from hitl_contracts.signing import DecisionSigner
from hitl_shared.decision_keys import DecisionKeys, KeysUnavailable

from tests.support.agent_harness import SIGNER, Harness, call, decided, harness, say, tool_calls
from tests.support.http_server import free_port


async def paused() -> tuple[Harness, str, ApprovalDecided]:
    h = harness([tool_calls(call("pay", amount=400)), say("done")])
    run_id = await h.start()
    (request,) = h.requests
    return h, run_id, decided(request, Decision.APPROVED)


async def refused(h: Harness, run_id: str, forged: ApprovalDecided, code: str) -> None:
    with pytest.raises(DecisionRefused) as caught:
        await h.runner.resume(forged)
    assert caught.value.refusal.code == code
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL, "a refused decision leaves the run paused"
    assert h.world.payments == {}, "no money moved"
    events = [e for e in h.store.events(run_id) if e.type.value == "decision_refused"]
    assert events[-1].detail["code"] == code
    assert events[-1].detail["reason"]


async def test_an_unsigned_decision_is_refused_and_written_to_the_history() -> None:
    h, run_id, good = await paused()
    unsigned = good.model_copy(update={"signature": "", "key_id": ""})
    await refused(h, run_id, unsigned, "unsigned")


async def test_a_decision_signed_by_another_key_is_refused() -> None:
    h, run_id, good = await paused()
    await refused(h, run_id, DecisionSigner.generate().sign(good), "unknown_key")


async def test_an_altered_decision_is_refused() -> None:
    h, run_id, good = await paused()
    tampered = good.model_copy(
        update={"decision": Decision.MODIFIED, "arguments": {"amount": 4000}}
    )
    await refused(h, run_id, tampered, "bad_signature")


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("tool_call_id", "call_other", "wrong_call"),
        ("tool", "fire", "wrong_tool"),
        ("agent", "banking", "wrong_agent"),
    ],
)
async def test_a_signed_decision_about_another_call_is_refused(
    field: str, value: str, code: str
) -> None:
    h, run_id, good = await paused()
    other = SIGNER.sign(good.model_copy(update={field: value}))
    await refused(h, run_id, other, code)


async def test_an_edit_that_widens_the_call_is_refused_even_when_signed() -> None:
    h, run_id, _ = await paused()
    (request,) = h.requests
    await refused(
        h, run_id, decided(request, Decision.MODIFIED, arguments={"amount": 4000}), "widening_edit"
    )


async def test_the_real_decision_still_resumes_after_a_forgery_was_refused() -> None:
    h, run_id, good = await paused()
    await refused(h, run_id, good.model_copy(update={"signature": ""}), "unsigned")
    (request,) = h.requests
    await h.runner.resume(decided(request, Decision.MODIFIED, arguments={"amount": 250}))
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert list(h.world.payments.values()) == [250], "a narrowing edit runs"


async def test_keys_that_cannot_be_fetched_leave_the_decision_for_later() -> None:
    h, run_id, good = await paused()
    h.runner.keys = DecisionKeys(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    with pytest.raises(KeysUnavailable):
        await h.runner.resume(good)
    run = await h.run(run_id)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert "decision_refused" not in h.types(run_id), "not a verdict on the decision"
    assert h.world.payments == {}


async def test_an_edit_is_compared_as_it_would_run() -> None:
    h = harness([tool_calls(call("send", to="alice", amount=400)), say("done")])
    run_id = await h.start()
    (request,) = h.requests
    # The edit leaves out the defaulted source and capitalises the name: same call.
    await h.runner.resume(
        decided(request, Decision.MODIFIED, arguments={"to": "Alice", "amount": 300})
    )
    run = await h.run(run_id)
    assert run.status is RunStatus.COMPLETED
    assert h.world.sent == [("checking", "alice", 300)]


async def test_an_edit_to_another_recipient_is_refused() -> None:
    h = harness([tool_calls(call("send", to="alice", amount=400)), say("done")])
    run_id = await h.start()
    (request,) = h.requests
    edit = decided(request, Decision.MODIFIED, arguments={"to": "bob", "amount": 300})
    await refused(h, run_id, edit, "widening_edit")
    assert h.world.sent == []
