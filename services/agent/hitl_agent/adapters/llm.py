"""Chat models: the real `openai` client, or the deterministic offline planner.

Both speak OpenAI chat messages (dicts) so a run's history is the same either way
and a run started offline could be resumed by a real model.
"""

import logging
from typing import Any

from openai import AsyncOpenAI
from openai.types.shared_params import ResponseFormatJSONSchema

from hitl_agent.adapters.chat import ChatModel, Reply
from hitl_agent.adapters.offline import OfflinePlanner, Rule

log = logging.getLogger(__name__)


class OpenAIChatModel:
    """Any OpenAI-compatible endpoint through the official client."""

    def __init__(self, *, api_key: str, base_url: str | None, model: str) -> None:
        self.client = AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=3, timeout=60)
        self.model = model
        self.name = f"openai:{model}"

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            tools=tools,  # type: ignore[arg-type]
            parallel_tool_calls=True,
        )
        return _reply(response)

    async def plan(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Reply:
        response = await self.client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            response_format=ResponseFormatJSONSchema(
                type="json_schema",
                json_schema={"name": "action_plan", "schema": schema, "strict": False},
            ),
        )
        return _reply(response)


def _reply(response: Any) -> Reply:
    choice = response.choices[0].message
    message: dict[str, Any] = {"role": "assistant", "content": choice.content}
    if choice.tool_calls:
        message["tool_calls"] = [call.model_dump(mode="json") for call in choice.tool_calls]
    usage = response.usage
    return Reply(
        message,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )


def make_model(
    *, api_key: str, base_url: str | None, model: str, offline_rules: list[Rule] | None = None
) -> ChatModel:
    if not api_key:
        log.warning("OPENAI_API_KEY is not set: using the deterministic offline planner")
        return OfflinePlanner(rules=offline_rules or [])
    return OpenAIChatModel(api_key=api_key, base_url=base_url, model=model)


__all__ = ["ChatModel", "OfflinePlanner", "OpenAIChatModel", "Reply", "make_model"]
