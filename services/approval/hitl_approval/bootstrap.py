"""Composition root: wire settings, store, broker, service and the HTTP app."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI
from hitl_shared.contracts import ApprovalDecided
from hitl_shared.kafka import ensure_topics, make_broker, publish
from hitl_shared.mongo import database, make_client

from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.entrypoints import api, consumer, health
from hitl_approval.entrypoints.auth import load_reviewers
from hitl_approval.integrations.router import router as integrations_router
from hitl_approval.service_layer.services import AfterCommitHook, ApprovalService
from hitl_approval.settings import ApprovalSettings

log = logging.getLogger(__name__)


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[int]]) -> None:
    while True:
        try:
            await job()
        except Exception:
            # A background job's failure must not kill the service; it runs again.
            log.exception("%s failed; retrying in %.1fs", name, seconds)
        await asyncio.sleep(seconds)


def build_app(
    settings: ApprovalSettings | None = None, *, after_commit: AfterCommitHook | None = None
) -> FastAPI:
    settings = settings or ApprovalSettings()
    mongo = make_client(settings)
    repo = ApprovalRepository(database(mongo, settings))
    broker = make_broker(settings, client_id="hitl-approval")

    async def publish_decided(decided: ApprovalDecided) -> None:
        await publish(
            broker,
            settings.topics.approval_decided,
            decided,
            key=decided.run_id,
            correlation_id=decided.correlation_id,
        )

    service = ApprovalService(
        repo,
        publish_decided,
        outbox_grace=timedelta(seconds=settings.approval_outbox_grace_seconds),
        after_commit=after_commit,
    )
    consumer.register(broker, settings, service)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await repo.ensure_indexes()
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        await broker.start()
        jobs = [
            asyncio.create_task(
                _every(settings.approval_sweep_interval_seconds, "expiry sweep", service.expire_due)
            ),
            asyncio.create_task(
                _every(
                    settings.approval_outbox_interval_seconds, "outbox relay", service.relay_outbox
                )
            ),
        ]
        log.info("approval service ready on %s:%s", settings.approval_host, settings.approval_port)
        try:
            yield
        finally:
            for job in jobs:
                job.cancel()
            await broker.stop()
            await mongo.close()

    app = FastAPI(
        title="hitl approval service",
        version="0.1.0",
        description="Stores approval requests, serves reviewers, enforces timeouts, "
        "emits approval.decided.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.mongo = mongo
    app.state.broker = broker
    app.state.reviewers = load_reviewers(settings)
    app.include_router(api.router)
    app.include_router(health.router)
    app.include_router(integrations_router)
    return app
