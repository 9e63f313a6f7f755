"""Kafka, a MongoDB-compatible server and the hitl services in containers, for tests.

Every container joins one private network (the services reach `kafka:19094` and
`mongo:27017` there) and publishes its port on 127.0.0.1 only, at a free port, so the
test process reaches the same servers from outside. Images are configurable, so the
same code runs on Docker Hub's images and on locally built ones (deploy/docker.sh):

    HITL_KAFKA_IMAGE     [apache/kafka:3.9.2]  any image configured like apache/kafka
                                               (KAFKA_<PROPERTY> variables, port 9092)
    HITL_MONGO_IMAGE     [mongo:7]             MongoDB or FerretDB on port 27017
    HITL_APPROVAL_IMAGE  [hitl-approval]       built by `docker compose build`
    HITL_AGENT_IMAGE     [hitl-agent]
    HITL_NOTIFIER_IMAGE  [hitl-notifier]
    HITL_READY_TIMEOUT   [120]                 seconds each server may take to be ready

Without a registry, testcontainers' reaper image cannot be pulled either: set
TESTCONTAINERS_RYUK_DISABLED=true (the containers are still removed at the end).
"""

import contextlib
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import MongoClient
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

KAFKA_IMAGE = "apache/kafka:3.9.2"
MONGO_IMAGE = "mongo:7"
SERVICE_IMAGES = {"approval": "hitl-approval", "agent": "hitl-agent", "notifier": "hitl-notifier"}
SERVICE_PORTS = {"approval": 8081, "agent": 8082, "notifier": 8083}
# The development token of the approval service: reviewer "dev" with every role.
DEV_REVIEWER_TOKEN = "dev-reviewer-token"

KAFKA_INTERNAL = "kafka:19094"
MONGO_INTERNAL = "mongodb://mongo:27017/"


def image(variable: str, default: str) -> str:
    return os.environ.get(variable) or default


def ready_timeout() -> float:
    return float(os.environ.get("HITL_READY_TIMEOUT", "120"))


@dataclass(frozen=True)
class Infra:
    """Where the servers are: from the test process, and from other containers."""

    kafka_bootstrap_servers: str
    mongodb_url: str
    network: Network = field(repr=False, compare=False)
    kafka_internal: str = KAFKA_INTERNAL
    mongodb_internal_url: str = MONGO_INTERNAL


@dataclass(frozen=True)
class Stack:
    """The three services, reachable from the test process; `infra` is what they use."""

    infra: Infra
    approval_url: str
    agent_url: str
    notifier_url: str
    reviewer_token: str = DEV_REVIEWER_TOKEN
    containers: Mapping[str, DockerContainer] = field(default_factory=dict, repr=False)

    @property
    def kafka_bootstrap_servers(self) -> str:
        return self.infra.kafka_bootstrap_servers

    @property
    def mongodb_url(self) -> str:
        return self.infra.mongodb_url

    def logs(self, service: str) -> str:
        return _logs(self.containers[service])


def free_port() -> int:
    # The engine needs a fixed host port before start: Kafka advertises it to clients.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _bind_loopback(container: DockerContainer, port: int, host_port: int) -> None:
    # testcontainers' with_bind_ports takes no address, and its type says so; the engine
    # (docker-py's `ports`) takes (address, port), which keeps the port off other hosts.
    ports: dict[str, Any] = container.ports
    ports[f"{port}/tcp"] = ("127.0.0.1", host_port)


def _publish(container: DockerContainer, port: int) -> int:
    host_port = free_port()
    _bind_loopback(container, port, host_port)
    return host_port


def _logs(container: DockerContainer) -> str:
    try:
        out, err = container.get_logs()
    except Exception as exc:
        return f"(no logs: {exc})"
    text = (out + err).decode(errors="replace")
    return "\n".join(text.splitlines()[-60:])


