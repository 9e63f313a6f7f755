"""Composition root of the notifier: settings, store, broker, channels, background jobs."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import quote

import httpx
from fastapi import FastAPI
from hitl_contracts.base import utcnow
from hitl_shared.health import store_and_broker
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers
from hitl_shared.http_tracing import BIND_PATH_IDS, instrument
from hitl_shared.kafka import ensure_topics, make_broker
from hitl_shared.metrics import endpoint
from hitl_shared.mongo import database, make_client

from hitl_notifier.adapters.store import NotifierStore
from hitl_notifier.channels.slack import SlackClient
from hitl_notifier.channels.smtp import SmtpSender
from hitl_notifier.channels.webhook import WebhookClient
from hitl_notifier.domain.deliveries import Delivery
from hitl_notifier.entrypoints import consumer, http
from hitl_notifier.metrics import MeteredOutcomes, NotifierMetrics
from hitl_notifier.service_layer.channels import Channels
from hitl_notifier.service_layer.dispatcher import Dispatcher, RetryPolicy
from hitl_notifier.service_layer.handlers import NotifierService
from hitl_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


async def _ticker(service: NotifierService, seconds: float) -> None:
    while True:
        try:
            await service.tick()
        except Exception:
            # A failed round must not stop reminders for good; the next one retries.
            log.exception("notifier tick failed; retrying in %.1fs", seconds)
        await asyncio.sleep(seconds)


def build_app(settings: NotifierSettings | None = None) -> FastAPI:
    settings = settings or NotifierSettings()
    mongo = make_client(settings)
    store = NotifierStore(database(mongo, settings))
    broker = make_broker(settings, client_id="hitl-notifier")
    metrics = NotifierMetrics(broker)
    client = httpx.AsyncClient(timeout=settings.notifier_timeout_seconds)
    channels = Channels(
        slack=SlackClient(
            client,
            api_url=settings.notifier_slack_api_url,
            token=settings.notifier_slack_bot_token,
        ),
        smtp=SmtpSender(
            host=settings.notifier_smtp_host,
            port=settings.notifier_smtp_port,
            starttls=settings.notifier_smtp_starttls,
            tls=settings.notifier_smtp_tls,
            username=settings.notifier_smtp_username,
            password=settings.notifier_smtp_password,
            ca_file=settings.notifier_smtp_ca_file,
            timeout=settings.notifier_timeout_seconds * 2,
        ),
        webhooks=WebhookClient(client, secret=settings.notifier_webhook_secret),
        email_from=settings.notifier_smtp_from,
        link_secret=settings.hitl_link_secret,
        approval_public_url=settings.approval_public_url,
    )
    base = settings.approval_public_url.rstrip("/")
    # The dispatcher and the service need each other: the service launches deliveries,
    # and a sent delivery may need the service's follow-up. Built here, bound once.
    service: NotifierService | None = None

    async def after_sent(delivery: Delivery) -> None:
        if service is not None:
            await service.after_sent(delivery)

    dispatcher = Dispatcher(
        store,
        channels,
        MeteredOutcomes(broker, settings.topics, metrics),
        policy=RetryPolicy(
            attempts=settings.notifier_attempts,
            base_seconds=settings.notifier_backoff_base_seconds,
            max_seconds=settings.notifier_backoff_max_seconds,
            lease=timedelta(seconds=settings.notifier_lease_seconds),
        ),
        clock=utcnow,
        # An id is one path segment of the link whatever it holds ("/", "?", "#").
        link_for=lambda cid: settings.notifier_approval_link.format(
            base=base, correlation_id=quote(cid, safe="")
        ),
        after_sent=after_sent,
    )
    service = NotifierService(
        store,
        dispatcher,
        settings.router(),
        clock=utcnow,
        reminder_fraction=settings.notifier_reminder_fraction,
        email_follow_up=settings.notifier_email_follow_up,
    )
    if service.silent:
        log.warning(
            "no recipient configured (NOTIFIER_EMAIL_TO, NOTIFIER_SLACK_CHANNELS, "
            "NOTIFIER_WEBHOOK_URLS, NOTIFIER_ROUTES): approvals are read and decisions "
            "verified, but nothing is sent or stored"
        )
    # Read now: pinned keys that do not parse stop start-up with the reason.
    keys = settings.decision_keys()
    log.info("approval.decided is verified against %s", keys.describe)
    consumer.register(
        broker,
        settings,
        service,
        keys=keys,
        healthy=store_and_broker(mongo, broker),
        on_dead_letter=metrics.dead_lettered,
        on_refused=lambda reason: metrics.decisions_refused.labels(reason=reason).inc(),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.ensure_indexes()
        await ensure_topics(settings, settings.topics.all(), partitions=settings.kafka_partitions)
        await broker.start()
        ticker = asyncio.create_task(_ticker(service, settings.notifier_tick_seconds))
        log.info("notifier ready on %s:%s", settings.notifier_host, settings.notifier_port)
        try:
            yield
        finally:
            ticker.cancel()
            await broker.stop()
            # In-flight deliveries keep their lease; a restart or another replica resumes them.
            await dispatcher.close()
            await client.aclose()
            await mongo.close()

    app = FastAPI(
        title="hitl notifier", version="0.1.0", lifespan=lifespan, dependencies=[BIND_PATH_IDS]
    )
    instrument(app)
    install_unavailable_handlers(app)
    app.add_middleware(BodyLimit)
    app.add_api_route(
        "/metrics",
        endpoint(metrics.registry, metrics.lag.refresh),
        methods=["GET"],
        tags=["health"],
        summary="Prometheus metrics",
    )
    app.state.settings = settings
    app.state.service = service
    app.include_router(http.router)
    return app
