"""hitl_client without a server: outcomes, signature checks, errors and retries.

The approval service is stood in for by an httpx transport that answers like it does;
the real service is exercised in tests/e2e/test_client_e2e.py.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hitl_client import (
    Approved,
    AsyncClient,
    BadDecisionSignature,
    Cancelled,
    Client,
    Conflict,
    Expired,
    Forbidden,
    Invalid,
    Modified,
    NotFound,
    Rejected,
    Retry,
    Unauthorized,
    Unavailable,
    WaitTimeout,
    outcome_of,
)
from hitl_client.errors import ApiError
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel, Decision, RequestContext
from hitl_contracts.signing import DecisionSigner

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
FAST = Retry(attempts=2, max_delay=0.01, backoff=0.001)


def requested(cid: str = "c-1") -> ApprovalRequested:
    return ApprovalRequested(
        correlation_id=cid,
        run_id="r-1",
        agent="payables",
        tool="transfer",
        arguments={"to_account": "alice", "amount": 500},
        reason="over 100",
        context=RequestContext(user_request="pay alice"),
        requested_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
    )


def decided(decision: Decision, **fields: Any) -> ApprovalDecided:
    return ApprovalDecided(
        correlation_id="c-1",
        run_id="r-1",
        agent="payables",
        tool="transfer",
        decision=decision,
        reviewer=fields.pop("reviewer", "ann"),
        channel=Channel.API,
        decided_at=NOW,
        **fields,
    )


def view(decision: ApprovalDecided | None = None, version: int = 0) -> dict[str, Any]:
    return {
        "correlation_id": "c-1",
        "status": decision.decision.value if decision else "pending",
        "version": version,
        "expires_at": (NOW + timedelta(minutes=30)).isoformat(),
        "escalated": False,
        "approvers": [],
        "policy": {},
        "request": requested().model_dump(mode="json"),
        "decision": decision.model_dump(mode="json") if decision else None,
    }


Handler = Callable[[httpx.Request], httpx.Response]


def aclient(handler: Handler, **kwargs: Any) -> AsyncClient:
    http = httpx.AsyncClient(base_url="http://hitl", transport=httpx.MockTransport(handler))
    return AsyncClient(http=http, retry=FAST, **kwargs)


def no_keys(request: httpx.Request) -> httpx.Response | None:
    if request.url.path == "/v1/keys":
        return httpx.Response(404, json={"detail": "Not Found"})
    return None


@pytest.mark.parametrize(
    ("decision", "kind"),
    [
        (Decision.APPROVED, Approved),
        (Decision.MODIFIED, Modified),
        (Decision.REJECTED, Rejected),
        (Decision.EXPIRED, Expired),
        (Decision.CANCELLED, Cancelled),
    ],
)
def test_each_decision_maps_to_its_outcome(decision: Decision, kind: type) -> None:
    outcome = outcome_of(decided(decision, comment="why", arguments={"amount": 80}))
    assert type(outcome) is kind
    assert outcome.comment == "why"
    assert outcome.allows_execution is (decision in (Decision.APPROVED, Decision.MODIFIED))


def test_modified_carries_the_reviewers_arguments_and_matches_as_a_pattern() -> None:
    outcome = outcome_of(
        decided(Decision.MODIFIED, arguments={"to_account": "alice", "amount": 80})
    )
    match outcome:
        case Approved(arguments=args) | Modified(arguments=args):
            assert args == {"to_account": "alice", "amount": 80}
        case _:
            pytest.fail(f"not an approval: {outcome}")
    rejected = outcome_of(decided(Decision.REJECTED, comment="not a payee"))
    assert isinstance(rejected, Rejected)
    assert rejected.comment == "not a payee"


async def test_wait_long_polls_until_decided() -> None:
    polls: list[dict[str, str]] = []
    final = decided(Decision.MODIFIED, arguments={"to_account": "alice", "amount": 80})

    def handler(request: httpx.Request) -> httpx.Response:
        if (answer := no_keys(request)) is not None:
            return answer
        if request.method == "POST":
            assert json.loads(request.content)["correlation_id"]  # chosen by the client
            return httpx.Response(201, json=view())
        polls.append(dict(request.url.params))
        if len(polls) < 3:
            return httpx.Response(200, json=view())  # the long-poll ran out: still pending
        return httpx.Response(200, json=view(final, version=1))

    async with aclient(handler) as hitl:
        approval = await hitl.request(
            "transfer", {"to_account": "alice", "amount": 500}, "over 100"
        )
        assert approval.created
        outcome = await approval.wait(timeout=300)
    assert outcome == Modified(
        correlation_id="c-1",
        reviewer="ann",
        comment="",
        decided=final,
        arguments={"to_account": "alice", "amount": 80},
    )
    assert all(p["after_version"] == "0" and float(p["wait"]) > 0 for p in polls)


async def test_wait_timeout_raises_with_the_pending_state() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=view())

    async with aclient(handler) as hitl:
        approval = await hitl.resume("c-1")
        with pytest.raises(WaitTimeout) as caught:
            await approval.wait(timeout=0.05)
    assert caught.value.approval.status == "pending"


def signed_service(signer: DecisionSigner, decision: ApprovalDecided) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/keys":
            return httpx.Response(200, json={"keys": [signer.public_jwk()]})
        return httpx.Response(200, json=view(decision, version=1))

    return handler


async def test_signatures_are_checked_once_the_service_publishes_keys() -> None:
    signer = DecisionSigner.generate()
    good = signer.sign(decided(Decision.APPROVED, arguments={"amount": 500}))
    async with aclient(signed_service(signer, good)) as hitl:
        assert isinstance(await (await hitl.resume("c-1")).wait(), Approved)

    forged = good.model_copy(update={"arguments": {"amount": 5000}})
    async with aclient(signed_service(signer, forged)) as hitl:
        with pytest.raises(BadDecisionSignature, match="altered or forged"):
            await (await hitl.resume("c-1")).wait()

    unsigned = decided(Decision.APPROVED, arguments={"amount": 500})
    async with aclient(signed_service(signer, unsigned)) as hitl:
        with pytest.raises(BadDecisionSignature, match="not signed"):
            await (await hitl.resume("c-1")).wait()
    # Skipping the check is a choice the caller makes in so many words.
    async with aclient(signed_service(signer, forged), verify="off") as hitl:
        assert isinstance(await (await hitl.resume("c-1")).wait(), Approved)


async def test_without_published_keys_auto_accepts_and_require_refuses() -> None:
    unsigned = decided(Decision.REJECTED, comment="no")

    def handler(request: httpx.Request) -> httpx.Response:
        return no_keys(request) or httpx.Response(200, json=view(unsigned, version=1))

    async with aclient(handler) as hitl:
        assert isinstance(await (await hitl.resume("c-1")).wait(), Rejected)
    async with aclient(handler, verify="require") as hitl:
        with pytest.raises(BadDecisionSignature, match="publishes no keys"):
            await (await hitl.resume("c-1")).wait()


async def test_keys_endpoint_failing_is_an_error_not_unverified() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/keys":
            return httpx.Response(500, json={"detail": "boom"})
        return httpx.Response(200, json=view(decided(Decision.APPROVED), version=1))

    async with aclient(handler) as hitl:
        with pytest.raises(Exception, match="boom"):
            await (await hitl.resume("c-1")).wait()


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, Unauthorized), (403, Forbidden), (404, NotFound), (409, Conflict), (422, Invalid)],
)
def test_refusals_raise_their_own_exception_with_the_servers_message(
    status: int, kind: type
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"detail": f"server says {status}", "errors": []})

    http = httpx.Client(base_url="http://hitl", transport=httpx.MockTransport(handler))
    with Client(http=http, retry=FAST) as hitl, pytest.raises(kind) as caught:
        hitl.get("c-1")
    assert isinstance(caught.value, ApiError)
    assert caught.value.detail == f"server says {status}"
    assert caught.value.status_code == status


def test_503_is_retried_after_retry_after_then_gives_up_clearly() -> None:
    answers = [503, 503, 200]

    def handler(request: httpx.Request) -> httpx.Response:
        code = answers.pop(0) if answers else 503
        if code == 503:
            return httpx.Response(503, json={"detail": "store away"}, headers={"Retry-After": "0"})
        return httpx.Response(200, json=view())

    http = httpx.Client(base_url="http://hitl", transport=httpx.MockTransport(handler))
    with Client(http=http, retry=FAST) as hitl:
        assert hitl.get("c-1").status == "pending"  # two 503s, then an answer
        with pytest.raises(Unavailable) as caught:
            hitl.get("c-1")  # 503 beyond the bounded retries
    assert caught.value.detail == "store away"
    assert caught.value.retry_after == 0


def test_sync_request_tells_created_from_replayed() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(request.headers.get("Idempotency-Key", ""))
        assert "correlation_id" not in body  # the key names the request
        return httpx.Response(201 if len(seen) == 1 else 200, json=view())

    http = httpx.Client(base_url="http://hitl", transport=httpx.MockTransport(handler))
    with Client(http=http, retry=FAST) as hitl:
        first = hitl.request("transfer", {"amount": 1}, "why", idempotency_key="k-1", timeout=60)
        again = hitl.request("transfer", {"amount": 1}, "why", idempotency_key="k-1", timeout=60)
    assert (first.created, again.created) == (True, False)
    assert seen == ["k-1", "k-1"]
