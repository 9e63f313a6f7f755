"""Sign in with a reviewer token, sign out."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hitl_approval.entrypoints.web import session as sessions
from hitl_approval.entrypoints.web.render import page

router = APIRouter(prefix="/ui")


def _form(request: Request, *, next_url: str, error: str = "", status_code: int = 200) -> Response:
    token = sessions.login_csrf(request)
    context = {"next": next_url, "error": error, "csrf": token, "session": None}
    response = page(request, "login.html", context, status_code=status_code)
    sessions.remember_login_csrf(request, response, token)
    return response


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
async def login_form(request: Request, next: str = "/ui") -> Response:
    if await sessions.session_of(request):
        return RedirectResponse(sessions.safe_next(next), 303)
    return _form(request, next_url=sessions.safe_next(next))


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(
    request: Request,
    token: Annotated[str, Form()] = "",
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/ui",
) -> Response:
    next_url = sessions.safe_next(next)
    expected = request.cookies.get(sessions.LOGIN_CSRF_COOKIE, "")
    try:
        sessions.check_csrf(expected, csrf)
    except sessions.CsrfRejected:
        return _form(
            request,
            next_url=next_url,
            error="The sign-in form expired or came from another site. Please try again.",
            status_code=403,
        )
    token = token.strip()
    reviewer = sessions.reviewer_for(request, token)
    if reviewer is None:
        return _form(
            request,
            next_url=next_url,
            error="That token is not a known reviewer token. Check it and paste it again.",
            status_code=401,
        )
    response = RedirectResponse(next_url, 303)
    await sessions.sign_in(request, response, token)
    return response


@router.post("/logout", include_in_schema=False)
async def logout(request: Request, csrf: Annotated[str, Form()] = "") -> Response:
    current = await sessions.session_of(request)
    if current is not None:
        try:
            sessions.check_csrf(current.csrf, csrf)
        except sessions.CsrfRejected:
            return RedirectResponse("/ui", 303)
    response = RedirectResponse("/ui/login", 303)
    await sessions.sign_out(request, response)
    return response
