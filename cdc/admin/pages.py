"""What every view of the admin page shares: rendering a template with the layout's context (user, CSRF
token, navigation, the flash message), reading a POST's form only once its CSRF token checks, paging.

A view is a module of `cdc.admin.views` exposing a :class:`View`: its title in the navigation, its path
and its routes. Its GET routes call :func:`render`; its POST routes take their form from :func:`posted`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import parse_qsl

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse
from starlette.routing import BaseRoute
from starlette.templating import Jinja2Templates

from cdc.admin.security import csrf_token, csrf_valid
from cdc.admin.source import HealthSource

__all__ = [
    "PAGE_SIZE",
    "Paged",
    "View",
    "flash",
    "health",
    "page_of",
    "posted",
    "redirect",
    "render",
    "templates",
    "user",
]

PAGE_SIZE = 50
MAX_FORM_BYTES = 16 * 1024
MAX_FIELDS = 20
T = TypeVar("T")


@dataclass(frozen=True)
class View:
    title: str
    path: str
    routes: Sequence[BaseRoute]


def templates() -> Jinja2Templates:
    """The templates, autoescaped (a record's values are whatever a CRM user typed)."""
    environment = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=environment)


def health(request: Request) -> HealthSource:
    source: HealthSource = request.app.state.source
    return source


def user(request: Request) -> str:
    name: str = request.scope["user_name"]
    return name


def flash(request: Request, message: str) -> None:
    """A one-line message the next page shows once (it travels in the signed session cookie)."""
    request.session["flash"] = message


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200) -> HTMLResponse:
    page: Jinja2Templates = request.app.state.templates
    layout = {
        "user": request.scope.get("user_name"),
        "csrf": csrf_token(request.session),
        "views": request.app.state.views,
        "path": request.url.path,
        "message": request.session.pop("flash", None),
        "paused": request.scope.get("paused"),
    }
    return page.TemplateResponse(request, template, {**layout, **context}, status_code=status)


async def posted(request: Request) -> dict[str, str]:
    """The POST's form fields, or 403 when its CSRF token is missing or not the session's (nothing is done).

    The page's forms are all urlencoded and small: read here with the standard library (no multipart
    parser to install), at most `MAX_FORM_BYTES`, else 413.
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, f"a form of more than {MAX_FORM_BYTES} bytes is refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        body = b""  # not the page's own form: no fields, so no token either
    try:
        form = dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FIELDS))
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(400, "the form could not be read") from None
    if not csrf_valid(request.session, form.get("csrf")):
        raise HTTPException(
            403, "the form's security token is missing or out of date: reload the page and try again"
        )
    return form


def redirect(path: str) -> RedirectResponse:
    """After a POST: 303 to a GET, so a reload never repeats the action."""
    return RedirectResponse(path, status_code=303)


@dataclass(frozen=True)
class Paged(Generic[T]):
    items: list[T]
    page: int
    pages: int
    total: int


def page_of(items: Sequence[T], raw_page: str | None) -> Paged[T]:
    """One page of ``items`` (``raw_page`` from the query string; anything unreadable is page 1)."""
    pages = max(1, -(-len(items) // PAGE_SIZE))
    try:
        page = min(max(1, int(raw_page or 1)), pages)
    except ValueError:
        page = 1
    start = (page - 1) * PAGE_SIZE
    return Paged(list(items[start : start + PAGE_SIZE]), page, pages, len(items))
