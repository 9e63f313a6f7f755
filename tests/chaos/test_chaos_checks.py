"""The chaos suite's checks catch what they claim to: pure logic on hand-made observations.

A check that never fails proves nothing, so each is shown a healthy run (no
violation) and the same run with one promise broken (named violation).
"""

import base64
import json
import uuid
from typing import Any

from hitl_shared.topics import Topics

from tests.support.chaos_bad_input import Injected
from tests.support.chaos_checks import Observed, violations
from tests.support.chaos_load import OPENING, Task
from tests.support.chaos_reviewer import Attempted
from tests.support.chaos_tap import Record, Tap

TOPICS = Topics("t.")
SMALL = Task(0, "run-small", "chaos0000", 40, None, 1, 0.1, 0.0)
BIG = Task(1, "run-big", "chaos0001", 300, "modify", 120, 0.1, 0.0)
CID = "cid-1"
DEADLINE = "2030-01-01T00:00:10+00:00"
DECIDED_AT = "2030-01-01T00:00:03+00:00"


def _record(topic: str, body: dict[str, Any], offset: int = 0) -> Record:
    return Record(topic, 0, offset, body.get("run_id"), len(json.dumps(body)), body)


def _run_events(run_id: str, types: list[str], **detail: Any) -> list[dict[str, Any]]:
    return [
        {"event_id": str(uuid.uuid4()), "run_id": run_id, "seq": i, "type": t, "detail": detail}
        for i, t in enumerate(types, 1)
    ]


def healthy() -> Observed:
    tap = Tap()
    tap.add(_record(TOPICS.approval_requested, {"correlation_id": CID, "run_id": BIG.task_id}))
    decided = {
        "event_id": "e-1",
        "correlation_id": CID,
        "run_id": BIG.task_id,
        "decision": "modified",
        "key_id": "kid-1",
        "signature": "c2lnbmVk",
    }
    tap.add(_record(TOPICS.approval_decided, decided))
    for event in _run_events(
        SMALL.task_id, ["started", "tool_executed", "completed"], tool="transfer"
    ):
        tap.add(_record(TOPICS.agent_runs, event))
    big_events = _run_events(BIG.task_id, ["started", "decision_applied", "completed"])
    big_events[1]["detail"] = {"correlation_id": CID, "decision": "modified"}
    for event in big_events:
        tap.add(_record(TOPICS.agent_runs, event))
    letter = {
        "event_id": "l-1",
        "topic": TOPICS.agent_tasks,
        "partition": 0,
        "offset": 7,
        "error": "invalid TaskSubmitted: Invalid JSON",
        "original_b64": base64.b64encode(b"\xff").decode(),
        "original_size": 1,
        "consumer_group": "t.hitl-agent",
    }
    tap.add(_record(f"{TOPICS.agent_tasks}.dlq", letter))
    attempt = Attempted(CID, BIG, "modify", {"amount": 120}, attempts=1, status=200)
    approval = {
        "status": "modified",
        "expires_at": DEADLINE,
        "decision": {"decided_at": DECIDED_AT, "arguments": {"amount": 120}},
    }
    return Observed(
        tasks=[SMALL, BIG],
        topics=TOPICS,
        tap=tap,
        runs={t.task_id: {"status": "completed", "events": 3} for t in (SMALL, BIG)},
        approvals={CID: approval},
        attempted={CID: attempt},
        balances={"checking": OPENING - 160, SMALL.account: 40, BIG.account: 120},
        ledger=[{"to": SMALL.account, "cents": 4000}, {"to": BIG.account, "cents": 12000}],
        approval_events=[{"correlation_id": CID, "type": "decided"}],
        injected=[Injected(TOPICS.agent_tasks, "garbage", 0, 7, 1, "m")],
        webhooks=[],
        key_id="kid-1",
    )


def test_a_healthy_run_has_no_violations() -> None:
    assert violations(healthy()) == {}


