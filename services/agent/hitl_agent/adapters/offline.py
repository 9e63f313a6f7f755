"""The deterministic offline planner: a clearly labelled stand-in for a model.

Used when no OPENAI_API_KEY is set. It turns simple requests ("Transfer 500 to
Alice", "Deposit 20", "What is my balance?", "Delete all log files older than 7
days", "List files") into the same tool calls, or action plans, a model would
make, then reports the results. For any agent's tools, a request may also spell
the calls out: `pay_invoice {"vendor": "acme", "amount": 1500}`. It is not a
model and says so in its answers.
"""

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from hitl_agent.adapters.chat import Reply
from hitl_agent.domain.run import PLAN_RESULTS_HEADER

LABEL = "[offline planner]"

_TRANSFER = re.compile(
    r"\b(?:transfer|send|pay)\s+\$?(?P<amount>\d+(?:\.\d+)?)\s+(?:to\s+)?(?P<to>[a-z][\w-]*)", re.I
)
_DEPOSIT = re.compile(r"\bdeposit\s+\$?(?P<amount>\d+(?:\.\d+)?)", re.I)
_BALANCE = re.compile(r"\bbalance(?:\s+of\s+(?P<account>[a-z][\w-]*))?", re.I)
_DELETE = re.compile(
    r"\b(?:delete|remove|clean\s+up)\s+(?:all\s+)?(?:the\s+)?(?:(?P<kind>[\w*.-]+)\s+)?files?"
    r"(?:\s+older\s+than\s+(?P<days>\d+(?:\.\d+)?)\s+days?)?",
    re.I,
)
_LIST = re.compile(r"\b(?:list|show)\s+(?:all\s+|the\s+)?files\b", re.I)
# `tool_name {json arguments}`, for tools of any agent.
_SPELLED = re.compile(r"\b([A-Za-z][\w-]*)\s*(?=\{)")


@dataclass
class OfflinePlanner:
    name: str = "offline-planner"

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        if _answered(messages):
            return Reply({"role": "assistant", "content": f"{LABEL} {_results(messages)}"})
        request = _request(messages)
        known = {t["function"]["name"] for t in tools}
        planned = spelled_out(request, known) or plan_request(request)
        calls = [_call(n, a) for n, a in planned if not known or n in known]
        if not calls:
            return Reply({"role": "assistant", "content": _not_understood(request)})
        return Reply({"role": "assistant", "content": None, "tool_calls": calls})

    async def plan(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Reply:
        if _answered(messages):
            answer = f"{LABEL} {_results(messages)}"
            return _plan_reply(reasoning="all actions are done", actions=[], final=answer)
        request = _request(messages)
        known = _plan_tools(schema)
        planned = spelled_out(request, known) or plan_request(request)
        actions = [{"tool": n, "arguments": a} for n, a in planned if not known or n in known]
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


def plan_request(request: str) -> list[tuple[str, dict[str, Any]]]:
    plan: list[tuple[str, dict[str, Any]]] = []
    for m in _TRANSFER.finditer(request):
        plan.append(("transfer", {"to_account": m["to"].lower(), "amount": float(m["amount"])}))
    for m in _DEPOSIT.finditer(request):
        plan.append(("deposit", {"amount": float(m["amount"])}))
    if (delete := _DELETE.search(request)) is not None:
        plan.append(
            (
                "delete_files",
                {"pattern": _glob(delete["kind"]), "older_than_days": float(delete["days"] or 0)},
            )
        )
    if not plan and _LIST.search(request):
        plan.append(("list_files", {"pattern": "**/*"}))
    balance = _BALANCE.search(request)
    if not plan and balance:
        plan.append(("get_balance", {"account": (balance["account"] or "checking").lower()}))
    return plan


def _glob(kind: str | None) -> str:
    if not kind or kind.lower() in {"all", "the", "old"}:
        return "*"
    if any(ch in kind for ch in "*?["):
        return kind
    return f"*.{kind.lower().lstrip('.')}"


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
        f"{LABEL} I can only transfer, deposit, read balances, list and delete files, or "
        f"call a tool written as `tool_name {{json arguments}}`; I did not understand: "
        f"{request!r}"
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
