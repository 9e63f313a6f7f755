"""The approval REST API and its policies, through the real process, Kafka and store.

Requests are published onto `approval.requested` by the test (as any agent could),
so each test controls every field: risk, submitter, schema, deadline.
"""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hitl_contracts import (
    ApprovalRequested,
    NotificationKind,
    NotificationRecorded,
    NotificationStatus,
)

from tests.factories import approval_request
from tests.support.approval_e2e import Bus, approval_stack, client, now, outbox_drained, read_all
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

POLICIES = {
    "default": {"four_eyes": True},
    "rules": [
        {"match": {"tool": "wire"}, "groups": ["finance"]},
        {"match": {"risk_level": "critical"}, "quorum": 2},
    ],
}

SCHEMA = {
    "type": "object",
    "properties": {
        "to_account": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "exclusiveMinimum": 0},
    },
    "required": ["to_account", "amount"],
    "additionalProperties": False,
    "$defs": {"unused": {"type": "string"}},
}


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"APPROVAL_POLICIES": json.dumps(POLICIES)}
    with approval_stack(infra, tmp_path_factory.mktemp("api-logs"), env=env) as s:
        yield s


@pytest.fixture(scope="module")
async def bus(infra: Infra, stack: Stack) -> AsyncIterator[Bus]:
    async with Bus(infra, stack) as b:
        yield b


