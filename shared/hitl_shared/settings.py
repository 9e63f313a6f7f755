"""Settings every service shares; each service subclasses this once."""

from typing import Literal

from pydantic import Field, model_validator
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
    # How long the broker holds a fetch that finds nothing new. Records produced
    # meanwhile answer it at once (fetch_min_bytes is 1), so this is not a latency:
    # it is how often an idle consumer asks, 2 times a second instead of 100 (10 ms
    # cost the three services about 0.2 of a core doing nothing, and the broker more).
    kafka_fetch_max_wait_ms: int = 500
    # Store commands slower than this are logged with their collection and filter's
    # field names (0: off): on FerretDB a filter it cannot serve by `_id` scans.
    mongodb_slow_ms: int = 200
    kafka_linger_ms: int = 0
    # Consumers that handle records concurrently (agent, notifier) commit their offsets
    # at most this often, not once per record (each commit is a request and a write on
    # the broker). A crash redelivers what finished since the last commit; every such
    # handler is idempotent.
    kafka_commit_interval_ms: int = Field(default=100, ge=0, le=10_000)
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
