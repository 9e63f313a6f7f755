"""The built-in demo agents, with their real effects (ledger, sandbox)."""

from dataclasses import replace

from hitl_agent.adapters.ledger import Ledger
from hitl_agent.adapters.policy_file import load_policies
from hitl_agent.adapters.sandbox import Sandbox
from hitl_agent.domain.policy import AgentPolicy
from hitl_agent.domain.run import Style
from hitl_agent.service_layer.agents import AgentSpec, Builtin, build_catalog
from hitl_agent.settings import AgentSettings
from hitl_agent.tools import banking, files


def agents(settings: AgentSettings, *, ledger: Ledger, sandbox: Sandbox) -> dict[str, AgentSpec]:
    defaults = AgentPolicy(
        style=Style.TOOLS,
        confidence_threshold=settings.agent_confidence_threshold,
        max_steps=settings.agent_max_steps,
        token_budget=settings.agent_token_budget,
        max_repeated_failures=settings.agent_max_repeated_failures,
    )
    builtins = [
        Builtin(
            "banking",
            banking.SYSTEM_PROMPT,
            lambda: banking.banking_registry(
                ledger,
                threshold=settings.agent_transfer_approval_threshold,
                daily_limit=settings.agent_account_daily_limit,
            ),
            defaults,
        ),
        # The files agent halts the other way: the model returns an action plan.
        Builtin(
            "files",
            files.SYSTEM_PROMPT,
            lambda: files.files_registry(sandbox),
            replace(defaults, style=Style.ROUTER),
        ),
    ]
    return build_catalog(builtins, load_policies(settings.agent_policies_file))
