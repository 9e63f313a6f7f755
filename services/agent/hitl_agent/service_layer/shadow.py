"""Shadow mode: candidate policies judge every tool call beside the live one, and only say so.

For each candidate configured on the agent (operators' policy file, `shadow`), a tool
call gets one `shadow_decision` run event: the live verdict, the candidate's, and the
public arguments. The run goes on as the live policy decided. A candidate's rule
replaces the live one whole for the tools it names; for others its verdict is the live
one. The approval service stores these records (APPROVAL_SHADOW_FEED) for its what-if:
they are the only record of calls that ran without approval.
"""

from typing import Any, Protocol

from hitl_contracts import RunEventType
from hitl_sdk import ToolArgs

from hitl_agent.service_layer.agents import AgentSpec


class Emitter(Protocol):
    def emit(self, type_: RunEventType, **detail: Any) -> None: ...


def observe(
    spec: AgentSpec,
    tool: str,
    call_id: str,
    args: ToolArgs,
    *,
    live_asks: bool,
    changes: Emitter,
) -> None:
    if not spec.shadow:
        return
    arguments = args.public_arguments()
    for candidate in spec.shadow:
        covered = candidate.agent in (None, spec.name) and tool in candidate.tools
        asks = candidate.tools[tool].asks(arguments) if covered else live_asks
        changes.emit(
            RunEventType.SHADOW_DECISION,
            candidate=candidate.name,
            agent=spec.name,
            tool=tool,
            tool_call_id=call_id,
            arguments=arguments,
            live="ask" if live_asks else "run",
            shadow="ask" if asks else "run",
        )
