"""Topic names. A prefix isolates test runs that share one broker."""

from dataclasses import dataclass

AGENT_TASKS = "agent.tasks"
APPROVAL_REQUESTED = "approval.requested"
APPROVAL_DECIDED = "approval.decided"
AGENT_RUNS = "agent.runs"
NOTIFICATIONS = "notifications"


def dlq(topic: str) -> str:
    return f"{topic}.dlq"


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def _t(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def all(self) -> list[str]:
        return [
            self.agent_tasks,
            self.approval_requested,
            self.approval_decided,
            self.agent_runs,
            self.notifications,
        ]

    @property
    def agent_tasks(self) -> str:
        return self._t(AGENT_TASKS)

    @property
    def approval_requested(self) -> str:
        return self._t(APPROVAL_REQUESTED)

    @property
    def approval_decided(self) -> str:
        return self._t(APPROVAL_DECIDED)

    @property
    def agent_runs(self) -> str:
        return self._t(AGENT_RUNS)

    @property
    def notifications(self) -> str:
        return self._t(NOTIFICATIONS)
