"""Cheap "is the store / the broker up?" probes for the consumers' retry policy.

A handler error alone cannot say whose fault it is: a document with NaN in it makes
FerretDB drop the connection, which looks exactly like FerretDB going away. Asking
the store itself (a `ping` with a short timeout) right after the failure can: if it
answers, the store is fine and the message is what breaks it, so retrying forever
would only stall the partition.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pymongo
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[bool]]

PROBE_TIMEOUT_S = 1.5


def mongo_probe(client: AsyncMongoClient[Any], *, timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """True when the store answers a `ping` within `timeout` seconds."""

    async def healthy() -> bool:
        try:
            # pymongo.timeout bounds server selection too (the client waits 5 s for that).
            with pymongo.timeout(timeout):
                await client.admin.command("ping")
        except Exception as exc:
            log.warning("store health probe failed: %r", exc)
            return False
        return True

    return healthy


def broker_probe(broker: KafkaBroker, *, timeout: float = PROBE_TIMEOUT_S) -> Probe:
    """True when the Kafka cluster answers a metadata request within `timeout` seconds."""

    async def healthy() -> bool:
        try:
            up = await broker.ping(timeout=timeout)
        except Exception as exc:
            log.warning("broker health probe failed: %r", exc)
            return False
        if not up:
            log.warning("broker health probe: no answer within %.1fs", timeout)
        return up

    return healthy


def all_of(*probes: Probe) -> Probe:
    """Healthy only when every probe is (run concurrently: one slow probe bounds the wait)."""

    async def healthy() -> bool:
        return all(await asyncio.gather(*(probe() for probe in probes)))

    return healthy


def store_and_broker(client: AsyncMongoClient[Any], broker: KafkaBroker) -> Probe:
    """The probe every hitl consumer uses: its store and its broker both answer."""
    return all_of(mongo_probe(client), broker_probe(broker))
