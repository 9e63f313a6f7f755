"""Counting the store commands a use case sends, on the real server (a PyMongo listener)."""

from collections import Counter
from dataclasses import dataclass, field

from pymongo import monitoring

# Commands that are not round trips of the use case (driver housekeeping).
HOUSEKEEPING = {"endSessions", "hello", "isMaster", "ismaster", "ping", "buildInfo"}


@dataclass
class Commands(monitoring.CommandListener):
    """`seen["<command> <collection>"]`: how often each was sent while `counting`."""

    counting: bool = False
    seen: Counter[str] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if self.counting and event.command_name not in HOUSEKEEPING:
            target = event.command.get(event.command_name)
            self.seen[f"{event.command_name} {target}"] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None

    @property
    def total(self) -> int:
        return sum(self.seen.values())
