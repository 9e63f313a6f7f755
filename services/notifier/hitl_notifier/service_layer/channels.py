"""Turns one delivery into the right call on the right channel."""

import hashlib

from hitl_shared import links

from hitl_notifier.channels import email_compose, slack_blocks, webhook
from hitl_notifier.channels.errors import DeliveryError
from hitl_notifier.channels.slack import SlackClient
from hitl_notifier.channels.smtp import SmtpSender
from hitl_notifier.channels.webhook import WebhookClient
from hitl_notifier.domain.deliveries import Delivery
from hitl_notifier.domain.notice import Notice


class Channels:
    def __init__(
        self,
        *,
        slack: SlackClient,
        smtp: SmtpSender,
        webhooks: WebhookClient,
        email_from: str,
        link_secret: str,
        approval_public_url: str,
    ) -> None:
        self.slack = slack
        self.smtp = smtp
        self.webhooks = webhooks
        self.email_from = email_from
        self.link_secret = link_secret
        self.base = approval_public_url.rstrip("/")

    async def send(self, delivery: Delivery, notice: Notice) -> str:
        """Deliver once; returns a reference to what was sent. Raises DeliveryError."""
        target = delivery.target
        if target.channel == "slack":
            message = slack_blocks.message(notice)
            if delivery.updates:
                return await self.slack.update(delivery.updates, message)
            return await self.slack.post(target.recipient, message)
        if target.channel == "email":
            links_ = (
                None if notice.decision is not None else self.action_links(notice, target.recipient)
            )
            mail = email_compose.compose(
                notice, sender=self.email_from, recipient=target.recipient, links=links_
            )
            return await self.smtp.send(mail)
        if target.channel == "webhook":
            delivery_id = hashlib.sha256(delivery.key.encode()).hexdigest()[:32]
            return await self.webhooks.post(
                target.recipient, webhook.payload(notice), delivery_id=delivery_id
            )
        raise DeliveryError(f"unknown channel {target.channel!r}", permanent=True)

    def action_links(self, notice: Notice, recipient: str) -> email_compose.ActionLinks:
        def url(action: links.Action) -> str:
            token = links.sign(
                self.link_secret,
                correlation_id=notice.request.correlation_id,
                action=action,
                recipient=recipient,
                expires_at=notice.request.expires_at,
            )
            return f"{self.base}/v1/integrations/email/action?token={token}"

        return email_compose.ActionLinks(approve=url("approve"), reject=url("reject"))
