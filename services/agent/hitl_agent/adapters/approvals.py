"""The approval service's REST API, as far as the agent needs it: cancelling approvals."""

import logging

import httpx

log = logging.getLogger(__name__)


class ApprovalServiceError(Exception):
    """The approval service did not confirm; the caller retries later."""


class ApprovalClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    async def cancel(self, correlation_id: str, comment: str) -> str:
        """Cancel a pending approval; returns its final status (cancelled or already decided)."""
        try:
            response = await self.http.post(
                f"/v1/approvals/{correlation_id}/cancel", json={"comment": comment}
            )
        except httpx.HTTPError as exc:
            raise ApprovalServiceError(f"cancelling {correlation_id}: {exc!r}") from exc
        if response.status_code == 200:
            return "cancelled"
        if response.status_code == 409:
            # Decided first (approved, rejected, expired...): nothing left to cancel.
            return str(_status(response) or "decided")
        # 404: the request is not ingested yet; anything else: worth another try later.
        raise ApprovalServiceError(
            f"cancelling {correlation_id}: HTTP {response.status_code} {response.text[:300]}"
        )

    async def close(self) -> None:
        await self.http.aclose()


def _status(response: httpx.Response) -> object:
    try:
        body = response.json()
    except ValueError:
        return None
    approval = body.get("approval") if isinstance(body, dict) else None
    return approval.get("status") if isinstance(approval, dict) else None
