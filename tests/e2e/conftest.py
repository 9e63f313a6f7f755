"""End-to-end fixtures: real Kafka, a real MongoDB-compatible server, real processes."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pymongo import AsyncMongoClient

from tests.support import fake_openai, recorder
from tests.support.http_server import serve
from tests.support.infra import Infra, provide
from tests.support.stack import Stack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide() as endpoints:
        yield endpoints


@pytest.fixture(scope="session")
def llm() -> Iterator[tuple[fake_openai.ScriptedLLM, str]]:
    scripted = fake_openai.ScriptedLLM()
    with serve(fake_openai.app_for(scripted)) as url:
        yield scripted, url


@pytest.fixture(scope="session")
def webhooks() -> Iterator[tuple[recorder.Recorder, str]]:
    received = recorder.Recorder()
    with serve(recorder.app_for(received)) as url:
        yield received, url


# Per module: a stand-in for Slack's Web API, and a plain webhook receiver.
@pytest.fixture(scope="module")
def slack() -> Iterator[tuple[recorder.Recorder, str]]:
    rec = recorder.Recorder()
    rec.act_as_slack()
    with serve(recorder.app_for(rec)) as url:
        yield rec, url


@pytest.fixture(scope="module")
def hooks() -> Iterator[tuple[recorder.Recorder, str]]:
    rec = recorder.Recorder()
    with serve(recorder.app_for(rec)) as url:
        yield rec, url


@pytest.fixture(scope="module")
def stack(
    infra: Infra,
    llm: tuple[fake_openai.ScriptedLLM, str],
    webhooks: tuple[recorder.Recorder, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """All three services with the real openai client pointed at the scripted server."""
    logs = tmp_path_factory.mktemp("stack-logs")
    s = Stack(
        infra,
        logs,
        env_extra={
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm[1] + "/v1",
            "OPENAI_MODEL": "scripted",
            "NOTIFIER_WEBHOOK_URLS": webhooks[1] + "/hook",
        },
    )
    try:
        s.start_all()
        yield s
    finally:
        s.close()
        print(f"service logs: {logs}")


@pytest.fixture(scope="module")
async def store(infra: Infra, stack: Stack) -> AsyncIterator[object]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    yield client[stack.database]
    await client.drop_database(stack.database)
    await client.close()


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    return tmp_path
