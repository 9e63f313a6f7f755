"""Schemathesis against the running approval service's /openapi.json.

Generated requests (valid and invalid bodies, headers, query strings, odd path ids)
must never get a 5xx, and every answer must match the documented status codes,
content types and schemas. Bounded by `max_examples` so it stays well under a minute.
"""

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema

from tests.factories import approval_request
from tests.support.approval_e2e import Bus, approval_stack, client, token
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

MAX_EXAMPLES = 40
SEEDED = 40
SCHEMA = {
    "type": "object",
    "properties": {"to_account": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["to_account", "amount"],
}
OURS = ("/v1/approvals", "/healthz", "/readyz", "/metrics")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Configured, the Slack endpoint answers bad signatures with 401 instead of a 503.
    # Short waits: generated long-polls and event streams end in well under a second.
    env = {
        "APPROVAL_SLACK_SIGNING_SECRET": "openapi-test-secret",
        "APPROVAL_WAIT_MAX_SECONDS": "0.2",
        "APPROVAL_STREAM_MAX_SECONDS": "0.5",
    }
    with approval_stack(infra, tmp_path_factory.mktemp("openapi-logs"), env=env) as s:
        yield s


@pytest.fixture(scope="module")
def approval_api(stack: Stack) -> BaseSchema:
    return schemathesis.openapi.from_url(stack.url("approval") + "/openapi.json")


@pytest.fixture(scope="module")
def seeded(infra: Infra, stack: Stack) -> list[str]:
    """Pending approvals for generated decisions to land on (random ids only find 404s)."""
    events = [approval_request(arguments_schema=SCHEMA) for _ in range(SEEDED)]

    async def seed() -> None:
        async with Bus(infra, stack) as bus:
            for event in events:
                await bus.request(event)
        async with client(stack, "ada") as ada:

            async def listed() -> bool:
                page = (await ada.get("/v1/approvals", params={"limit": 500})).json()
                return len(page["items"]) >= SEEDED

            await eventually(listed, timeout=60, what="the seeded approvals")

    asyncio.run(seed())
    return [e.correlation_id for e in events]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(
    approval_api: BaseSchema, stack: Stack, seeded: list[str], mode: GenerationMode
) -> None:
    """Every operation in the schema (ours and the other routers'), valid and invalid input."""
    auth = {"Authorization": f"Bearer {token('ada')}"}
    failures: list[str] = []
    operations = 0
    for result in approval_api.get_all_operations():
        assert isinstance(result, Ok), result  # the schema loads: every operation is valid
        operation = result.ok()
        operations += 1

        strategy = operation.as_strategy(generation_mode=mode)
        if "{correlation_id}" in operation.path:
            # Half the cases on a real approval, so bodies reach the domain and the store.
            strategy = strategy | st.sampled_from(seeded).flatmap(
                functools.partial(_on_approval, operation, mode)
            )

        @given(case=strategy)
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Case[Any]) -> None:
            headers = {} if case.headers and "Authorization" in case.headers else auth
            # Our routes are held to their documentation too; other routers to "no 5xx".
            checks = CHECKS if case.path.startswith(OURS) else [not_a_server_error]
            case.call_and_validate(base_url=stack.url("approval"), headers=headers, checks=checks)

        try:
            run()
        except Unsatisfiable:
            continue  # no parameters to make invalid (negative mode on /healthz and the like)
        except Exception as exc:  # every operation runs; all failures are reported together
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 5
    assert not failures, "\n\n".join(failures)


def _on_approval(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, cid: str
) -> st.SearchStrategy[Case[Any]]:
    """The operation's cases with `correlation_id` set to an approval that exists."""
    return operation.as_strategy(generation_mode=mode, path_parameters={"correlation_id": cid})