async def stored(who: httpx.AsyncClient, correlation_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await who.get(f"/v1/approvals/{correlation_id}")
        return response.json() if response.status_code == 200 else None

    return await eventually(probe, timeout=30, what=f"approval {correlation_id} stored")


async def pending(bus: Bus, stack: Stack, **overrides: Any) -> str:
    event = approval_request(**overrides)
    await bus.request(event)
    async with client(stack, "ann") as ann:
        await stored(ann, event.correlation_id)
    return event.correlation_id


def decide(who: httpx.AsyncClient, cid: str, decision: str = "approve", **body: Any) -> Any:
    return who.post(f"/v1/approvals/{cid}/decision", json={"decision": decision, **body})


async def test_listing_filters_and_pages_newest_first(bus: Bus, stack: Stack) -> None:
    agent = f"agent-{uuid.uuid4().hex[:6]}"
    t0 = now() - timedelta(hours=1)
    shapes = [("transfer", "low"), ("transfer", "high"), ("deposit", "low"), ("wire", "critical")]
    events = [
        approval_request(
            agent=agent,
            tool=tool,
            risk_level=risk,
            run_id=f"run-{i % 2}-{agent}",
            requested_at=t0 + timedelta(minutes=i),
            expires_at=t0 + timedelta(days=1),
        )
        for i, (tool, risk) in enumerate(shapes * 2)
    ]
    for event in events:
        await bus.request(event)
    newest_first = [e.correlation_id for e in reversed(events)]

    async with client(stack, "ann") as ann:

        async def listed(**params: Any) -> list[str]:
            response = await ann.get("/v1/approvals", params={"agent": agent, **params})
            assert response.status_code == 200, response.text
            return [item["correlation_id"] for item in response.json()["items"]]

        await eventually(
            lambda: _len_is(listed(), len(events)), timeout=30, what="all requests listed"
        )
        assert await listed() == newest_first

        pages, cursor = [], None
        while True:
            params: dict[str, Any] = {"agent": agent, "limit": 3}
            if cursor:
                params["cursor"] = cursor
            body = (await ann.get("/v1/approvals", params=params)).json()
            pages.append([item["correlation_id"] for item in body["items"]])
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert [len(p) for p in pages] == [3, 3, 2]
        assert [cid for page in pages for cid in page] == newest_first, (
            "pages are stable, newest first, no repeats"
        )

        assert await listed(tool="wire") == [
            e.correlation_id for e in reversed(events) if e.tool == "wire"
        ]
        assert await listed(risk_level="low") == [
            e.correlation_id for e in reversed(events) if e.risk_level.value == "low"
        ]
        assert await listed(run_id=f"run-0-{agent}") == newest_first[1::2]
        assert await listed(status="approved") == []
        window = {
            "created_after": (t0 + timedelta(minutes=2)).isoformat(),
            "created_before": (t0 + timedelta(minutes=5)).isoformat(),
        }
        assert await listed(**window) == [e.correlation_id for e in reversed(events[2:5])]

        await decide(ann, events[0].correlation_id, "reject")
        assert await listed(status="rejected") == [events[0].correlation_id]
        assert events[0].correlation_id not in await listed(status="pending")

        bad = await ann.get("/v1/approvals", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 422
        assert "cursor" in bad.json()["detail"]
        wrong = await ann.get("/v1/approvals", params={"status": "maybe"})
        assert wrong.status_code == 422
        assert "status" in wrong.json()["detail"]


async def _len_is(listing: Any, n: int) -> bool:
    return len(await listing) == n


async def test_etag_and_if_match_guard_a_decision(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack)
    async with client(stack, "ann") as ann:
        got = await ann.get(f"/v1/approvals/{cid}")
        assert got.headers["ETag"] == '"0"'
        assert got.json()["version"] == 0

        stale = await ann.post(
            f"/v1/approvals/{cid}/decision",
            json={"decision": "approve"},
            headers={"If-Match": '"7"'},
        )
        assert stale.status_code == 412
        assert stale.json()["approval"]["status"] == "pending"
        assert stale.headers["ETag"] == '"0"'

        fresh = await ann.post(
            f"/v1/approvals/{cid}/decision",
            json={"decision": "approve"},
            headers={"If-Match": got.headers["ETag"]},
        )
        assert fresh.status_code == 200, fresh.text
        assert fresh.headers["ETag"] == '"1"'
        assert fresh.json()["decision"]["reviewer"] == "ann"
        assert fresh.json()["decision"]["channel"] == "api"

        garbage = await ann.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve"}, headers={"If-Match": "x"}
        )
        assert garbage.status_code == 422


async def test_modify_must_fit_the_tools_schema(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack, arguments_schema=SCHEMA)
    async with client(stack, "ann") as ann:
        wrong = await decide(ann, cid, "modify", arguments={"to_account": "alice", "amount": -5})
        assert wrong.status_code == 422
        assert "amount" in wrong.json()["detail"]
        assert "transfer tool's schema" in wrong.json()["detail"]
        extra = await decide(
            ann, cid, "modify", arguments={"to_account": "alice", "amount": 5, "memo": "x"}
        )
        assert extra.status_code == 422
        assert "memo" in extra.json()["detail"]
        assert (await ann.get(f"/v1/approvals/{cid}")).json()["status"] == "pending"

        edited = {"to_account": "alice", "amount": 80}
        ok = await decide(ann, cid, "modify", arguments=edited, comment="80 is enough")
        assert ok.status_code == 200, ok.text
        assert ok.json()["status"] == "modified"
        assert ok.json()["decision"]["arguments"] == edited
        # The schema with its $defs round-trips untouched.
        assert ok.json()["request"]["arguments_schema"] == SCHEMA


async def test_hostile_edits_get_a_clear_answer_and_odd_json_round_trips(
    bus: Bus, stack: Stack
) -> None:
    deep: Any = 1
    for _ in range(600):
        deep = {"a": deep}
    cid = await pending(bus, stack)
    async with client(stack, "ann") as ann:
        headers = {"Content-Type": "application/json"}
        for raw, fragment in [
            (json.dumps({"decision": "modify", "arguments": {"d": deep}}), "nested deeper"),
            ('{"decision": "modify", "arguments": {"x": NaN}}', "not a JSON number"),
            ('{"decision": "modify", "arguments": {"x": 1e400}}', "not a JSON number"),
            ('{"decision": "modify", "arguments": {"nul\\u0000": 1}}', "NUL character"),
            (
                '{"decision": "modify", "arguments": {"big": 123456789012345678901234567890}}',
                "does not fit in 64 bits",
            ),
        ]:
            response = await ann.post(f"/v1/approvals/{cid}/decision", content=raw, headers=headers)
            assert response.status_code == 422, response.text
            assert fragment in response.json()["detail"]
        huge = json.dumps({"decision": "approve", "comment": "x" * (2 * 1024 * 1024)})
        too_big = await ann.post(f"/v1/approvals/{cid}/decision", content=huge, headers=headers)
        assert too_big.status_code == 413
        assert (await ann.get(f"/v1/approvals/{cid}")).json()["status"] == "pending"

        odd = {"$set": {"a.b": 1}, "big": 2**62, "$where": "x"}
        ok = await decide(ann, cid, "modify", arguments=odd)
        assert ok.status_code == 200, ok.text
        assert ok.json()["decision"]["arguments"] == odd
        listed = await ann.get("/v1/approvals", params={"run_id": ok.json()["request"]["run_id"]})
        assert listed.json()["items"][0]["decision"]["arguments"] == odd


async def test_idempotency_key_replays_the_first_response(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack)
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    async with client(stack, "ann") as ann, client(stack, "bob") as bob:
        first = await ann.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve"}, headers=key
        )
        assert first.status_code == 200, first.text
        retry = await ann.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve"}, headers=key
        )
        assert retry.status_code == 200, "a retry is not a 409"
        assert retry.json() == first.json()
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.headers["ETag"] == first.headers["ETag"]

        reused = await ann.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "reject"}, headers=key
        )
        assert reused.status_code == 422
        assert "different request" in reused.json()["detail"]

        # The key is the reviewer's own: bob's identical key is a new request, and loses.
        other = await bob.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve"}, headers=key
        )
        assert other.status_code == 409
        assert other.json()["approval"]["decision"]["reviewer"] == "ann"


