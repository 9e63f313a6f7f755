"""The one error a channel raises: whether retrying can help is the caller's cue."""


class DeliveryError(Exception):
    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        # Permanent: retrying cannot succeed (bad token, unknown channel, rejected address).
        self.permanent = permanent
        # The server said when to come back (HTTP 429 Retry-After): never retry sooner.
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header; None when absent or an HTTP date we do not parse."""
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
