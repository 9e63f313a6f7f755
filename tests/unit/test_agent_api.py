"""The agent API's edge against in-memory ports: a silent store or broker is answered in time."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from hitl_agent.entrypoints import api, errors, events
from hitl_agent.settings import DEV_AGENT_TOKEN, AgentSettings
from hitl_agent.views import RunViews
from hitl_contracts import TaskSubmitted
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers

from tests.fakes import FakeRunRows, MemoryOversightStore
from tests.support.agent_harness import Harness, harness, say

AUTH = {"Authorization": f"Bearer {DEV_AGENT_TOKEN}"}


class HangingStore:
    """Stands in for a paused store: every call waits forever."""

    def __getattr__(self, name: str) -> Any:
        async def hang(*args: Any, **kwargs: Any) -> None:
            await asyncio.Event().wait()

        return hang


def app_for(h: Harness, *, submit_task: Any = None) -> FastAPI:
    app = FastAPI()
    app.add_middleware(BodyLimit)
    install_unavailable_handlers(app)
    app.add_exception_handler(RequestValidationError, errors.on_validation_error)
    app.state.settings = AgentSettings(hitl_env="test")
    app.state.directory = app.state.settings.directory()
    app.state.runner = h.runner
    app.state.views = RunViews(h.runner.store, FakeRunRows(h.store), MemoryOversightStore())
    published: list[TaskSubmitted] = []

    async def record(task: TaskSubmitted) -> None:
        published.append(task)

    app.state.submit_task = submit_task or record
    app.state.published = published
    app.include_router(api.router)
    app.include_router(events.router)
    return app


@pytest.fixture
def h() -> Harness:
    return harness([say("hello")])


async def client_for(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://agent") as client:
        yield client


async def test_a_silent_store_is_503_with_retry_after_within_two_seconds(h: Harness) -> None:
    h.runner.store = HangingStore()
    async for client in client_for(app_for(h)):
        for method, path, body in (
            ("POST", "/v1/runs", {"input": "Deposit 5", "agent": "test"}),
            ("GET", "/v1/runs/r-1", None),
            ("GET", "/v1/runs/r-1/events", None),
            ("POST", "/v1/runs/r-1/cancel", None),
        ):
            started = time.monotonic()
            response = await client.request(method, path, json=body, headers=AUTH)
            assert time.monotonic() - started < 2.0, path
            assert response.status_code == 503, (path, response.text)
            assert response.headers["Retry-After"] == "2"
            assert "retry" in response.json()["detail"]


async def test_a_silent_broker_still_answers_202_for_a_stored_run(h: Harness) -> None:
    async def hang(task: TaskSubmitted) -> None:
        await asyncio.Event().wait()

    async for client in client_for(app_for(h, submit_task=hang)):
        started = time.monotonic()
        response = await client.post(
            "/v1/runs", json={"input": "hi", "agent": "test"}, headers=AUTH
        )
        assert time.monotonic() - started < 2.0
        assert response.status_code == 202, response.text
        run = await h.run(response.json()["run_id"])
        assert run.status.value == "queued", "stored: the relay starts it"


async def test_submitted_by_is_the_token_principal_and_metadata_cannot_claim_it(
    h: Harness,
) -> None:
    app = app_for(h)
    async for client in client_for(app):
        response = await client.post(
            "/v1/runs",
            json={"input": "hi", "agent": "test", "metadata": {"submitted_by": "rita"}},
            headers=AUTH,
        )
        assert response.status_code == 202
        (task,) = app.state.published
        assert task.submitted_by == "developer"
        run = await h.run(response.json()["run_id"])
        assert run.submitted_by == "developer"


def test_production_refuses_to_start_without_agent_tokens() -> None:
    production: dict[str, Any] = {
        "hitl_env": "production",
        "kafka_allow_insecure": True,  # the Kafka rule has its own tests
        "agent_approval_token": "a-real-token",
    }
    with pytest.raises(ValueError, match="AGENT_TOKENS"):
        AgentSettings(**production)
    tokens = json.dumps([{"name": "svc", "token_sha256": "0" * 64, "roles": ["submit"]}])
    directory = AgentSettings(**production, agent_tokens=tokens).directory()
    assert directory.authenticate(DEV_AGENT_TOKEN) is None, "no development token in production"