async def test_tokens_and_roles(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack)
    async with httpx.AsyncClient(base_url=stack.url("approval")) as anonymous:
        for method, path in [
            ("GET", "/v1/approvals"),
            ("GET", f"/v1/approvals/{cid}"),
            ("GET", f"/v1/approvals/{cid}/history"),
            ("POST", f"/v1/approvals/{cid}/decision"),
            ("POST", f"/v1/approvals/{cid}/cancel"),
        ]:
            response = await anonymous.request(method, path, json={"decision": "approve"})
            assert response.status_code == 401, (method, path)
            assert response.headers["WWW-Authenticate"] == "Bearer"
    async with stack.reviewer("not-a-token") as impostor:
        assert (await impostor.get("/v1/approvals")).status_code == 401

    async with client(stack, "vic") as vic:
        assert (await vic.get(f"/v1/approvals/{cid}")).status_code == 200, "anyone known may look"
        refused = await decide(vic, cid)
        assert refused.status_code == 403
        assert "reviewer" in refused.json()["detail"]
    async with client(stack, "ann") as ann:
        assert (await ann.post(f"/v1/approvals/{cid}/cancel", json={})).status_code == 403
        assert (await decide(ann, "no-such-approval")).status_code == 404
    assert (await _get(stack, cid))["status"] == "pending"


async def test_cancel_by_the_agent_service(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack)
    async with client(stack, "agent-service") as agent, client(stack, "ada") as ada:
        assert (await decide(agent, cid)).status_code == 403, "the agent role cannot decide"
        done = await agent.post(
            f"/v1/approvals/{cid}/cancel", json={"comment": "user cancelled the run"}
        )
        assert done.status_code == 200, done.text
        decision = done.json()["decision"]
        assert (decision["decision"], decision["channel"], decision["reviewer"]) == (
            "cancelled",
            "system",
            "agent-service",
        )
        assert decision["comment"] == "user cancelled the run"
        again = await ada.post(f"/v1/approvals/{cid}/cancel")
        assert again.status_code == 409
        assert again.json()["approval"]["status"] == "cancelled"
        assert (await ada.post("/v1/approvals/nope/cancel")).status_code == 404
    async with client(stack, "ann") as ann:
        late = await decide(ann, cid)
        assert late.status_code == 409
        assert late.json()["approval"]["status"] == "cancelled"


async def test_groups_policy_limits_who_decides(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack, tool="wire")
    async with client(stack, "cyd") as cyd, client(stack, "ann") as ann:
        view = await stored(cyd, cid)
        assert view["policy"]["groups"] == ["finance"]
        outsider = await decide(cyd, cid, "reject")
        assert outsider.status_code == 403
        assert "finance" in outsider.json()["detail"]
        assert (await decide(ann, cid)).status_code == 200


async def test_four_eyes_the_submitter_cannot_approve(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack, requested_by="sam")
    async with client(stack, "sam") as sam, client(stack, "bob") as bob:
        own = await decide(sam, cid)
        assert own.status_code == 403
        assert "four-eyes" in own.json()["detail"]
        edited = await decide(sam, cid, "modify", arguments={"to_account": "sam", "amount": 1})
        assert edited.status_code == 403
        ok = await decide(bob, cid)
        assert ok.status_code == 200
        assert ok.json()["decision"]["reviewer"] == "bob"


