"""Reviewer sign-in for the web page.

The reviewer pastes their token once; the browser gets a random session id in an
HttpOnly, SameSite=Strict cookie scoped to /ui (never the API token itself), and the
store keeps the session (adapters.web_sessions): signing out ends it for good, and
removing the token from the reviewer directory ends every session it opened. Every
form carries a CSRF token derived from the session id (an HMAC), which a cross-site
page cannot compute. The sign-in form itself uses a random double-submit cookie.
"""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from hitl_shared.directory import Directory, hash_token

from hitl_approval.adapters.web_sessions import WebSessions
from hitl_approval.domain.reviewer import Reviewer

SESSION_COOKIE = "hitl_session"
LOGIN_CSRF_COOKIE = "hitl_login_csrf"
COOKIE_PATH = "/ui"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Session:
    reviewer: Reviewer
    csrf: str


class CsrfRejected(Exception):
    """A form without the right CSRF token: stale, or posted from another site."""


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), b"hitl-ui-csrf", hashlib.sha256).hexdigest()


def reviewer_for(request: Request, token: str) -> Reviewer | None:
    directory: Directory = request.app.state.directory
    return directory.authenticate(token)


def _store(request: Request) -> WebSessions:
    store: WebSessions = request.app.state.web_sessions
    return store


def _now() -> datetime:
    return datetime.now(UTC)


async def session_of(request: Request) -> Session | None:
    session_id = request.cookies.get(SESSION_COOKIE, "")
    token_hash = await _store(request).token_of(session_id, now=_now())
    if token_hash is None:
        return None
    directory: Directory = request.app.state.directory
    reviewer = directory.by_token.get(token_hash)  # a revoked token ends its sessions
    return Session(reviewer, csrf_for(session_id)) if reviewer else None


def login_url(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/ui/login?next=" + quote(here, safe="")


async def require_session(request: Request) -> Session:
    """The signed-in reviewer, or a redirect to the sign-in page."""
    session = await session_of(request)
    if session is None:
        raise HTTPException(303, "sign in first", headers={"Location": login_url(request)})
    return session


def check_csrf(expected: str, submitted: object) -> None:
    if not expected or not isinstance(submitted, str):
        raise CsrfRejected()
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfRejected()


def safe_next(target: str | None) -> str:
    """Only redirect inside the web page after sign-in (no open redirect)."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui"


def _secure(request: Request) -> bool:
    public_url: str = request.app.state.settings.approval_public_url
    return request.url.scheme == "https" or public_url.startswith("https://")


async def sign_in(request: Request, response: Response, token: str) -> None:
    session_id = await _store(request).open(hash_token(token), now=_now())
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=SESSION_SECONDS,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=COOKIE_PATH)


async def sign_out(request: Request, response: Response) -> None:
    await _store(request).close(request.cookies.get(SESSION_COOKIE, ""))
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def login_csrf(request: Request) -> str:
    """The sign-in form's double-submit token: the cookie's, or a fresh one."""
    return request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)


def remember_login_csrf(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
