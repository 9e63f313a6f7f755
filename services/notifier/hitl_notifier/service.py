"""Fan approval requests out to the configured channels, once per request and recipient."""

import logging

import httpx
from hitl_shared.contracts import ApprovalRequested
from hitl_shared.contracts.base import utcnow
from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase

from hitl_notifier import webhook
from hitl_notifier.settings import NotifierSettings

DELIVERIES = "notifications"


class Notifier:
    def __init__(
        self, db: AsyncDatabase[Document], http: httpx.AsyncClient, settings: NotifierSettings
    ) -> None:
        self.db = db
        self.http = http
        self.settings = settings
        self.log = logging.getLogger(__name__)

    async def on_requested(self, event: ApprovalRequested) -> None:
        payload = webhook.summary(event, approval_url=self.settings.approval_public_url)
        for url in self.settings.webhook_urls:
            key = f"{event.correlation_id}:webhook:{url}:requested"
            existing = await self.db[DELIVERIES].find_one({"_id": key})
            if existing and existing.get("status") == "sent":
                continue  # a redelivered event never notifies twice
            await insert_once(
                self.db,
                DELIVERIES,
                {
                    "_id": key,
                    "correlation_id": event.correlation_id,
                    "channel": "webhook",
                    "recipient": url,
                    "kind": "requested",
                    "status": "sending",
                    "at": utcnow(),
                },
            )
            await webhook.post(self.http, url, payload)
            await self.db[DELIVERIES].update_one(
                {"_id": key}, {"$set": {"status": "sent", "sent_at": utcnow()}}
            )
            self.log.info(
                "webhook sent to %s: %s",
                url,
                payload,
                extra={"correlation_id": event.correlation_id, "run_id": event.run_id},
            )
        if not self.settings.webhook_urls:
            self.log.info(
                "no channel configured for approval request",
                extra={"correlation_id": event.correlation_id, "run_id": event.run_id},
            )
