"""A local OpenAI-compatible chat completions server that replays scripted turns.

A script matches a conversation by a marker in its first user message and answers
its N-th model call with the N-th scripted turn. A text turn may contain
`{tool_results}`, replaced by the tool messages of the latest turn (or, for a
structured-output request, the latest user message: the action plan's results),
and `{last_message}`, replaced by the latest message whatever its role, so a test
can see what the agent told the model (e.g. a reviewer's rejection comment).

Structured outputs: a request with `response_format` json_schema (the router
style) is answered with JSON content: a `Plan` turn as an action plan, a `Say`
turn as a plan with no actions and that text as `final_answer`. A `Plan` turn
answering a request without `response_format` (or a tool-call turn answering
one) is a 400, so a test notices an agent using the wrong halt style.
"""

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Act:
    """One action of a structured-output action plan."""

    tool: str
    arguments: dict[str, Any]
    confidence: float | None = None


@dataclass(frozen=True)
class Plan:
    """A structured-output reply (router style): a typed list of actions."""

    actions: list[Act]
    confidence: float = 0.95
    reasoning: str = "scripted plan"
    final_answer: str | None = None


@dataclass(frozen=True)
class Raw:
    """Content sent as is, e.g. JSON that is not a valid action plan."""

    content: str


Turn = list[Call] | Say | Plan | Raw


@dataclass
class ScriptedLLM:
    scripts: dict[str, list[Turn]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Per-script token usage reported for each call: (prompt, completion).
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Per-script seconds each reply takes (a slow model: a window to act mid-run).
    delays: dict[str, float] = field(default_factory=dict)

    def script(
        self,
        marker: str,
        *turns: Turn,
        tokens: tuple[int, int] | None = None,
        delay: float | None = None,
    ) -> None:
        with self.lock:
            self.scripts[marker] = list(turns)
            if tokens is not None:
                self.usage[marker] = tokens
            if delay is not None:
                self.delays[marker] = delay

    # Requests as they arrive (before a scripted delay): a call in flight is visible.
    arrived: list[dict[str, Any]] = field(default_factory=list)

    def delay_for(self, body: dict[str, Any]) -> float:
        first = _first_user(body.get("messages") or [])
        with self.lock:
            self.arrived.append(body)
            return next((d for m, d in self.delays.items() if m in first), 0.0)

    def arrivals_for(self, marker: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.arrived if marker in _first_user(r["messages"])]

    def calls_for(self, marker: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if marker in _first_user(r["messages"])]

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        first = _first_user(messages)
        with self.lock:
            self.requests.append(body)
            marker = next((m for m in self.scripts if m in first), None)
            if marker is None:
                raise HTTPException(400, f"no script matches {first!r}")
            turns = self.scripts[marker]
        index = sum(1 for m in messages if m["role"] == "assistant")
        if index >= len(turns):
            raise HTTPException(400, f"script {marker!r} has no turn {index}")
        turn = turns[index]
        structured = _wants_json_schema(body)
        if isinstance(turn, Plan | Raw) and not structured:
            raise HTTPException(400, f"script {marker!r} turn {index} expects response_format")
        if isinstance(turn, list) and structured:
            raise HTTPException(400, f"script {marker!r} turn {index} expects tool calling")
        if isinstance(turn, Say):
            text = _fill(turn.text, messages, structured=structured)
            if structured:
                plan = {"reasoning": "done", "confidence": 1.0, "actions": [], "final_answer": text}
                message: dict[str, Any] = {"role": "assistant", "content": json.dumps(plan)}
            else:
                message = {"role": "assistant", "content": text}
            finish = "stop"
        elif isinstance(turn, Plan):
            plan = {
                "reasoning": turn.reasoning,
                "confidence": turn.confidence,
                "actions": [
                    {
                        "tool": a.tool,
                        "arguments": a.arguments,
                        **({"confidence": a.confidence} if a.confidence is not None else {}),
                    }
                    for a in turn.actions
                ],
                "final_answer": turn.final_answer,
            }
            message = {"role": "assistant", "content": json.dumps(plan)}
            finish = "stop"
        elif isinstance(turn, Raw):
            message = {"role": "assistant", "content": turn.content}
            finish = "stop"
        else:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "function",
                        "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                    }
                    for c in turn
                ],
            }
            finish = "tool_calls"
        prompt, completion = self.usage.get(marker, (10 * len(messages), 7))
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


def _wants_json_schema(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") == "json_schema"


def _fill(text: str, messages: list[dict[str, Any]], *, structured: bool) -> str:
    if structured and messages[-1]["role"] == "user":
        results = [str(messages[-1].get("content"))]
    else:
        results = _latest_tool_results(messages)
    return text.replace("{tool_results}", " ".join(results)).replace(
        "{last_message}", str(messages[-1].get("content"))
    )


def _first_user(messages: list[dict[str, Any]]) -> str:
    return next((str(m.get("content")) for m in messages if m["role"] == "user"), "")


def _latest_tool_results(messages: list[dict[str, Any]]) -> list[str]:
    results: list[str] = []
    for message in reversed(messages):
        if message["role"] != "tool":
            break
        results.append(str(message["content"]))
    return list(reversed(results))


def app_for(llm: ScriptedLLM) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request) -> dict[str, Any]:
        body = await request.json()
        if delay := llm.delay_for(body):
            await asyncio.sleep(delay)
        return llm.answer(body)

    return app
