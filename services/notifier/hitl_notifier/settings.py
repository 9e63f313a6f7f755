"""Notifier settings."""

from hitl_shared.settings import CommonSettings


class NotifierSettings(CommonSettings):
    notifier_host: str = "127.0.0.1"
    notifier_port: int = 8083
    # Comma-separated URLs that receive a JSON summary of every approval request.
    notifier_webhook_urls: str = ""
    # Base URL of the approval service, for links in notifications.
    approval_public_url: str = "http://127.0.0.1:8081"
    notifier_timeout_seconds: float = 5.0

    @property
    def webhook_urls(self) -> list[str]:
        return [u.strip() for u in self.notifier_webhook_urls.split(",") if u.strip()]
