"""What the runner needs from a chat model, whichever one stands behind it."""

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Reply:
    message: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.message.get("tool_calls") or []
        return calls

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")


class ChatModel(Protocol):
    name: str

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        """Tool-calling style: the reply may carry tool calls."""
        ...

    async def plan(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Reply:
        """Router style: the reply's content is JSON matching `schema` (an action plan)."""
        ...
