"""Where the real Kafka and MongoDB-compatible server are.

1. `KAFKA_BOOTSTRAP_SERVERS` and `MONGODB_URL` when set (the local scripts set them);
2. else testcontainers, when a Docker engine answers a ping: Kafka and a MongoDB-compatible
   server from hitl_testcontainers (images: HITL_KAFKA_IMAGE, HITL_MONGO_IMAGE; the
   registryless ones that deploy/docker.sh builds work as well as Docker Hub's);
3. else fail, naming the command that starts local infrastructure.
"""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import leftovers

START_HINT = (
    "No Kafka/MongoDB for the tests: KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL are unset and "
    "no Docker engine answers. Run the whole suite with `./deploy/test.sh`, or start local "
    'infrastructure with `deploy/local/infra.sh start && eval "$(deploy/local/infra.sh env)"`.'
)


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap_servers: str
    mongodb_url: str


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        return bool(client.ping())
    except Exception:
        return False


@contextlib.contextmanager
def provide() -> Iterator[Infra]:
    kafka, mongo = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URL")
    if kafka and mongo:
        try:
            yield Infra(kafka, mongo)
        finally:
            leftovers.drop_made(kafka, mongo)
        return
    if not _docker_answers():
        pytest.fail(START_HINT, pytrace=False)
    from hitl_testcontainers import start_infra

    with start_infra() as containers:
        yield Infra(containers.kafka_bootstrap_servers, containers.mongodb_url)
