"""Dead letters: a message a consumer could not process, kept with the reason."""

from pydantic import Field

from hitl_contracts.base import Event


class DeadLetter(Event):
    topic: str
    partition: int
    offset: int
    key: str | None = None
    error: str = Field(description="Why the consumer refused the message.")
    original_b64: str = Field(description="The original bytes, base64 (maybe truncated).")
    original_size: int
    truncated: bool = False
    consumer_group: str = ""
