"""Settings every service shares; each service subclasses this once."""

from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hitl_shared.kafka_security import KafkaSecuritySettings, kafka_security_problems
from hitl_shared.topics import Topics

DEV_LINK_SECRET = "dev-link-secret"


class CommonSettings(KafkaSecuritySettings, BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore", frozen=True)

    hitl_env: Literal["development", "test", "production"] = "development"
    kafka_bootstrap_servers: str = "127.0.0.1:19092"
    mongodb_url: str = "mongodb://127.0.0.1:27018/"
    mongodb_database: str = "hitl"
    # Isolates test runs that share one broker; empty in production.
    hitl_topic_prefix: str = ""
    # Latency over throughput: aiokafka's default 500 ms would add half a second a hop.
    kafka_fetch_max_wait_ms: int = 10
    # Store commands slower than this are logged with their collection and filter's
    # field names (0: off): on FerretDB a filter it cannot serve by `_id` scans.
    mongodb_slow_ms: int = 200
    kafka_linger_ms: int = 0
    log_level: str = "INFO"

    kafka_partitions: int = 3

    # Signs the approve/reject links in emails (notifier) and verifies them (approval).
    hitl_link_secret: str = DEV_LINK_SECRET

    @property
    def topics(self) -> Topics:
        return Topics(self.hitl_topic_prefix)

    def group_id(self, service: str) -> str:
        return f"{self.hitl_topic_prefix}hitl-{service}"

    @model_validator(mode="after")
    def _fail_fast_on_unsafe(self) -> "CommonSettings":
        # Checked in every environment: a half-configured SASL/TLS setup never works.
        problems = kafka_security_problems(self, production=self.hitl_env == "production")
        if self.hitl_env == "production":
            # All refusals at once: fixing them one restart at a time wastes a deploy each.
            try:
                self.check_production()
            except ValueError as exc:
                problems.insert(0, str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def check_production(self) -> None:
        """Services override to refuse development defaults in production."""

    def require_link_secret(self) -> None:
        """For services that sign or verify email links: refuse the development secret."""
        if self.hitl_env == "production" and self.hitl_link_secret == DEV_LINK_SECRET:
            raise ValueError("production needs HITL_LINK_SECRET (a long random string)")
