"""The one error a channel raises: whether retrying can help is the caller's cue."""


class DeliveryError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        # Permanent: retrying cannot succeed (bad token, unknown channel, rejected address).
        self.permanent = permanent
