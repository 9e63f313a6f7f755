"""The agents a runner knows: the apps' definitions, tightened by the operators' file."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import hitl_sdk
from hitl_contracts.rules import CandidatePolicy

from hitl_agent.adapters.policy_file import AgentConfig
from hitl_agent.domain.policy import AgentPolicy, ToolPolicy, approval_reasons
from hitl_agent.domain.run import Budget, Style
from hitl_agent.tools.intervention import intervention_tool
from hitl_agent.tools.registry import Execution, PolicyArgs, Registry, Tool


class UnknownAgent(ValueError):
    pass


@dataclass(frozen=True)
class AgentSpec:
    name: str
    system_prompt: str
    registry: Registry
    policy: AgentPolicy = field(default_factory=AgentPolicy)
    # Candidate policies in shadow mode (service_layer.shadow): recorded, never enforced.
    shadow: tuple[CandidatePolicy, ...] = ()

    def reasons(self, tool: Tool, args: PolicyArgs, *, confidence: float | None) -> list[str]:
        return approval_reasons(
            tool.name,
            tool.policy,
            args,
            confidence=confidence,
            threshold=self.policy.confidence_threshold,
        )

    def budget(self) -> Budget:
        return Budget(
            max_steps=self.policy.max_steps,
            max_tokens=self.policy.token_budget,
            max_repeated_failures=self.policy.max_repeated_failures,
        )


@dataclass(frozen=True)
class Builtin:
    name: str
    system_prompt: str
    registry: Callable[[], Registry]
    policy: AgentPolicy = field(default_factory=AgentPolicy)


def builtin_of(agent: hitl_sdk.Agent, defaults: AgentPolicy) -> Builtin:
    """An app's agent as the runtime runs it; guards it leaves open take the defaults."""
    policy = replace(
        defaults,
        style=Style(agent.style),
        max_steps=agent.max_steps or defaults.max_steps,
        token_budget=agent.token_budget or defaults.token_budget,
        max_repeated_failures=agent.max_repeated_failures or defaults.max_repeated_failures,
        confidence_threshold=(
            defaults.confidence_threshold
            if agent.confidence_threshold is None
            else agent.confidence_threshold
        ),
    )
    tools = [tool_of(agent.name, t) for t in agent.tools]
    return Builtin(agent.name, agent.system_prompt, lambda: Registry(tools), policy)


def tool_of(agent: str, declared: hitl_sdk.Tool) -> Tool:
    async def execute(args: PolicyArgs, execution: Execution) -> str:
        context = hitl_sdk.ToolContext(
            agent=agent,
            run_id=execution.key.run_id,
            tool_call_id=execution.key.tool_call_id,
            idempotency_key=str(execution.key),
            preview=execution.preview,
        )
        return await declared.fn(args, context)

    return Tool(
        declared.name,
        declared.description,
        declared.args,
        execute,
        policy=ToolPolicy(
            requires_approval=declared.approval == "always",
            risk_level=declared.risk,
            timeout_seconds=declared.timeout_seconds,
            edit=declared.edit_policy,
        ),
        idempotent=declared.idempotent,
        preview=declared.preview,
        check=declared.approval_check,
        totals=declared.totals,
    )


def build_catalog(builtins: list[Builtin], config: dict[str, AgentConfig]) -> dict[str, AgentSpec]:
    """Every hosted agent, each with the model-requested intervention tool, then the
    operators' tightening and variants. Fails fast on a config naming unknown things."""
    base = {b.name: b for b in builtins}
    catalog: dict[str, AgentSpec] = {}
    for name in [*base, *(n for n in config if n not in base)]:
        entry = config.get(name)
        origin = base.get(name) or base.get((entry.extends if entry else None) or "")
        if origin is None:
            raise UnknownAgent(
                f"policy file agent {name!r} is not hosted here and extends no hosted agent "
                f"(hosted: {sorted(base)})"
            )
        registry = origin.registry().plus(intervention_tool())
        policy, prompt = origin.policy, origin.system_prompt
        shadow: tuple[CandidatePolicy, ...] = ()
        if entry is not None:
            registry = registry.tightened(entry.tools)
            prompt = entry.system_prompt or prompt
            policy = _configured(policy, entry)
            shadow = entry.shadow
        catalog[name] = AgentSpec(name, prompt, registry, policy, shadow)
    return catalog


def _configured(policy: AgentPolicy, entry: AgentConfig) -> AgentPolicy:
    return replace(
        policy,
        style=entry.style or policy.style,
        confidence_threshold=(
            policy.confidence_threshold
            if entry.confidence_threshold is None
            else entry.confidence_threshold
        ),
        max_steps=entry.max_steps or policy.max_steps,
        token_budget=entry.token_budget or policy.token_budget,
        max_repeated_failures=entry.max_repeated_failures or policy.max_repeated_failures,
        tools=entry.tools,
    )
