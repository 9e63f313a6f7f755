"""Where each approval's trace context waits for the decision (when tracing is on).

A decision arrives in a reviewer's own HTTP request, minutes or days after the
request was consumed; to publish `approval.decided` inside the task's trace, the
`traceparent` the request came with is kept under its correlation id (one insert,
read back by `_id`). With tracing off nothing is stored: no span would be recorded.
"""

from hitl_shared import telemetry
from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase

TRACES = "approval_traces"


class TraceStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db

    async def remember(self, correlation_id: str) -> None:
        """Keep the current trace context for this approval; the first one stays."""
        if not telemetry.recording():
            return
        if traceparent := telemetry.current_traceparent():
            await insert_once(self.db, TRACES, {"_id": correlation_id, "traceparent": traceparent})

    async def recall(self, correlation_id: str) -> str | None:
        if not telemetry.recording():
            return None
        doc = await self.db[TRACES].find_one({"_id": correlation_id})
        return str(doc["traceparent"]) if doc else None
