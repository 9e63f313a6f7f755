"""The agents this worker hosts: the loaded apps' agents, tightened by the operators' file."""

from hitl_sdk import App

from hitl_agent.adapters.policy_file import load_policies
from hitl_agent.domain.policy import AgentPolicy
from hitl_agent.domain.run import Style
from hitl_agent.service_layer.agents import AgentSpec, build_catalog, builtin_of
from hitl_agent.settings import AgentSettings


def agents(settings: AgentSettings, apps: list[App]) -> dict[str, AgentSpec]:
    defaults = AgentPolicy(
        style=Style.TOOLS,
        confidence_threshold=settings.agent_confidence_threshold,
        max_steps=settings.agent_max_steps,
        token_budget=settings.agent_token_budget,
        max_repeated_failures=settings.agent_max_repeated_failures,
    )
    builtins = [builtin_of(agent, defaults) for app in apps for agent in app.agents]
    return build_catalog(builtins, load_policies(settings.agent_policies_file))
