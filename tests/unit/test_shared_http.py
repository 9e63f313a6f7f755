"""The HTTP edge every service shares: body limits on bytes read, 503 on outages, tokens."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from hitl_shared.directory import Principal, Role, hash_token, load_directory
from hitl_shared.http_auth import CurrentPrincipal, require_any
from hitl_shared.http_limits import BodyLimit, install_unavailable_handlers
from pydantic import BaseModel
from pymongo.errors import ServerSelectionTimeoutError


class Body(BaseModel):
    text: str


def app() -> FastAPI:
    api = FastAPI()
    api.add_middleware(BodyLimit, max_bytes=1000)
    install_unavailable_handlers(api)
    api.state.directory = load_directory(
        inline=json.dumps(
            [{"name": "Carol", "token_sha256": hash_token("carol-token"), "roles": ["submit"]}]
        ),
        source="TEST_TOKENS",
    )

    @api.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"length": len(body.text)}

    @api.get("/down")
    async def down() -> None:
        raise ServerSelectionTimeoutError("no servers")

    @api.get("/me", dependencies=[require_any(Role.SUBMIT)])
    async def me(principal: CurrentPrincipal) -> dict[str, str]:
        return {"name": principal.name, "key": principal.key}

    @api.get("/ops", dependencies=[require_any(Role.OPERATE)])
    async def ops() -> None:
        return None

    return api


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_a_chunked_body_over_the_cap_is_413_without_being_read_whole(
    client: httpx.AsyncClient,
) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"text": "'
        for _ in range(10_000):  # 40 MB if read whole
            sent += 4096
            yield b"x" * 4096
        yield b'"}'

    response = await client.post("/echo", content=chunks())
    assert response.status_code == 413
    assert "over 1000 bytes" in response.json()["detail"]


async def test_an_announced_oversize_body_and_a_small_one(client: httpx.AsyncClient) -> None:
    big = await client.post("/echo", json={"text": "x" * 2000})
    assert big.status_code == 413
    small = await client.post("/echo", json={"text": "hello"})
    assert small.json() == {"length": 5}


async def test_a_store_outage_is_json_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.get("/down")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert "the store is unavailable" in response.json()["detail"]


async def test_tokens_roles_and_normalised_names(client: httpx.AsyncClient) -> None:
    assert (await client.get("/me")).status_code == 401
    assert (await client.get("/me", headers={"Authorization": "Bearer nope"})).status_code == 401
    me = await client.get("/me", headers={"Authorization": "Bearer carol-token"})
    assert me.json() == {"name": "Carol", "key": "carol"}
    ops = await client.get("/ops", headers={"Authorization": "Bearer carol-token"})
    assert ops.status_code == 403
    assert "lacks the 'operate' role" in ops.json()["detail"]


def test_a_directory_refuses_typos_and_contradictions() -> None:
    with pytest.raises(ValueError, match="not a valid token directory"):
        load_directory(
            inline=json.dumps([{"name": "a", "token_sha256": hash_token("t"), "roles": ["admn"]}]),
            source="X",
        )
    twice = [
        {"name": "Ann", "token_sha256": hash_token("1"), "roles": ["reviewer"]},
        {"name": "ann", "token_sha256": hash_token("2"), "roles": ["admin"]},
    ]
    with pytest.raises(ValueError, match="listed twice"):
        load_directory(inline=json.dumps(twice), source="X")
    dev = Principal("dev", frozenset({Role.ADMIN}))
    directory = load_directory(source="X", dev=dev, dev_token="dev-token")
    assert directory.authenticate("dev-token") == dev
    assert directory.named("DEV") == dev
