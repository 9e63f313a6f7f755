"""When this replica's approvals fall due, kept in memory so the sweeper needs no scan.

A replica learns a deadline when it stores a request or an escalation; a decision
forgets it. What another replica (or a previous incarnation) knew is found by the
full sweep, which scans the store now and then; a decision arriving after the
deadline loses to the timeout anyway, so a late sweep only delays the notice.
"""

import heapq
from datetime import datetime

# Rebuild the heap once forgotten entries outnumber the live ones by this much.
STALE_SLACK = 1000


class Deadlines:
    def __init__(self) -> None:
        self._at: dict[str, datetime] = {}
        self._heap: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        return len(self._at)

    def set(self, correlation_id: str, at: datetime) -> None:
        self._at[correlation_id] = at
        heapq.heappush(self._heap, (at, correlation_id))

    def forget(self, correlation_id: str) -> None:
        self._at.pop(correlation_id, None)
        if len(self._heap) > 2 * len(self._at) + STALE_SLACK:
            self._heap = [(at, cid) for cid, at in self._at.items()]
            heapq.heapify(self._heap)

    def due(self, now: datetime) -> list[str]:
        """Approvals whose deadline has come, each once (set it again to be told again)."""
        found = []
        while self._heap and self._heap[0][0] <= now:
            at, cid = heapq.heappop(self._heap)
            if self._at.get(cid) == at:
                del self._at[cid]
                found.append(cid)
        return found
