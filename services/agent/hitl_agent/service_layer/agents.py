"""The agents a runner knows: built-in definitions, tightened by the operators' file."""

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from hitl_agent.adapters.policy_file import AgentConfig
from hitl_agent.domain.policy import AgentPolicy, approval_reasons
from hitl_agent.domain.run import Budget
from hitl_agent.tools.intervention import intervention_tool
from hitl_agent.tools.registry import PolicyArgs, Registry, Tool


class UnknownAgent(ValueError):
    pass


@dataclass(frozen=True)
class AgentSpec:
    name: str
    system_prompt: str
    registry: Registry
    policy: AgentPolicy = field(default_factory=AgentPolicy)

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


def build_catalog(builtins: list[Builtin], config: dict[str, AgentConfig]) -> dict[str, AgentSpec]:
    """Every built-in agent, each with the model-requested intervention tool, then the
    operators' tightening and variants. Fails fast on a config naming unknown things."""
    base = {b.name: b for b in builtins}
    catalog: dict[str, AgentSpec] = {}
    for name in [*base, *(n for n in config if n not in base)]:
        entry = config.get(name)
        origin = base.get(name) or base.get((entry.extends if entry else None) or "")
        if origin is None:
            raise UnknownAgent(
                f"policy file agent {name!r} is not built in and extends no built-in agent "
                f"(built in: {sorted(base)})"
            )
        registry = origin.registry().plus(intervention_tool())
        policy, prompt = origin.policy, origin.system_prompt
        if entry is not None:
            registry = registry.tightened(entry.tools)
            prompt = entry.system_prompt or prompt
            policy = _configured(policy, entry)
        catalog[name] = AgentSpec(name, prompt, registry, policy)
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
