"""Runs for agents another worker hosts, or none: visible placeholders, adopted once."""

from datetime import timedelta

from hitl_agent.domain.run import RunStatus
from hitl_contracts import TaskSubmitted

from tests.support.agent_harness import harness, say


def task(agent: str = "test", task_id: str = "t1") -> TaskSubmitted:
    return TaskSubmitted(task_id=task_id, input="do it", agent=agent, submitted_by="carol")


async def test_an_unhosted_task_is_visible_and_starts_once_its_worker_takes_it() -> None:
    h = harness([say("done")])
    held, stored = await h.runner.hold(task(), hosted_elsewhere=False)
    assert stored
    assert held.status is RunStatus.UNHOSTED
    assert "no live worker hosts agent 'test'" in (held.error or "")
    again, stored_again = await h.runner.hold(task(), hosted_elsewhere=False)
    assert (again.status, stored_again) == (RunStatus.UNHOSTED, False)

    # The hosting worker reads the task from Kafka (twice: a redelivery).
    await h.runner.start(task())
    await h.runner.start(task())
    run = await h.run("t1")
    assert (run.status, run.output, run.submitted_by) == (RunStatus.COMPLETED, "done", "carol")
    assert run.prepared
    assert run.messages[0]["role"] == "system"
    assert h.types("t1") == ["started", "model_replied", "completed"]
    assert [e.seq for e in h.published] == [1, 2, 3]


async def test_a_placeholder_cancelled_before_its_worker_came_never_runs() -> None:
    h = harness([say("must not be asked")])
    await h.runner.hold(task(), hosted_elsewhere=True)
    await h.runner.cancel("t1", "not needed")
    await h.runner.start(task())
    run = await h.run("t1")
    assert run.status is RunStatus.CANCELLED
    assert h.model.calls == []


async def test_recovery_starts_only_placeholders_of_hosted_agents() -> None:
    h = harness([say("rescued")])
    await h.runner.hold(task("other", "t-other"), hosted_elsewhere=True)
    await h.runner.hold(task("test", "t-mine"), hosted_elsewhere=True)
    assert await h.runner.recover(stalled_after=timedelta(0)) == 1
    assert (await h.run("t-mine")).output == "rescued"
    other = await h.run("t-other")
    assert (other.status, other.prepared) == (RunStatus.QUEUED, False)
