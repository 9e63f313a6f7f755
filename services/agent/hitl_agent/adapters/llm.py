"""Chat models: the real `openai` client, or the deterministic offline planner.

Both speak OpenAI chat messages (dicts) so a run's history is the same either way
and a run started offline could be resumed by a real model.
"""

import json
import logging
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from openai import AsyncOpenAI

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    message: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.message.get("tool_calls") or []
        return calls


class ChatModel(Protocol):
    name: str

    async def complete(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> Turn: ...


class OpenAIChatModel:
    """Any OpenAI-compatible endpoint through the official client."""

    def __init__(self, *, api_key: str, base_url: str | None, model: str) -> None:
        self.client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=3, timeout=60)
        self.model = model
        self.name = f"openai:{model}"

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Turn:
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            parallel_tool_calls=True,
        )
        choice = response.choices[0].message
        message: dict[str, Any] = {"role": "assistant", "content": choice.content}
        if choice.tool_calls:
            message["tool_calls"] = [call.model_dump(mode="json") for call in choice.tool_calls]
        usage = response.usage
        return Turn(
            message,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )


_TRANSFER = re.compile(
    r"\b(?:transfer|send|pay)\s+\$?(?P<amount>\d+(?:\.\d+)?)\s+(?:to\s+)?(?P<to>[a-z][\w-]*)", re.I
)
_DEPOSIT = re.compile(r"\bdeposit\s+\$?(?P<amount>\d+(?:\.\d+)?)", re.I)
_BALANCE = re.compile(r"\bbalance(?:\s+of\s+(?P<account>[a-z][\w-]*))?", re.I)


@dataclass
class OfflinePlanner:
    """Deterministic stand-in for an LLM when no OPENAI_API_KEY is set.

    It turns simple banking requests ("Transfer 500 to Alice", "Deposit 20",
    "What is my balance?") into the same tool calls a model would make, then
    reports the tool results. It is not a model and says so in its answers.
    """

    name: str = "offline-planner"
    _ids: int = field(default=0, repr=False)

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Turn:
        last = messages[-1]
        if last["role"] == "tool":
            return Turn({"role": "assistant", "content": self._report(messages)})
        request = str(last.get("content") or "")
        calls = [self._call(name, args) for name, args in self._plan(request)]
        if not calls:
            return Turn(
                {
                    "role": "assistant",
                    "content": "[offline planner] I can only transfer, deposit and read balances; "
                    f"I did not understand: {request!r}",
                }
            )
        return Turn({"role": "assistant", "content": None, "tool_calls": calls})

    @staticmethod
    def _plan(request: str) -> list[tuple[str, dict[str, Any]]]:
        plan: list[tuple[str, dict[str, Any]]] = []
        for m in _TRANSFER.finditer(request):
            plan.append(("transfer", {"to_account": m["to"].lower(), "amount": float(m["amount"])}))
        for m in _DEPOSIT.finditer(request):
            plan.append(("deposit", {"amount": float(m["amount"])}))
        balance = _BALANCE.search(request)
        if not plan and balance:
            plan.append(("get_balance", {"account": (balance["account"] or "checking").lower()}))
        return plan

    def _call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": f"call_{uuid.uuid4().hex[:16]}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)},
        }

    @staticmethod
    def _report(messages: list[dict[str, Any]]) -> str:
        results = []
        for message in reversed(messages):
            if message["role"] != "tool":
                break
            results.append(str(message["content"]))
        return "[offline planner] " + " ".join(reversed(results))


def make_model(*, api_key: str, base_url: str | None, model: str) -> ChatModel:
    if not api_key:
        log.warning("OPENAI_API_KEY is not set: using the deterministic offline planner")
        return OfflinePlanner()
    return OpenAIChatModel(api_key=api_key, base_url=base_url, model=model)
