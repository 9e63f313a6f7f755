"""Server-Sent Events from text lines (pure): the agent's run stream."""

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Message:
    event: str
    data: str
    id: str = ""

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None


def messages(lines: Iterable[str]) -> Iterator[Message]:
    event, last_id = "message", ""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield Message(event, "\n".join(data), last_id)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            last_id = value
    if data:
        yield Message(event, "\n".join(data), last_id)
