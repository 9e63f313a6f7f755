"""Which approval-service replicas are alive: a heartbeat document per process.

The outbox relay uses it to leave a live replica's unpublished decisions to that
replica (it is publishing them right now, maybe slowly), and to notice a replica that
stopped beating (it may have crashed between store and publish) so its leftovers are
looked for once, rather than scanning for leftovers all the time.
"""

from datetime import datetime, timedelta

from hitl_shared.mongo import Document
from pymongo.asynchronous.database import AsyncDatabase

INSTANCES = "approval_instances"


class InstanceRegistry:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.instances = db[INSTANCES]

    async def beat(self, instance: str, now: datetime) -> None:
        # Only this process writes its own document, so the upsert has no rival.
        await self.instances.update_one({"_id": instance}, {"$set": {"at": now}}, upsert=True)

    async def alive(self, now: datetime, *, within: timedelta) -> set[str]:
        found = self.instances.find({"at": {"$gte": now - within}}, {"_id": 1})
        return {doc["_id"] async for doc in found}

    async def dead(self, now: datetime, *, within: timedelta) -> set[str]:
        """Replicas that stopped beating and whose leftovers nobody has collected yet."""
        found = self.instances.find({"at": {"$lt": now - within}}, {"_id": 1})
        return {doc["_id"] async for doc in found}

    async def forget(self, instances: set[str]) -> None:
        for instance in instances:
            await self.instances.delete_one({"_id": instance})
