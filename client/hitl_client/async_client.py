"""`AsyncClient`: ask for approvals and await decisions from asyncio code."""

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import httpx
from hitl_contracts import ApprovalDecided

from hitl_client import _common as c
from hitl_client.errors import WaitTimeout
from hitl_client.keys import KEYS_PATH, Keys, VerifyMode
from hitl_client.models import ApprovalPage, ApprovalState, Verdict
from hitl_client.outcomes import Outcome, outcome_of

DECIDED_TOPIC = "approval.decided"


class AsyncApproval:
    """A handle on one approval: keep `id` with your state, await the outcome later."""

    def __init__(self, client: "AsyncClient", state: ApprovalState, *, created: bool) -> None:
        self.client = client
        self.state = state
        self.created = created

    @property
    def id(self) -> str:
        return self.state.correlation_id

    def __repr__(self) -> str:
        return f"<AsyncApproval {self.id} {self.state.status} v{self.state.version}>"

    async def refresh(self) -> ApprovalState:
        self.state = await self.client.get(self.id)
        return self.state

    async def wait(self, timeout: float | None = None) -> Outcome:
        """The outcome once decided; WaitTimeout after `timeout` seconds (None: no limit).

        Long-polls the service (no busy loop); safe to call again after a timeout or a
        restart, from any process that knows the id.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.state.terminal:
            left = c.LONG_POLL_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(self.id, timeout or 0.0, self.state)
            self.state = await self.client._long_poll(
                self.id, min(left, c.LONG_POLL_SECONDS), self.state.version
            )
        outcome = await self.client.outcome(self.state)
        assert outcome is not None
        return outcome

    async def cancel(self, comment: str = "") -> ApprovalState:
        self.state = await self.client.cancel(self.id, comment=comment)
        return self.state


class AsyncClient:
    """The approval service's API. `base_url` / `token` default to $HITL_APPROVAL_URL and
    $HITL_TOKEN; `verify` see hitl_client.keys ("auto": check signatures when published)."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        verify: VerifyMode = "auto",
        keys: dict[str, Any] | None = None,
        retry: c.Retry | None = None,
        timeout: float = 30.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.http = http or httpx.AsyncClient(
            base_url=c.base_url_of(base_url), headers=c.headers_of(token), timeout=timeout
        )
        self.keys = Keys(verify, keys)
        self.retry = retry or c.Retry()
        self._keys_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response | None = None
        error: Exception | None = None
        for attempt in range(self.retry.attempts + 1):
            try:
                response = await self.http.request(method, path, **kwargs)
                error = None
            except httpx.TransportError as exc:
                response, error = None, exc
            if response is not None and not c.retriable(response):
                return response
            if attempt < self.retry.attempts:
                await asyncio.sleep(self.retry.delay(attempt, response))
        raise c.give_up(response, error)

    async def request(
        self,
        tool: str,
        arguments: Mapping[str, Any],
        reason: str,
        *,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        run_id: str | None = None,
        agent: str | None = None,
        risk_level: str | None = None,
        context: str | Mapping[str, Any] | None = None,
        arguments_schema: Mapping[str, Any] | None = None,
        timeout: float | timedelta | None = None,
        expires_at: datetime | None = None,
        on_timeout: str | None = None,
        tool_call_id: str | None = None,
        edit_policy: Mapping[str, Any] | None = None,
        requested_by: str | None = None,
    ) -> AsyncApproval:
        """Ask for an approval; the same `correlation_id` / `idempotency_key` twice gives the
        same approval (`created` False the second time)."""
        body, headers = c.create_request(
            tool,
            arguments,
            reason,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            timeout=timeout,
            expires_at=expires_at,
            context=context,
            fields={
                "run_id": run_id,
                "agent": agent,
                "risk_level": risk_level,
                "arguments_schema": dict(arguments_schema) if arguments_schema else None,
                "on_timeout": on_timeout,
                "tool_call_id": tool_call_id,
                "edit_policy": dict(edit_policy) if edit_policy else None,
                "requested_by": requested_by,
            },
        )
        response = await self._send("POST", "/v1/approvals", json=body, headers=headers)
        return AsyncApproval(self, c.state_of(response), created=response.status_code == 201)

    def approval(self, state: ApprovalState) -> AsyncApproval:
        return AsyncApproval(self, state, created=False)

    async def resume(self, correlation_id: str) -> AsyncApproval:
        """The handle of an approval asked for earlier (e.g. before a restart)."""
        return AsyncApproval(self, await self.get(correlation_id), created=False)

    async def get(self, correlation_id: str) -> ApprovalState:
        return c.state_of(await self._send("GET", c.path_of(correlation_id)))

    async def _long_poll(self, correlation_id: str, seconds: float, version: int) -> ApprovalState:
        response = await self._send(
            "GET",
            c.path_of(correlation_id),
            params=c.wait_params(seconds, version),
            timeout=seconds + c.LONG_POLL_SLACK,
        )
        return c.state_of(response)

    async def list(
        self,
        *,
        status: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        tool: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> ApprovalPage:
        params = c.list_params(
            status=status, agent=agent, run_id=run_id, tool=tool, limit=limit, cursor=cursor
        )
        return c.page_of(await self._send("GET", "/v1/approvals", params=params))

    async def decide(
        self,
        correlation_id: str,
        decision: Verdict,
        *,
        arguments: Mapping[str, Any] | None = None,
        comment: str = "",
        if_match: int | None = None,
        idempotency_key: str | None = None,
    ) -> ApprovalState:
        """As a reviewer: approve, reject or modify (with `arguments`)."""
        body, headers = c.decide_request(
            decision,
            arguments=arguments,
            comment=comment,
            if_match=if_match,
            idempotency_key=idempotency_key,
        )
        path = c.path_of(correlation_id) + "/decision"
        return c.state_of(await self._send("POST", path, json=body, headers=headers))

    async def cancel(self, correlation_id: str, *, comment: str = "") -> ApprovalState:
        path = c.path_of(correlation_id) + "/cancel"
        return c.state_of(await self._send("POST", path, json={"comment": comment}))

    async def verify(self, decided: ApprovalDecided) -> None:
        """Raise BadDecisionSignature unless the service's keys verify `decided`."""
        if self.keys.needs_fetch(decided):
            async with self._keys_lock:
                if self.keys.needs_fetch(decided):
                    self.keys.load(await self._send("GET", KEYS_PATH))
        self.keys.check(decided)

    def decisions(
        self,
        *,
        agent: str | None,
        group_id: str,
        bootstrap_servers: str,
        topic: str = DECIDED_TOPIC,
        **consumer_options: Any,
    ) -> AsyncIterator[Outcome]:
        """Kafka's decisions for `agent`, verified with this client's keys (hitl_client.kafka)."""
        from hitl_client.kafka import decisions

        return decisions(
            agent=agent,
            group_id=group_id,
            bootstrap_servers=bootstrap_servers,
            topic=topic,
            verify=self.verify,
            **consumer_options,
        )

    async def outcome(self, state: ApprovalState) -> Outcome | None:
        """The verified outcome of a decided approval; None while it is pending."""
        if state.decision is None:
            return None
        await self.verify(state.decision)
        return outcome_of(state.decision)
