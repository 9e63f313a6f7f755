"""HTTP to the approval and agent services, with errors turned into exit codes."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from hitl_cli.errors import Conflicted, Failed


@dataclass(frozen=True)
class Config:
    approval_url: str
    agent_url: str
    token: str
    timeout: float
    # The agent API's bearer token (its own directory, AGENT_TOKENS).
    agent_token: str = ""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except json.JSONDecodeError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict) and "detail" in body:
        detail = body["detail"]
        return detail if isinstance(detail, str) else json.dumps(detail)
    return json.dumps(body)[:500]


class ConflictError(Conflicted):
    def __init__(self, message: str, body: dict[str, Any]) -> None:
        super().__init__(message)
        self.body = body


class Api:
    """One service's REST API; every failure is a `Failed` with an actionable message."""

    def __init__(self, name: str, base_url: str, *, token: str = "", timeout: float) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        return self._checked(response).json()

    def stream_lines(self, path: str, **kwargs: Any) -> Iterator[str]:
        try:
            with self.http.stream("GET", path, **kwargs) as response:
                if response.is_error:
                    response.read()
                    self._checked(response)
                yield from response.iter_lines()
        except httpx.HTTPError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: httpx.HTTPError) -> Failed:
        return Failed(
            f"cannot reach the {self.name} service at {self.base_url} ({exc.__class__.__name__}: "
            f"{exc}). Is it running? Try `hitl status`, or set HITL_{self.name.upper()}_URL."
        )

    def _checked(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        detail = _detail(response)
        code = response.status_code
        if code in (409, 412):
            raise ConflictError(detail, response.json())
        if code == 401:
            if self.name == "agent":
                raise Failed(f"{detail} (set HITL_AGENT_TOKEN or pass --agent-token)")
            raise Failed(f"{detail} (set HITL_TOKEN or pass --token)")
        raise Failed(f"{self.name} service answered {code}: {detail}")


def approval_api(config: Config) -> Api:
    return Api("approval", config.approval_url, token=config.token, timeout=config.timeout)


def agent_api(config: Config) -> Api:
    return Api("agent", config.agent_url, token=config.agent_token, timeout=config.timeout)
