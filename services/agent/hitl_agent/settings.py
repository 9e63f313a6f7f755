"""Agent service settings."""

from hitl_shared.directory import Directory, Principal, Role, load_directory
from hitl_shared.settings import CommonSettings
from pydantic import AliasChoices, Field

DEV_APPROVAL_TOKEN = "dev-reviewer-token"
# Outside production, this token is principal `developer` with roles submit, read, operate.
DEV_AGENT_TOKEN = "dev-agent-token"
DEV_AGENT_PRINCIPAL = "developer"


class AgentSettings(CommonSettings):
    agent_host: str = "127.0.0.1"
    agent_port: int = 8082
    # Empty: the deterministic offline planner stands in for the model.
    openai_api_key: str = ""
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    # The agent apps this worker hosts: import strings `package.module:app`, separated
    # by commas. Empty: every app installed packages declare under the `hitl.apps`
    # entry point group. `hitl-agent --app ...` overrides this.
    agent_apps: str = ""
    # Tasks that name no agent (older producers) run as this one; empty: such a task
    # is refused (dead-lettered) with that reason.
    agent_default_agent: str = ""
    # Worker registry: each worker says every so often which agents it hosts; one
    # silent for longer than `stale` is presumed gone (its agents' tasks wait, visibly).
    agent_worker_heartbeat_seconds: float = Field(default=5.0, gt=0)
    agent_worker_stale_seconds: float = Field(default=30.0, gt=0)
    # Guards per run (agents may override in AGENT_POLICIES_FILE); tripping one
    # pauses the run with a request_human_intervention approval.
    agent_max_steps: int = Field(default=12, ge=1)
    agent_token_budget: int = Field(default=200_000, ge=1)
    agent_max_repeated_failures: int = Field(default=3, ge=1)
    # Router-style agents: a planned action less certain than this needs a human.
    agent_confidence_threshold: float = Field(default=0.7, ge=0, le=1)
    agent_approval_timeout_seconds: float = Field(default=1800.0, gt=0)
    # JSON file of per-agent policy tightening and agent variants (README).
    agent_policies_file: str = ""
    # The approval service, for cancelling the approvals of a cancelled run.
    agent_approval_url: str = Field(
        default="http://127.0.0.1:8081",
        validation_alias=AliasChoices("agent_approval_url", "approval_public_url"),
    )
    agent_approval_token: str = DEV_APPROVAL_TOKEN
    # The approval service's public keys (JWK set) that may sign decisions: pinned here,
    # or, when both are empty, fetched from AGENT_APPROVAL_URL/v1/keys.
    agent_decision_keys: str = ""
    agent_decision_keys_file: str = ""
    # Who may call this API (hitl_shared.directory format). Outside production the
    # development token `dev-agent-token` (principal `developer`) is added.
    agent_tokens: str = ""
    agent_tokens_file: str = ""
    # Runs handled at once from Kafka (tasks and decisions; one run's messages in order).
    agent_concurrency: int = Field(default=16, ge=1, le=1024)
    # Outbox relay and stalled-run recovery.
    agent_outbox_interval_seconds: float = Field(default=1.0, gt=0)
    agent_outbox_grace_seconds: float = Field(default=3.0, ge=0)
    agent_stalled_after_seconds: float = Field(default=120.0, gt=0)
    # How long a second attempt at a non-idempotent call waits for the first one.
    agent_execution_wait_seconds: float = Field(default=30.0, ge=0)
    # Run event streams (SSE): store poll interval and longest connection.
    agent_sse_poll_seconds: float = Field(default=0.2, gt=0)
    agent_sse_max_seconds: float = Field(default=600.0, gt=0)
    # Oversight: the price table that turns a run's tokens into money (JSON: currency,
    # default and per-agent prices per million prompt / completion tokens; README).
    agent_prices: str = ""
    agent_prices_file: str = ""
    # How long the cost figures of /metrics are reused before the store is read again.
    agent_cost_metrics_seconds: float = Field(default=30.0, gt=0)
    # Test-only fault injection: exit right after executing this tool, before
    # recording it (proves a redelivery finishes the job). Refused in production.
    agent_fault_crash_after_execution: str = ""

    def directory(self) -> Directory:
        """Who may call the agent API; the development token only outside production."""
        dev = None
        if self.hitl_env != "production":
            dev = Principal(DEV_AGENT_PRINCIPAL, frozenset({Role.SUBMIT, Role.READ, Role.OPERATE}))
        return load_directory(
            inline=self.agent_tokens,
            file=self.agent_tokens_file,
            source="AGENT_TOKENS",
            dev=dev,
            dev_token=DEV_AGENT_TOKEN,
        )

    @property
    def uses_offline_planner(self) -> bool:
        return not self.openai_api_key

    def check_production(self) -> None:
        if not (self.agent_tokens or self.agent_tokens_file):
            raise ValueError(
                "production needs AGENT_TOKENS or AGENT_TOKENS_FILE: the agent API does not "
                "run without authentication"
            )
        if self.agent_approval_token == DEV_APPROVAL_TOKEN:
            raise ValueError(
                "production needs AGENT_APPROVAL_TOKEN; the development token is refused"
            )
        if self.agent_fault_crash_after_execution:
            raise ValueError("AGENT_FAULT_CRASH_AFTER_EXECUTION is for tests only")
