"""Composition root of the agent service."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from hitl_shared.contracts import ApprovalRequested, RunEvent, RunEventType, TaskSubmitted
from hitl_shared.kafka import ensure_topics, make_broker, publish
from hitl_shared.mongo import database, make_client, ping

from hitl_agent.adapters.ledger import Ledger
from hitl_agent.adapters.llm import ChatModel, make_model
from hitl_agent.adapters.runs import RunRepository
from hitl_agent.domain.run import Run
from hitl_agent.entrypoints import api, consumer
from hitl_agent.service_layer.runner import AgentSpec, Runner
from hitl_agent.settings import AgentSettings
from hitl_agent.tools import banking

log = logging.getLogger(__name__)


def build_app(settings: AgentSettings | None = None, *, model: ChatModel | None = None) -> FastAPI:
    settings = settings or AgentSettings()
    mongo = make_client(settings)
    db = database(mongo, settings)
    runs, ledger = RunRepository(db), Ledger(db)
    broker = make_broker(settings, client_id="hitl-agent")
    topics = settings.topics

    async def publish_request(request: ApprovalRequested) -> None:
        await publish(
            broker,
            topics.approval_requested,
            request,
            key=request.run_id,
            correlation_id=request.correlation_id,
        )

    async def publish_event(run: Run, type_: RunEventType, detail: dict[str, Any]) -> None:
        event = RunEvent(run_id=run.run_id, task_id=run.task_id, type=type_, detail=detail)
        await publish(broker, topics.agent_runs, event, key=run.run_id)
        log.info("run %s: %s", type_.value, detail, extra={"run_id": run.run_id})

    async def submit_task(task: TaskSubmitted) -> None:
        await publish(broker, topics.agent_tasks, task, key=task.task_id)

    agents = {
        "banking": AgentSpec(
            "banking",
            banking.SYSTEM_PROMPT,
            banking.banking_registry(ledger, threshold=settings.agent_transfer_approval_threshold),
        ),
    }
    runner = Runner(
        runs=runs,
        agents=agents,
        model=model
        or make_model(
            api_key=settings.openai_api_key,
            base_url=settings.openai_base_url,
            model=settings.openai_model,
        ),
        publish_request=publish_request,
        publish_event=publish_event,
        max_steps=settings.agent_max_steps,
        approval_timeout=timedelta(seconds=settings.agent_approval_timeout_seconds),
    )
    consumer.register(broker, settings, runner)

    async def relay_forever() -> None:
        while True:
            try:
                await runner.republish_requests()
            except Exception:
                log.exception("approval request relay failed; retrying")
            await asyncio.sleep(5)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runs.ensure_indexes()
        await ledger.ensure_indexes()
        await ledger.seed(settings.agent_seed_accounts)
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        await broker.start()
        relay = asyncio.create_task(relay_forever())
        log.info("agent service ready (model: %s)", runner.model.name)
        try:
            yield
        finally:
            relay.cancel()
            await broker.stop()
            await mongo.close()

    app = FastAPI(title="hitl agent service", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.runner = runner
    app.state.ledger = ledger
    app.state.submit_task = submit_task
    app.include_router(api.router)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, Any]:
        await ping(mongo)
        return {"ready": await broker.ping(timeout=2.0)}

    return app
