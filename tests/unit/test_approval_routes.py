"""The approval REST routes in-process (httpx.ASGITransport) over the fakes: status codes.

What a caller sees for each outcome (200, 401, 403, 404, 409, 412, 422, a replayed
Idempotency-Key), without a broker, a store or a subprocess. The whole stack's
version of these (tests/e2e/test_approval_api.py) keeps what only it can show.
"""

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hitl_approval.bootstrap import http_app
from hitl_approval.entrypoints.rest.auth import load_reviewers
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.settings import ApprovalSettings
from hitl_shared.directory import hash_token

from tests.factories import approval_request
from tests.fakes import Clock, FakeIdempotencyKeys, approval_service

T0 = datetime.now(UTC)
PEOPLE = {"ann": ["reviewer"], "bob": ["reviewer"], "vic": [], "ada": ["admin"]}


def bearer(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {name}-token"}


class Api:
    """A client of the routes, and the service behind them to set up and check state."""

    def __init__(self, client: httpx.AsyncClient, service: ApprovalService) -> None:
        self.client = client
        self.service = service

    async def pending(self, **overrides: Any) -> str:
        request = approval_request(at=T0, **overrides)
        await self.service.ingest(request)
        return request.correlation_id

    async def decide(
        self, cid: str, who: str, body: dict[str, object], **headers: str
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/approvals/{cid}/decision", json=body, headers={**bearer(who), **headers}
        )


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    settings = ApprovalSettings(
        approval_reviewers=json.dumps(
            [
                {"name": name, "token_sha256": hash_token(f"{name}-token"), "roles": roles}
                for name, roles in PEOPLE.items()
            ]
        ),
        approval_dev_token="",
    )
    service, _, _ = approval_service(Clock(T0))
    app = http_app(
        state={
            "settings": settings,
            "service": service,
            "directory": load_reviewers(settings),
            "idempotency": FakeIdempotencyKeys(),
        }
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://approval") as client:
        yield Api(client, service)


async def test_a_decision_is_200_with_its_etag_and_the_next_one_409_with_what_won(
    api: Api,
) -> None:
    cid = await api.pending()
    won = await api.decide(cid, "ann", {"decision": "approve"})
    assert won.status_code == 200
    assert won.headers["ETag"] == '"1"'
    assert won.json()["status"] == "approved"

    late = await api.decide(cid, "bob", {"decision": "reject", "comment": "no"})
    assert late.status_code == 409
    assert late.json()["approval"]["status"] == "approved"


async def test_if_match_on_another_version_is_412_and_a_malformed_one_422(api: Api) -> None:
    cid = await api.pending()
    stale = await api.decide(cid, "ann", {"decision": "approve"}, **{"If-Match": '"5"'})
    assert stale.status_code == 412
    assert stale.json()["approval"]["version"] == 0
    malformed = await api.decide(cid, "ann", {"decision": "approve"}, **{"If-Match": "five"})
    assert malformed.status_code == 422
    fits = await api.decide(cid, "ann", {"decision": "approve"}, **{"If-Match": '"0"'})
    assert fits.status_code == 200


async def test_who_may_decide(api: Api) -> None:
    cid = await api.pending()
    nobody = await api.client.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
    assert nobody.status_code == 401
    unknown = await api.decide(cid, "eve", {"decision": "approve"})
    assert unknown.status_code == 401
    viewer = await api.decide(cid, "vic", {"decision": "approve"})
    assert viewer.status_code == 403
    assert (await api.decide("c-none", "ann", {"decision": "approve"})).status_code == 404
    assert (await api.service.get(cid)).version == 0  # nothing was recorded


async def test_an_invalid_decision_is_422_and_records_nothing(api: Api) -> None:
    cid = await api.pending()
    no_arguments = await api.decide(cid, "ann", {"decision": "modify"})
    assert no_arguments.status_code == 422
    unknown_field = await api.decide(cid, "ann", {"decision": "approve", "extra": 1})
    assert unknown_field.status_code == 422
    assert (await api.service.get(cid)).version == 0


async def test_an_idempotency_key_replays_the_first_answer(api: Api) -> None:
    cid = await api.pending()
    key = {"Idempotency-Key": "k-1"}
    first = await api.decide(cid, "ann", {"decision": "approve"}, **key)
    again = await api.decide(cid, "ann", {"decision": "approve"}, **key)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    reused = await api.decide(cid, "ann", {"decision": "reject", "comment": "x"}, **key)
    assert reused.status_code == 422
    assert "already used" in reused.json()["detail"]


async def test_cancel_is_for_admins_and_ends_a_pending_approval_once(api: Api) -> None:
    cid = await api.pending()
    path = f"/v1/approvals/{cid}/cancel"
    assert (await api.client.post(path, headers=bearer("ann"))).status_code == 403
    cancelled = await api.client.post(path, headers=bearer("ada"))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert (await api.client.post(path, headers=bearer("ada"))).status_code == 409


async def test_one_approval_reads_with_its_etag_or_404(api: Api) -> None:
    cid = await api.pending()
    found = await api.client.get(f"/v1/approvals/{cid}", headers=bearer("vic"))
    assert found.status_code == 200
    assert found.headers["ETag"] == '"0"'
    missing = await api.client.get("/v1/approvals/c-none", headers=bearer("vic"))
    assert missing.status_code == 404
