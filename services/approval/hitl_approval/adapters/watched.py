"""Store instrumentation for waiters: a repository that tells them of its own commits,
and a count of store commands (`hitl_store_commands_total`) that shows what waiting costs."""

from collections.abc import Callable
from typing import Any

from hitl_shared.mongo import Document
from prometheus_client import CollectorRegistry, Counter
from pymongo import monitoring
from pymongo.asynchronous.database import AsyncDatabase

from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.domain.model import Approval


class WatchedRepository(ApprovalRepository):
    """`project` runs after every commit of this replica with the new state: hand it over."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        instance: str,
        on_projected: Callable[[Approval], None],
    ) -> None:
        super().__init__(db, instance=instance)
        self.on_projected = on_projected

    async def project(self, approval: Approval) -> None:
        await super().project(approval)
        self.on_projected(approval)


class StoreCommands(monitoring.CommandListener):
    """Counts every command this process sends to the store, by command name."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.total = Counter(
            "hitl_store_commands",
            "Commands this replica sent to the store, by command name.",
            ["command"],
            registry=registry,
        )

    def started(self, event: Any) -> None:
        self.total.labels(command=event.command_name).inc()

    def succeeded(self, event: Any) -> None:
        pass

    def failed(self, event: Any) -> None:
        pass
