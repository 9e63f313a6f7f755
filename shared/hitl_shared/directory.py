"""Who may call a service: one token directory format for every hitl API.

A directory is a JSON list of principals, each
`{"name", "token_sha256", "roles": [...], "groups": [...], ...}`; any other string
field (`email`, `slack_user_id`) lands in `Principal.attributes` for the channels
that map their own users to principals. Tokens are stored only as SHA-256 hashes.
The same file may serve several services: each acts on the roles it knows and
ignores the others; an unknown role (a typo) stops every service at start-up.

Names are identities: two entries whose names differ only in case or Unicode form
are the same principal and must agree on roles and groups.
"""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any

from hitl_contracts.identity import identity_key
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "Directory",
    "DirectoryEntry",
    "Principal",
    "Role",
    "hash_token",
    "load_directory",
]


class Role(StrEnum):
    # Approval service
    REVIEWER = "reviewer"  # lists and decides approvals
    AGENT = "agent"  # an agent's service account: creates and cancels approvals
    # Agent service
    SUBMIT = "submit"  # starts runs; reads and cancels its own
    READ = "read"  # reads every run and its events
    OPERATE = "operate"  # reads and cancels every run
    # A trusted front end (the reviewer web page) acting for the person it names in
    # `On-Behalf-Of`: that person's own roles in the directory apply, never its own.
    DELEGATE = "delegate"
    # Everywhere: every role.
    ADMIN = "admin"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a person or a service account."""

    name: str
    roles: frozenset[str]
    groups: frozenset[str] = frozenset()
    attributes: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """The comparable form of the name (see hitl_contracts.identity)."""
        return identity_key(self.name)

    def can(self, role: str) -> bool:
        return role in self.roles or Role.ADMIN in self.roles


class DirectoryEntry(BaseModel):
    """One principal of a directory file."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 hex of the token")
    # None (absent): the service's default roles; an explicit [] holds no role at all.
    roles: list[Role] | None = None
    groups: list[str] = Field(default_factory=list)

    def principal(self, default_roles: frozenset[str]) -> Principal:
        extras: dict[str, Any] = self.model_extra or {}
        return Principal(
            name=self.name.strip(),
            roles=default_roles if self.roles is None else frozenset(r.value for r in self.roles),
            groups=frozenset(self.groups),
            attributes={k: str(v) for k, v in extras.items()},
        )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _entries(raw: str, source: str) -> list[DirectoryEntry]:
    try:
        items = json.loads(raw)
        if not isinstance(items, list):
            raise ValueError("expected a JSON list of principals")
        return [DirectoryEntry.model_validate(item) for item in items]
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"{source}: not a valid token directory: {exc}") from exc


@dataclass(frozen=True)
class Directory:
    """Token hash -> principal, checked for contradictions when built."""

    by_token: Mapping[str, Principal]

    def __post_init__(self) -> None:
        _ = self.names  # fail at start-up on contradictory entries

    def authenticate(self, token: str) -> Principal | None:
        return self.by_token.get(hash_token(token)) if token else None

    @cached_property
    def names(self) -> dict[str, Principal]:
        """Identity key -> principal; one person may hold several tokens, alike in roles."""
        named: dict[str, Principal] = {}
        for principal in self.by_token.values():
            seen = named.setdefault(principal.key, principal)
            if (seen.roles, seen.groups) != (principal.roles, principal.groups):
                raise ValueError(
                    f"principal {principal.name!r} is listed twice (names compare without "
                    "case) with different roles or groups"
                )
        return named

    def named(self, name: str) -> Principal | None:
        return self.names.get(identity_key(name))


def load_directory(
    *,
    inline: str = "",
    file: str = "",
    source: str,
    default_roles: frozenset[str] = frozenset(),
    dev: Principal | None = None,
    dev_token: str = "",
) -> Directory:
    """A directory from inline JSON and/or a file (both are read), plus a development token.

    `source` names the settings in error messages (e.g. "AGENT_TOKENS"). `dev` with
    `dev_token` adds a development principal; callers pass it only outside production.
    """
    entries: list[DirectoryEntry] = []
    if inline:
        entries += _entries(inline, source)
    if file:
        path = Path(file)
        entries += _entries(path.read_text(), f"{source}_FILE {path}")
    table = {entry.token_sha256: entry.principal(default_roles) for entry in entries}
    if dev is not None and dev_token:
        table[hash_token(dev_token)] = dev
    return Directory(table)
