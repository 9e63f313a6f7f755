"""An HTTP endpoint that records every request it receives.

It stands in for webhook receivers, Slack's Web API and Slack's `response_url`.
By default it answers 204; a test can script answers per path (`answer`), make a
path fail N times or forever (`fail`), or act as Slack's Web API (`act_as_slack`).
"""

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request, Response


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes
    # What the recorder answered: lets a test count the deliveries that succeeded.
    status: int = 204

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


Responder = Callable[[Recorded], tuple[int, Any]]
Predicate = Callable[[Recorded], bool]


@dataclass
class _Failure:
    path: str
    status: int
    remaining: int | None  # None: forever
    when: Predicate | None


@dataclass
class _Stall:
    path: str
    seconds: float
    remaining: int | None
    when: Predicate | None


@dataclass
class Recorder:
    received: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    responders: dict[str, Responder] = field(default_factory=dict)
    failures: list[_Failure] = field(default_factory=list)
    stalls: list["_Stall"] = field(default_factory=list)
    # Requests being held by `stall` right now (recorded in `received` once answered).
    held: list[Recorded] = field(default_factory=list)

    def matching(self, key: str, value: str) -> list[Recorded]:
        """JSON requests whose top-level `key` equals `value`."""
        with self.lock:
            return [r for r in self.received if _json_or_none(r).get(key) == value]

    def at(self, path: str, *, ok: bool | None = None) -> list[Recorded]:
        """Requests to `path`; `ok=True` only those answered with 2xx."""
        with self.lock:
            found = [r for r in self.received if r.path == path]
        if ok is None:
            return found
        return [r for r in found if (200 <= r.status < 300) == ok]

    def answer(self, path: str, responder: Responder) -> None:
        with self.lock:
            self.responders[path] = responder

    def fail(
        self,
        path: str,
        *,
        times: int | None,
        status: int = 500,
        when: Predicate | None = None,
    ) -> None:
        """Answer `status` to the next `times` requests to `path` (None: forever)."""
        with self.lock:
            self.failures.append(_Failure(path, status, times, when))

    def stall(
        self, path: str, *, seconds: float, times: int | None = 1, when: Predicate | None = None
    ) -> None:
        """Hold the next `times` matching requests `seconds` before answering."""
        with self.lock:
            self.stalls.append(_Stall(path, seconds, times, when))

    def _stall_for(self, recorded: Recorded) -> float:
        with self.lock:
            for rule in self.stalls:
                if rule.path != recorded.path or rule.remaining == 0:
                    continue
                if rule.when is not None and not rule.when(recorded):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule.seconds
        return 0.0

    def act_as_slack(self, prefix: str = "/api") -> None:
        """chat.postMessage / chat.update answer like Slack's Web API does."""
        counter = itertools.count(1)

        def post(recorded: Recorded) -> tuple[int, Any]:
            body = recorded.json()
            ts = f"{int(time.time())}.{next(counter):06d}"
            return 200, {"ok": True, "channel": body.get("channel"), "ts": ts}

        def update(recorded: Recorded) -> tuple[int, Any]:
            body = recorded.json()
            return 200, {"ok": True, "channel": body.get("channel"), "ts": body.get("ts")}

        self.answer(f"{prefix}/chat.postMessage", post)
        self.answer(f"{prefix}/chat.update", update)

    def _respond(self, recorded: Recorded) -> tuple[int, Any]:
        with self.lock:
            for failure in self.failures:
                if failure.path != recorded.path or failure.remaining == 0:
                    continue
                if failure.when is not None and not failure.when(recorded):
                    continue
                if failure.remaining is not None:
                    failure.remaining -= 1
                return failure.status, {"ok": False, "error": "scripted_failure"}
            responder = self.responders.get(recorded.path)
        return responder(recorded) if responder else (204, None)


def _json_or_none(recorded: Recorded) -> dict[str, Any]:
    try:
        value = recorded.json()
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def app_for(recorder: Recorder) -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def record(path: str, request: Request) -> Response:
        item = Recorded("/" + path, dict(request.headers), await request.body())
        if stall := recorder._stall_for(item):
            with recorder.lock:
                recorder.held.append(item)
            await asyncio.sleep(stall)
        status, body = recorder._respond(item)
        item.status = status
        with recorder.lock:
            recorder.received.append(item)
        if body is None:
            return Response(status_code=status)
        return Response(json.dumps(body), status_code=status, media_type="application/json")

    return app
