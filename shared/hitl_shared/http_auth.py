"""Bearer-token authentication for every hitl HTTP API (FastAPI dependencies).

The app's `state.directory` (a `hitl_shared.directory.Directory`) maps tokens to
principals. 401 without a token or with an unknown one; 403 when the principal
lacks the role a route needs. The identity a route acts for is always the
authenticated principal, never a name from the request body.

The dependencies are coroutines: FastAPI runs a plain `def` dependency in its thread
pool, a thread hop per dependency per request for what is a dictionary lookup.
"""

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hitl_shared.directory import Directory, Principal

_bearer = HTTPBearer(auto_error=False)


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    directory: Directory = request.app.state.directory
    principal = directory.authenticate(credentials.credentials)
    if principal is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "unknown token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_any(*roles: str) -> Any:
    """A dependency admitting a principal that holds any of `roles` (admin holds all)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not any(principal.can(role) for role in roles):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{principal.name!r} lacks the {' or '.join(repr(str(r)) for r in roles)} role",
            )
        return principal

    return Depends(check)
