"""pytest fixtures that start hitl in containers for a test session.

    def test_my_agent(hitl_stack):          # Kafka, MongoDB and the three services
        hitl_stack.approval_url, hitl_stack.kafka_bootstrap_servers ...

`hitl_infra` alone gives Kafka and MongoDB. Override `hitl_env` (session scope) to pass
settings to every service, e.g. {"APPROVAL_POLICIES": "..."}; `hitl_service_env` to pass
them to one ({"agent": {...}}). Images and timeouts: see hitl_testcontainers.containers.
Nothing starts until a test asks for one of these fixtures, and testcontainers is
imported only then (the plugin loads in every pytest run where it is installed).
"""

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from hitl_testcontainers.containers import Infra, Stack


@pytest.fixture(scope="session")
def hitl_infra() -> Iterator["Infra"]:
    from hitl_testcontainers.containers import start_infra

    with start_infra() as infra:
        yield infra


@pytest.fixture(scope="session")
def hitl_env() -> Mapping[str, str]:
    return {}


@pytest.fixture(scope="session")
def hitl_service_env() -> Mapping[str, Mapping[str, str]]:
    return {}


@pytest.fixture(scope="session")
def hitl_stack(
    hitl_infra: "Infra",
    hitl_env: Mapping[str, str],
    hitl_service_env: Mapping[str, Mapping[str, str]],
) -> Iterator["Stack"]:
    from hitl_testcontainers.containers import start_stack

    with start_stack(hitl_infra, hitl_env, hitl_service_env) as stack:
        yield stack
