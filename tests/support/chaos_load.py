"""The chaos run's load: banking tasks, each moving money to an account of its own.

A task's destination account receives nothing but that task's transfer, so its final
balance says exactly whether (and how much) money moved for it. The plan, including
what the reviewer will do with each approval, comes from one seeded random generator.
"""

import asyncio
import random
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata
from hitl_contracts import TaskSubmitted
from hitl_shared.kafka import encode

THRESHOLD = 100  # AGENT_TRANSFER_APPROVAL_THRESHOLD: above it a human must approve
OPENING = 10_000_000  # of `checking`: never the reason a transfer fails
VERDICTS = ("approve", "reject", "modify", "expire")
VERDICT_WEIGHTS = (0.35, 0.2, 0.25, 0.2)
SHARE_NEEDING_APPROVAL = 0.7
PUBLISH_DEADLINE = 120.0  # a send retries this long (the broker may be restarting)


@dataclass(frozen=True)
class Task:
    index: int
    task_id: str
    account: str
    amount: int
    # What the reviewer will do with its approval (None: below the threshold, none asked).
    verdict: str | None
    # For `modify`: the amount the reviewer edits in.
    modified_amount: int
    # Seconds the reviewer takes to decide after seeing the request.
    think: float
    # When to submit it, in seconds from the start of the load.
    at: float

    @property
    def text(self) -> str:
        return f"Transfer {self.amount} to {self.account}"

    @property
    def needs_approval(self) -> bool:
        return self.amount > THRESHOLD


def plan(rng: random.Random, count: int, *, window: float) -> list[Task]:
    tasks = []
    for index in range(count):
        big = rng.random() < SHARE_NEEDING_APPROVAL
        amount = rng.randint(THRESHOLD + 1, 900) if big else rng.randint(1, THRESHOLD)
        tasks.append(
            Task(
                index=index,
                task_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                account=f"chaos{index:04d}",
                amount=amount,
                verdict=rng.choices(VERDICTS, VERDICT_WEIGHTS)[0] if big else None,
                modified_amount=rng.randint(1, amount - 1) if big else 0,
                think=rng.uniform(0.1, 2.0),
                at=rng.uniform(0, window),
            )
        )
    return sorted(tasks, key=lambda t: t.at)


def seed_accounts(tasks: list[Task]) -> dict[str, float]:
    return {"checking": OPENING, **{t.account: 0 for t in tasks}}


async def send_to(
    producer: AIOKafkaProducer,
    topic: str,
    value: bytes,
    *,
    key: str,
    partition: int | None = None,
) -> RecordMetadata:
    """Send once it is acknowledged, retrying through a broker restart (bounded)."""
    deadline = time.monotonic() + PUBLISH_DEADLINE
    while True:
        try:
            meta: RecordMetadata = await producer.send_and_wait(
                topic, value, key=key.encode(), partition=partition
            )
            return meta
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def submit_all(producer: AIOKafkaProducer, topic: str, tasks: list[Task]) -> None:
    """Publish each task on `agent.tasks` at its planned moment, as a producer would."""
    started = time.monotonic()
    for task in tasks:
        await asyncio.sleep(max(0.0, task.at - (time.monotonic() - started)))
        event = TaskSubmitted(
            task_id=task.task_id,
            input=task.text,
            agent="banking",
            metadata={"chaos_index": task.index},
        )
        await send_to(producer, topic, encode(event), key=task.task_id)