def test_money_moved_twice_is_caught() -> None:
    o = healthy()
    o.ledger.append({"to": BIG.account, "cents": 12000})
    o.balances[BIG.account] = 240
    assert set(violations(o)) == {"money_adds_up"}


def test_a_decision_published_under_two_event_ids_is_caught() -> None:
    o = healthy()
    again = {
        "event_id": "e-2",
        "correlation_id": CID,
        "run_id": BIG.task_id,
        "decision": "modified",
        "key_id": "kid-1",
        "signature": "c2lnbmVk",
    }
    o.tap.add(_record(TOPICS.approval_decided, again, offset=1))
    assert set(violations(o)) == {"decisions_published_once"}


def test_a_decision_stored_twice_or_past_the_deadline_is_caught() -> None:
    o = healthy()
    o.approval_events.append({"correlation_id": CID, "type": "decided"})
    o.approvals[CID]["decision"]["decided_at"] = "2030-01-01T00:00:11+00:00"
    problems = violations(o)["approvals_kept"]
    assert any("2 decided entries" in p for p in problems)
    assert any("after its deadline" in p for p in problems)


def test_a_run_stepped_twice_is_caught() -> None:
    o = healthy()
    twin = _run_events(BIG.task_id, ["started", "decision_applied"])[1]
    twin["detail"] = {"correlation_id": CID, "decision": "modified"}
    o.tap.add(_record(TOPICS.agent_runs, twin, offset=9))
    problems = violations(o)["runs_stepped_once"]
    assert any("applied 2 times" in p for p in problems)
    assert any("2 different events at position 2" in p for p in problems)


def test_a_dead_lettered_valid_event_and_an_undelivered_malformed_one_are_caught() -> None:
    o = healthy()
    o.injected.append(Injected(TOPICS.approval_decided, "huge", 1, 3, 2_000_000, "m2"))
    first = o.tap.of(f"{TOPICS.agent_tasks}.dlq")[0].body or {}
    valid = {**first, "event_id": "l-2", "offset": 8}
    o.tap.add(_record(f"{TOPICS.agent_tasks}.dlq", valid, offset=1))
    problems = violations(o)["dead_lettered"]
    assert any("huge on t.approval.decided" in p for p in problems)
    assert any("did not break" in p for p in problems)


def test_a_pending_approval_and_an_unfinished_run_are_caught() -> None:
    o = healthy()
    o.approvals[CID]["status"] = "pending"
    o.runs[SMALL.task_id]["status"] = "running"
    found = violations(o)
    assert any("still pending" in p for p in found["approvals_kept"])
    assert any("ended the test running" in p for p in found["runs_terminal"])


def test_a_decision_signed_by_another_key_and_a_refused_one_are_caught() -> None:
    o = healthy()
    foreign = {
        "event_id": "e-3",
        "correlation_id": CID,
        "run_id": BIG.task_id,
        "decision": "modified",
        "key_id": "kid-other",
        "signature": "c2lnbmVk",
    }
    o.tap.add(_record(TOPICS.approval_decided, foreign, offset=1))
    refusal = _run_events(BIG.task_id, ["decision_refused"])[0]
    refusal["seq"] = 99
    refusal["detail"] = {"code": "bad_signature", "reason": "the signature does not verify"}
    o.tap.add(_record(TOPICS.agent_runs, refusal, offset=9))
    problems = violations(o)["decisions_verified"]
    assert any("not 'kid-1'" in p for p in problems)
    assert any("1 decisions refused by the agent, 0 forged" in p for p in problems)
    assert any("bad_signature" in p for p in problems)


def test_refusals_of_planned_forgeries_are_expected() -> None:
    o = healthy()
    refusal = _run_events(BIG.task_id, ["decision_refused"])[0]
    o.tap.add(_record(TOPICS.agent_runs, refusal, offset=9))
    o.forged = 1
    assert "decisions_verified" not in violations(o)