async def test_critical_needs_two_distinct_approvers(infra: Infra, bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack, risk_level="critical")
    async with client(stack, "ann") as ann, client(stack, "bob") as bob:
        first = await decide(ann, cid, comment="looks fine")
        assert first.status_code == 200, first.text
        assert first.json()["status"] == "pending"
        assert first.json()["approvers"] == ["ann"]
        assert first.json()["policy"]["quorum"] == 2

        twice = await decide(ann, cid)
        assert twice.status_code == 409
        assert "1 more" in twice.json()["detail"]

        second = await decide(bob, cid)
        assert second.status_code == 200
        assert second.json()["status"] == "approved"
        assert second.json()["decision"]["approvers"] == ["ann", "bob"]

        history = (await ann.get(f"/v1/approvals/{cid}/history")).json()
        assert [(h["type"], h["actor"]) for h in history] == [
            ("requested", "banking"),
            ("vote", "ann"),
            ("approved", "bob"),
        ]
    decided = await _decided_events(infra, stack, cid)
    assert len(decided) == 1, "a vote publishes nothing; the completing approval once"
    assert decided[0]["approvers"] == ["ann", "bob"]


async def test_a_rejection_ends_a_quorum(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack, risk_level="critical")
    async with client(stack, "ann") as ann, client(stack, "bob") as bob:
        assert (await decide(ann, cid)).json()["status"] == "pending"
        rejected = await decide(bob, cid, "reject", comment="not this week")
        assert rejected.json()["status"] == "rejected"


async def test_history_merges_the_notifiers_notes(bus: Bus, stack: Stack) -> None:
    event = approval_request(requested_at=now() - timedelta(seconds=10))
    cid = event.correlation_id
    await bus.request(event)
    notes = [
        NotificationRecorded(
            correlation_id=cid,
            run_id=event.run_id,
            channel=channel,
            recipient=recipient,
            kind=kind,
            status=status,
            attempts=attempts,
            error=error,
            occurred_at=event.requested_at + timedelta(seconds=offset),
        )
        for channel, recipient, kind, status, attempts, error, offset in [
            ("slack", "#approvals", NotificationKind.REQUESTED, NotificationStatus.SENT, 1, "", 1),
            (
                "email",
                "ops@x.test",
                NotificationKind.REQUESTED,
                NotificationStatus.FAILED,
                5,
                "550",
                2,
            ),
            ("slack", "#approvals", NotificationKind.REMINDER, NotificationStatus.SENT, 1, "", 3),
        ]
    ]
    for note in [*notes, notes[0]]:  # the first one redelivered
        await bus.send(bus.topics.notifications, note, key=event.run_id)

    async with client(stack, "ann") as ann:
        await stored(ann, cid)

        async def trail() -> list[Any] | None:
            items = (await ann.get(f"/v1/approvals/{cid}/history")).json()
            return items if len(items) >= 4 else None

        await eventually(trail, timeout=30, what="the notes in the history")
        await decide(ann, cid, comment="ok")
        history = (await ann.get(f"/v1/approvals/{cid}/history")).json()
    assert [(h["type"], h["actor"], h["channel"]) for h in history] == [
        ("requested", "banking", "system"),
        ("notified", "notifier", "slack"),
        ("failed", "notifier", "email"),
        ("reminded", "notifier", "slack"),
        ("approved", "ann", "api"),
    ]
    assert history[2]["detail"]["error"] == "550"
    assert history[2]["detail"]["attempts"] == 5
    assert history[1]["seq"] is None
    assert history[4]["seq"] == 1


async def test_escalation_extends_once_then_expires(infra: Infra, bus: Bus, stack: Stack) -> None:
    deadline = now() + timedelta(seconds=1)
    event = approval_request(on_timeout="escalate", expires_at=deadline, escalation_seconds=1.5)
    cid = event.correlation_id
    await bus.request(event)
    async with client(stack, "ann") as ann:

        async def escalated() -> dict[str, Any] | None:
            view = (await ann.get(f"/v1/approvals/{cid}")).json()
            return view if view.get("escalated") else None

        view = await eventually(escalated, timeout=30, what="the escalation")
        assert view["status"] == "pending"
        extended = view["expires_at"]
        listed = (
            await ann.get("/v1/approvals", params={"escalated": "true", "run_id": event.run_id})
        ).json()
        assert [i["correlation_id"] for i in listed["items"]] == [cid]

        async def expired() -> dict[str, Any] | None:
            view = (await ann.get(f"/v1/approvals/{cid}")).json()
            return view if view["status"] == "expired" else None

        final = await eventually(expired, timeout=30, what="expiry after the escalation")
        assert "already escalated once" in final["decision"]["comment"]
        history = (await ann.get(f"/v1/approvals/{cid}/history")).json()
        assert [h["type"] for h in history] == ["requested", "escalated", "expired"]

    copies = [
        r
        for r in await read_all(infra, bus.topics.approval_requested)
        if r["correlation_id"] == cid and r.get("escalated")
    ]
    assert len(copies) == 1, "the notifier hears of the escalation once"
    assert (
        copies[0]["expires_at"].replace("Z", "+00:00")[:19] == extended.replace("Z", "+00:00")[:19]
    )
    assert len(await _decided_events(infra, stack, cid)) == 1