def _wait(what: str, container: DockerContainer, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + ready_timeout()
    while time.monotonic() < deadline:
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status in {"exited", "dead"}:
            raise RuntimeError(f"{what} exited before it was ready:\n{_logs(container)}")
        if probe():
            return
        time.sleep(0.5)
    raise TimeoutError(f"{what} not ready after {ready_timeout():.0f}s:\n{_logs(container)}")


def kafka_container(network: Network, host_port: int) -> DockerContainer:
    """One KRaft node with a listener for the host and one for the private network."""
    c = DockerContainer(image("HITL_KAFKA_IMAGE", KAFKA_IMAGE))
    c.with_network(network).with_network_aliases("kafka")
    c.with_envs(
        KAFKA_NODE_ID="1",
        KAFKA_PROCESS_ROLES="broker,controller",
        KAFKA_LISTENERS="PLAINTEXT://:9092,INTERNAL://:19094,CONTROLLER://:9093",
        KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{host_port},INTERNAL://{KAFKA_INTERNAL}",
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
        KAFKA_INTER_BROKER_LISTENER_NAME="INTERNAL",
        KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
        KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="10",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE="true",
        KAFKA_NUM_PARTITIONS="3",
        KAFKA_MESSAGE_MAX_BYTES="10485760",
        KAFKA_REPLICA_FETCH_MAX_BYTES="10485760",
    )
    _bind_loopback(c, 9092, host_port)
    return c


def _kafka_ready(c: DockerContainer) -> Callable[[], bool]:
    # apache/kafka and deploy/docker/kafka log this line once the broker serves requests.
    def probe() -> bool:
        return b"Kafka Server started" in c.get_wrapped_container().logs()

    return probe


def _mongo_ready(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=1000)
        try:
            client.admin.command("ping")
            return True
        except Exception:
            return False
        finally:
            client.close()

    return probe


def _http_ready(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return probe


@contextlib.contextmanager
def _started(c: DockerContainer) -> Iterator[DockerContainer]:
    try:
        c.start()
        yield c
    finally:
        c.stop()


@contextlib.contextmanager
def start_infra() -> Iterator[Infra]:
    """Kafka and a MongoDB-compatible server, started together, removed on exit."""
    with Network() as network:
        kafka_port = free_port()
        kafka = kafka_container(network, kafka_port)
        mongo = DockerContainer(image("HITL_MONGO_IMAGE", MONGO_IMAGE))
        mongo.with_network(network).with_network_aliases("mongo")
        mongo_port = _publish(mongo, 27017)
        with _started(kafka), _started(mongo):
            mongodb_url = f"mongodb://127.0.0.1:{mongo_port}/"
            _wait("kafka", kafka, _kafka_ready(kafka))
            _wait("mongo", mongo, _mongo_ready(mongodb_url))
            yield Infra(f"127.0.0.1:{kafka_port}", mongodb_url, network)


def service_env(infra: Infra, approval_url: str) -> dict[str, str]:
    return {
        "HITL_ENV": "development",
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_internal,
        "MONGODB_URL": infra.mongodb_internal_url,
        "MONGODB_DATABASE": "hitl",
        "APPROVAL_PUBLIC_URL": approval_url,
        # Inside the network: where the agent and the notifier fetch the decision keys.
        "AGENT_APPROVAL_URL": "http://approval:8081",
        "NOTIFIER_APPROVAL_URL": "http://approval:8081",
    }


@contextlib.contextmanager
def start_stack(
    infra: Infra,
    env: Mapping[str, str] | None = None,
    service_envs: Mapping[str, Mapping[str, str]] | None = None,
) -> Iterator[Stack]:
    """approval, agent and notifier on `infra`'s network, each ready (GET /readyz) or
    failing with its log. `env` goes to every service, `service_envs[name]` to one."""
    containers: dict[str, DockerContainer] = {}
    urls: dict[str, str] = {}
    for name, port in SERVICE_PORTS.items():
        c = DockerContainer(image(f"HITL_{name.upper()}_IMAGE", SERVICE_IMAGES[name]))
        c.with_network(infra.network).with_network_aliases(name)
        urls[name] = f"http://127.0.0.1:{_publish(c, port)}"
        containers[name] = c
    for name, c in containers.items():
        c.with_envs(**service_env(infra, urls["approval"]))
        c.with_envs(**(env or {}))
        c.with_envs(**(service_envs or {}).get(name, {}))
    with contextlib.ExitStack() as stack:
        for c in containers.values():
            stack.enter_context(_started(c))
        for name, c in containers.items():
            path = "/healthz" if name == "notifier" else "/readyz"
            _wait(name, c, _http_ready(urls[name] + path))
        yield Stack(infra, urls["approval"], urls["agent"], urls["notifier"], containers=containers)
