"""Composition root of the notifier."""

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI
from hitl_shared.contracts import ApprovalRequested
from hitl_shared.kafka import ensure_topics, make_broker, subscribe
from hitl_shared.mongo import database, make_client

from hitl_notifier.service import Notifier
from hitl_notifier.settings import NotifierSettings


def build_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    mongo = make_client(settings)
    http = httpx.AsyncClient(timeout=settings.notifier_timeout_seconds)
    notifier = Notifier(database(mongo, settings), http, settings)
    broker = make_broker(settings, client_id="hitl-notifier")
    subscribe(
        broker,
        settings,
        topic=settings.topics.approval_requested,
        group=settings.group_id("notifier"),
        model=ApprovalRequested,
        handler=notifier.on_requested,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        await broker.start()
        try:
            yield
        finally:
            await broker.stop()
            await http.aclose()
            await mongo.close()

    app = FastAPI(title="hitl notifier", version="0.1.0", lifespan=lifespan)
    app.state.notifier = notifier

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
