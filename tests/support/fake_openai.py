"""A local OpenAI-compatible chat completions server that replays scripted turns.

A script matches a conversation by a marker in its first user message and answers
its N-th model call with the N-th scripted turn. A text turn may contain
`{tool_results}`, replaced by the tool messages of the latest turn, so a test can
see what the agent told the model (e.g. a reviewer's rejection comment).
"""

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


Turn = list[Call] | Say


@dataclass
class ScriptedLLM:
    scripts: dict[str, list[Turn]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, marker: str, *turns: Turn) -> None:
        with self.lock:
            self.scripts[marker] = list(turns)

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
        if isinstance(turn, Say):
            text = turn.text.replace("{tool_results}", " ".join(_latest_tool_results(messages)))
            message: dict[str, Any] = {"role": "assistant", "content": text}
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
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": 10 * len(messages),
                "completion_tokens": 7,
                "total_tokens": 10 * len(messages) + 7,
            },
        }


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
        return llm.answer(await request.json())

    return app