async def test_decisions_racing_the_deadline_leave_one_terminal_state_each(
    infra: Infra, bus: Bus, stack: Stack
) -> None:
    """Decisions land just before, at and after ~1 s deadlines while the sweeper runs."""
    count = 12
    start = now()
    events = [
        approval_request(expires_at=start + timedelta(seconds=2.0 + 0.05 * i)) for i in range(count)
    ]
    for event in events:
        await bus.request(event)
    async with client(stack, "ann") as ann, client(stack, "bob") as bob:
        await asyncio.gather(*(stored(ann, e.correlation_id) for e in events))

        async def hammer(n: int, event: ApprovalRequested) -> list[int]:
            # Start from 0.3 s before to 0.2 s after this approval's deadline.
            first = event.expires_at + timedelta(seconds=-0.3 + 0.1 * (n % 6))
            await asyncio.sleep(max((first - now()).total_seconds(), 0))
            codes = []
            for i in range(4):
                who = ann if i % 2 else bob
                response = await decide(who, event.correlation_id, "approve" if n % 3 else "reject")
                codes.append(response.status_code)
                await asyncio.sleep(0.1)  # pacing the load, not waiting for a result
            return codes

        codes = await asyncio.gather(*(hammer(n, e) for n, e in enumerate(events)))

        async def settled() -> list[dict[str, Any]] | None:
            views = [(await ann.get(f"/v1/approvals/{e.correlation_id}")).json() for e in events]
            return views if all(v["status"] != "pending" for v in views) else None

        views = await eventually(settled, timeout=30, what="every approval terminal")

    outcomes = {v["status"] for v in views}
    won = sum(c.count(200) for c in codes)
    print(
        f"\nrace vs deadline: {count} approvals, outcomes {sorted(outcomes)}, {won} decisions won"
    )
    for view, cs in zip(views, codes, strict=True):
        assert cs.count(200) <= 1, cs
        assert set(cs) <= {200, 409}, cs
        assert (cs.count(200) == 1) == (view["status"] != "expired"), (cs, view["status"])
        history = [h["type"] for h in (await _history(stack, view["correlation_id"]))]
        assert history[0] == "requested"
        assert len(history) == 2, history
    await outbox_drained(stack)
    decided = await read_all(infra, bus.topics.approval_decided)
    for event in events:
        mine = [d for d in decided if d["correlation_id"] == event.correlation_id]
        assert len(mine) == 1, mine


async def test_health_readiness_and_metrics(bus: Bus, stack: Stack) -> None:
    await pending(bus, stack)
    async with httpx.AsyncClient(base_url=stack.url("approval")) as anyone:
        assert (await anyone.get("/healthz")).json() == {"status": "ok"}
        ready = await anyone.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"ready": True, "checks": {"store": "ok", "broker": "ok"}}
        text = (await anyone.get("/metrics")).text
    async with client(stack, "ann") as ann:
        listed = (await ann.get("/v1/approvals", params={"status": "pending", "limit": 500})).json()
    metrics = _samples(text)
    assert metrics["hitl_approvals_pending"] == len(listed["items"]) > 0
    assert metrics['hitl_approval_decisions_total{channel="api",outcome="approved"}'] >= 1
    assert metrics['hitl_approval_time_to_decision_seconds_count{outcome="approved"}'] >= 1
    assert "hitl_approval_expiries_total" in metrics
    assert "hitl_approval_escalations_total" in metrics


def _samples(text: str) -> dict[str, float]:
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


async def _get(stack: Stack, cid: str) -> dict[str, Any]:
    async with client(stack, "ann") as ann:
        body: dict[str, Any] = (await ann.get(f"/v1/approvals/{cid}")).json()
        return body


async def _history(stack: Stack, cid: str) -> list[dict[str, Any]]:
    async with client(stack, "ann") as ann:
        body: list[dict[str, Any]] = (await ann.get(f"/v1/approvals/{cid}/history")).json()
        return body


async def _decided_events(infra: Infra, stack: Stack, cid: str) -> list[dict[str, Any]]:
    await outbox_drained(stack)
    topic = f"{stack.prefix}approval.decided"
    return [r for r in await read_all(infra, topic) if r["correlation_id"] == cid]
