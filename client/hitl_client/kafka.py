"""`decisions(agent=...)`: every decision for your agent, from Kafka, for event-driven runtimes.

Needs the `kafka` extra (`pip install 'hitl-client[kafka]'`). Reads `approval.decided`
in a consumer group of your own: at least once, and in order per run. A decision
counts as handled, and its offset is committed, when you ask for the next one or
close the iterator, so one your process died handling comes again after a restart.
Copies (the service may publish a decision twice) are skipped by `event_id`.
With `verify` (e.g. `AsyncClient.verify`), a decision whose signature does not
verify is logged and skipped, never yielded.
"""

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from hitl_contracts import ApprovalDecided
from pydantic import ValidationError

from hitl_client.errors import BadDecisionSignature
from hitl_client.outcomes import Outcome, outcome_of

log = logging.getLogger(__name__)

DECIDED_TOPIC = "approval.decided"
# Event ids remembered for de-duplication within one process.
REMEMBERED = 100_000

Verify = Callable[[ApprovalDecided], Awaitable[None]]


def _parse(raw: bytes | None) -> ApprovalDecided | None:
    if raw is None:
        return None
    try:
        return ApprovalDecided.model_validate_json(raw)
    except (ValidationError, ValueError):
        return None


async def decisions(
    *,
    agent: str | None,
    group_id: str,
    bootstrap_servers: str,
    topic: str = DECIDED_TOPIC,
    verify: Verify | None = None,
    **consumer_options: Any,
) -> AsyncIterator[Outcome]:
    """Outcomes of `agent`'s approvals (every agent's with `agent=None`), as they are decided.

    `consumer_options` go to aiokafka's AIOKafkaConsumer (security_protocol,
    sasl_mechanism, sasl_plain_username, ssl_context, ...).
    """
    try:
        from aiokafka import AIOKafkaConsumer, TopicPartition
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("decisions() needs the kafka extra: hitl-client[kafka]") from exc

    options = {"auto_offset_reset": "earliest", **consumer_options}
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap_servers,
        group_id=group_id,
        enable_auto_commit=False,
        **options,
    )
    await consumer.start()
    seen: OrderedDict[str, None] = OrderedDict()
    handed: tuple[Any, int] | None = None  # (partition, offset) yielded, not yet committed

    async def commit() -> None:
        nonlocal handed
        if handed is not None:
            partition, offset = handed
            await consumer.commit({partition: offset + 1})
            handed = None

    try:
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for partition, records in batch.items():
                tp = TopicPartition(partition.topic, partition.partition)
                for record in records:
                    await commit()  # the previous one was handled: the caller came back
                    decided = _parse(record.value)
                    if decided is None or (agent is not None and decided.agent != agent):
                        handed = (tp, record.offset)
                        continue
                    event_id = str(decided.event_id)
                    if event_id in seen:
                        handed = (tp, record.offset)
                        continue
                    if verify is not None:
                        try:
                            await verify(decided)
                        except BadDecisionSignature as exc:
                            log.warning("decision skipped: %s", exc)
                            handed = (tp, record.offset)
                            continue
                    seen[event_id] = None
                    if len(seen) > REMEMBERED:
                        seen.popitem(last=False)
                    handed = (tp, record.offset)
                    yield outcome_of(decided)
            await commit()
    finally:
        try:
            await commit()
        finally:
            await consumer.stop()
