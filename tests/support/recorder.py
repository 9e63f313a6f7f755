"""An HTTP endpoint that records every request it receives (stands in for webhooks)."""

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, Response


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Recorder:
    received: list[Recorded] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def matching(self, key: str, value: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.received if r.json().get(key) == value]


def app_for(recorder: Recorder) -> FastAPI:
    app = FastAPI()

    @app.post("/{path:path}")
    async def record(path: str, request: Request) -> Response:
        item = Recorded("/" + path, dict(request.headers), await request.body())
        with recorder.lock:
            recorder.received.append(item)
        return Response(status_code=204)

    return app
