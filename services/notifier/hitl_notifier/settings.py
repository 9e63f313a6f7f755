"""Notifier settings: channels, routing, reminders and delivery retries."""

import json
from pathlib import Path

from hitl_shared.decision_keys import DecisionKeys
from hitl_shared.settings import CommonSettings
from pydantic import Field, TypeAdapter

from hitl_notifier.domain.routing import Route, Router, Targets

DEV_WEBHOOK_SECRET = "dev-webhook-secret"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


class NotifierSettings(CommonSettings):
    notifier_host: str = "127.0.0.1"
    notifier_port: int = 8083
    # Base URL of the approval service: links in notifications and the email action pages.
    approval_public_url: str = "http://127.0.0.1:8081"
    # `{base}` and `{correlation_id}` are replaced: the reviewer web page by default.
    notifier_approval_link: str = "{base}/ui/approvals/{correlation_id}"
    notifier_timeout_seconds: float = 5.0
    # Where the approval service's public keys are fetched (`<url>/v1/keys`) to verify
    # approval.decided; unset: APPROVAL_PUBLIC_URL. Pinned keys (a JWK set) replace the fetch.
    notifier_approval_url: str = ""
    notifier_decision_keys: str = ""
    notifier_decision_keys_file: str = ""

    # The default route, used when no rule of NOTIFIER_ROUTES matches (or none is set).
    notifier_webhook_urls: str = ""
    notifier_slack_channels: str = ""
    notifier_email_to: str = ""
    # JSON lists of routing rules (README "Routing"); with both set, the variable's come first.
    notifier_routes: str = ""
    notifier_routes_file: str = ""

    notifier_webhook_secret: str = DEV_WEBHOOK_SECRET

    notifier_slack_api_url: str = "https://slack.com/api"
    notifier_slack_bot_token: str = ""

    notifier_smtp_host: str = "127.0.0.1"
    notifier_smtp_port: int = 1025
    notifier_smtp_starttls: bool = False
    # Implicit TLS from the first byte (port 465 style); excludes STARTTLS.
    notifier_smtp_tls: bool = False
    notifier_smtp_username: str = ""
    notifier_smtp_password: str = ""
    # PEM bundle to trust for the SMTP server's certificate (self-signed or private CA).
    notifier_smtp_ca_file: str = ""
    notifier_smtp_from: str = "hitl <hitl@localhost>"
    # Also email the decision to everyone who was emailed the request.
    notifier_email_follow_up: bool = False

    # A reminder goes out at this fraction of the time between request and expiry; 0 = never.
    notifier_reminder_fraction: float = 0.5
    notifier_attempts: int = 5
    notifier_backoff_base_seconds: float = 0.5
    notifier_backoff_max_seconds: float = 30.0
    # Events of different approvals handled at once (one approval's, in order).
    notifier_concurrency: int = Field(default=16, ge=1, le=1024)
    # How often reminders and abandoned deliveries are looked for.
    notifier_tick_seconds: float = 1.0
    # An in-flight delivery untouched this long is taken over (its owner died).
    notifier_lease_seconds: float = 120.0

    def decision_keys(self) -> DecisionKeys:
        return DecisionKeys.configured(
            approval_url=self.notifier_approval_url or self.approval_public_url,
            inline=self.notifier_decision_keys,
            file=self.notifier_decision_keys_file,
            source="NOTIFIER_DECISION_KEYS",
        )

    def check_production(self) -> None:
        self.require_link_secret()
        if self.webhook_urls_anywhere() and self.notifier_webhook_secret == DEV_WEBHOOK_SECRET:
            raise ValueError("production webhooks need NOTIFIER_WEBHOOK_SECRET")
        if self.slack_channels_anywhere() and not self.notifier_slack_bot_token:
            raise ValueError("Slack routes need NOTIFIER_SLACK_BOT_TOKEN (xoxb-...)")

    @property
    def default_targets(self) -> Targets:
        return Targets(
            slack=_csv(self.notifier_slack_channels),
            email=_csv(self.notifier_email_to),
            webhook=_csv(self.notifier_webhook_urls),
        )

    def routes(self) -> list[Route]:
        raw: list[object] = []
        if self.notifier_routes:
            raw += json.loads(self.notifier_routes)
        if self.notifier_routes_file:
            raw += json.loads(Path(self.notifier_routes_file).read_text())
        return TypeAdapter(list[Route]).validate_python(raw)

    def router(self) -> Router:
        return Router(self.routes(), default=self.default_targets)

    def webhook_urls_anywhere(self) -> bool:
        return any(t.webhook for t in self.router().all_targets())

    def slack_channels_anywhere(self) -> bool:
        return any(t.slack for t in self.router().all_targets())
