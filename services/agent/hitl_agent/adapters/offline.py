"""The deterministic offline planner: a clearly labelled stand-in for a model.

Used when no OPENAI_API_KEY is set. It turns requests into the same tool calls, or
action plans, a model would make, then reports the results: calls spelled out in
the request (`pay_invoice {"vendor": "acme", "amount": 1500}`), else what the hosted
agents' own `offline_plan` rules read in it (the demo's: "Transfer 500 to Alice",
"Delete all log files older than 7 days"). It is not a model and says so in its
answers.
"""

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hitl_agent.adapters.chat import Reply
from hitl_agent.domain.run import PLAN_RESULTS_HEADER

LABEL = "[offline planner]"

# `tool_name {json arguments}`, for tools of any agent.
_SPELLED = re.compile(r"\b([A-Za-z][\w-]*)\s*(?=\{)")


# An app's rule: the user's request -> the tool calls it means, as (tool, arguments).
Rule = Callable[[str], list[tuple[str, dict[str, Any]]]]


@dataclass
class OfflinePlanner:
    # The hosted agents' `offline_plan` rules; each call is kept only if the agent
    # at hand has that tool.
    rules: list[Rule] = field(default_factory=list)
    name: str = "offline-planner"

    def planned(self, request: str, known: set[str]) -> list[tuple[str, dict[str, Any]]]:
        calls = spelled_out(request, known) or [c for rule in self.rules for c in rule(request)]
        return [(n, a) for n, a in calls if not known or n in known]

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        if _answered(messages):
            return Reply({"role": "assistant", "content": f"{LABEL} {_results(messages)}"})
        request = _request(messages)
        known = {t["function"]["name"] for t in tools}
        calls = [_call(n, a) for n, a in self.planned(request, known)]
        if not calls:
            return Reply({"role": "assistant", "content": _not_understood(request)})
        return Reply({"role": "assistant", "content": None, "tool_calls": calls})

    async def plan(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Reply:
        if _answered(messages):
            answer = f"{LABEL} {_results(messages)}"
            return _plan_reply(reasoning="all actions are done", actions=[], final=answer)
        request = _request(messages)
        known = _plan_tools(schema)
        actions = [{"tool": n, "arguments": a} for n, a in self.planned(request, known)]
        if not actions:
            return _plan_reply(
                reasoning="no rule matched", actions=[], final=_not_understood(request)
            )
        return _plan_reply(reasoning=f"{LABEL} matched the request", actions=actions, final=None)


def spelled_out(request: str, known: set[str]) -> list[tuple[str, dict[str, Any]]]:
    """Calls written as `tool_name {json}` in the request, for the agent's own tools."""
    calls: list[tuple[str, dict[str, Any]]] = []
    decoder = json.JSONDecoder()
    for match in _SPELLED.finditer(request):
        if match[1] not in known:
            continue
        try:
            arguments, _ = decoder.raw_decode(request, match.end())
        except ValueError:
            continue
        if isinstance(arguments, dict):
            calls.append((match[1], arguments))
    return calls


def _answered(messages: list[dict[str, Any]]) -> bool:
    return any(m["role"] == "assistant" for m in messages)


def _request(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content") or "") for m in messages if m["role"] == "user"), "")


def _results(messages: list[dict[str, Any]]) -> str:
    """What happened since the last model turn: tool results or the plan's results."""
    last = messages[-1]
    if last["role"] == "user":
        text = str(last.get("content") or "")
        return text.removeprefix(PLAN_RESULTS_HEADER).strip()
    results = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.append(str(message["content"]))
    return " ".join(reversed(results))


def _not_understood(request: str) -> str:
    return (
        f"{LABEL} I only make the calls my rules read in a request, or calls written as "
        f"`tool_name {{json arguments}}`; I did not understand: {request!r}"
    )


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:16]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def _plan_tools(schema: dict[str, Any]) -> set[str]:
    variants = schema.get("properties", {}).get("actions", {}).get("items", {}).get("anyOf", [])
    return {v["properties"]["tool"]["const"] for v in variants}


def _plan_reply(*, reasoning: str, actions: list[dict[str, Any]], final: str | None) -> Reply:
    plan = {"reasoning": reasoning, "confidence": 1.0, "actions": actions, "final_answer": final}
    return Reply({"role": "assistant", "content": json.dumps(plan)})
