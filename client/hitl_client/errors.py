"""One exception root; each HTTP refusal a class of its own, carrying the server's message."""

from typing import Any

import httpx

__all__ = [
    "ApiError",
    "BadDecisionSignature",
    "Conflict",
    "Forbidden",
    "HitlError",
    "Invalid",
    "NotFound",
    "PreconditionFailed",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "WaitTimeout",
]


class HitlError(Exception):
    """Anything this client raises on purpose."""


class ApiError(HitlError):
    """The approval service refused the request; `detail` is its message for a person."""

    status_code: int = 0

    def __init__(self, status_code: int, detail: str, body: Any = None) -> None:
        super().__init__(f"{status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.body = body


class Unauthorized(ApiError):
    """401: no token, or one the service does not know."""


class Forbidden(ApiError):
    """403: the token's role (or the approval's policy) does not allow this."""


class NotFound(ApiError):
    """404: no approval with this id."""


class Conflict(ApiError):
    """409: already decided, or the id is taken by a request with other content.

    `approval` is the state that holds (a dict, as the service sent it), when given.
    """

    @property
    def approval(self) -> dict[str, Any] | None:
        found = self.body.get("approval") if isinstance(self.body, dict) else None
        return found if isinstance(found, dict) else None


class PreconditionFailed(Conflict):
    """412: If-Match named a version the approval has moved past."""


class TooLarge(ApiError):
    """413: the body is over the service's size limit."""


class Invalid(ApiError):
    """422: the request is malformed; `errors` lists each problem when the service did."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        found = self.body.get("errors") if isinstance(self.body, dict) else None
        return list(found) if isinstance(found, list) else []


class Unavailable(ApiError):
    """503 (after the client's bounded retries): the service's store or broker is away."""

    def __init__(
        self, status_code: int, detail: str, body: Any = None, retry_after: float | None = None
    ) -> None:
        super().__init__(status_code, detail, body)
        self.retry_after = retry_after


class BadDecisionSignature(HitlError):
    """A decision that does not verify against the service's published keys: never act on it."""


class WaitTimeout(HitlError, TimeoutError):
    """No decision within the timeout; the approval is still pending (`approval`)."""

    def __init__(self, correlation_id: str, timeout: float, approval: Any = None) -> None:
        super().__init__(f"approval {correlation_id} undecided after {timeout:g}s")
        self.correlation_id = correlation_id
        self.approval = approval


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    412: PreconditionFailed,
    413: TooLarge,
    422: Invalid,
}


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def error_for(response: httpx.Response) -> ApiError:
    """The exception for a non-2xx answer, with the service's `detail` when it sent one."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    detail = body.get("detail") if isinstance(body, dict) else None
    if not isinstance(detail, str):
        detail = str(detail) if detail is not None else (response.reason_phrase or "error")
    if response.status_code == 503:
        return Unavailable(503, detail, body, retry_after(response))
    cls = _BY_STATUS.get(response.status_code, ApiError)
    return cls(response.status_code, detail, body)
