"""Forms and their submissions, in HubSpot's shapes (the same paths in every API version: the Forms API has
no date-based GA version, the submissions API is the legacy v1 one; `cdc.hubspot.paths`).

- ``GET /marketing/v3/forms`` -- ``?limit`` (at most 100 served, the rest paged), ``after``: the portal's
  forms, ``{results: [{id, name, formType, createdAt, updatedAt, archived, fieldGroups, ...}], paging?}``.
  The spec documents no order, so they come in an order of the sandbox's own (shuffled, stable).
- ``GET /marketing/v3/forms/{formId}`` -- one form; 404 when there is none.
- ``GET /form-integrations/v1/submissions/forms/{formId}`` -- ``?limit`` (1-50, default 20; more is a
  400), ``after``: ``{results: [{conversionId, submittedAt, values: [{name, value}], pageUrl}], paging?}``,
  newest first, as documented (hs:docs/api-reference/legacy/marketing/forms/v1/
  get-form-integrations-v1-submissions-forms-form_guid). An unknown form is a 404.

Each needs the ``forms`` scope (spec Marketing/Forms v3 ``security``; the submissions page lists ``forms``).

Admin (:func:`form_admin_routes`):

- ``POST /_admin/forms`` -- ``{"name", "fields"?: [names]}`` -> 201 the form.
- ``POST /_admin/forms/{formId}/submit`` -- ``{"values": {name: value}, "pageUrl"?}``: a visitor submits.
  As the portal does, the contact with that ``email`` (created when there is none, as a form submission
  creates contacts) gets its conversion properties updated by HubSpot itself (``num_conversion_events``,
  ``num_unique_conversion_events``, ``recent_conversion_*``, ``first_conversion_*`` on the first), which
  fires their ``propertyChange`` webhooks, as ``changeSource: HUBSPOT_INTERNAL`` (which source HubSpot
  names for form-driven changes is UNVERIFIED). -> 201 ``{submittedAt, conversionId, contactId}``.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, admin_endpoint, endpoint, json_object
from cdc.sandbox.hubspot.objects import object_type
from cdc.sandbox.hubspot.store import Actor, Record, iso

__all__ = ["FORMS_ROOT", "SUBMISSIONS_ROOT", "Forms", "form_admin_routes", "form_routes"]

FORMS_ROOT = "/marketing/v3/forms"
SUBMISSIONS_ROOT = "/form-integrations/v1/submissions/forms"
FORMS_PAGE_MAX = 100
SUBMISSIONS_PAGE_MAX = 50
SUBMISSIONS_PAGE_DEFAULT = 20
INTERNAL = Actor("HUBSPOT_INTERNAL", "")


@dataclass
class Form:
    id: str
    name: str
    fields: tuple[str, ...]
    created_ms: int
    rank: float
    """Its place in the (undocumented, so shuffled) list order."""
    submissions: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "formType": "hubspot",
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.created_ms),
            "archived": False,
            "fieldGroups": [
                {
                    "groupType": "default_group",
                    "richTextType": "text",
                    "fields": [
                        {"objectTypeId": "0-1", "name": name, "label": name, "fieldType": "single_line_text"}
                        for name in self.fields
                    ],
                }
            ],
            "configuration": {},
            "displayOptions": {},
            "legalConsentOptions": {"type": "none"},
        }


class Forms:
    """The portal's forms and every submission of each, in submission order."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.by_id: dict[str, Form] = {}

    def add(self, name: str, fields: tuple[str, ...], now_ms: int) -> Form:
        form_id = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        form = Form(form_id, name, fields, now_ms, self._rng.random())
        self.by_id[form_id] = form
        return form

    def require(self, form_id: str) -> Form:
        form = self.by_id.get(form_id)
        if form is None:
            raise errors.not_found(f"Form {form_id} not found")
        return form


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    try:
        return default if raw in {None, ""} else int(str(raw))
    except ValueError:
        raise errors.bad_request(f"{name} must be an integer") from None


def _paged(request: Request, items: list[dict[str, Any]], limit: int) -> Response:
    start = _int(request, "after", 0)
    if start < 0:
        raise errors.bad_request("after must not be negative")
    body: dict[str, Any] = {"results": items[start : start + limit]}
    if start + limit < len(items):
        after = str(start + limit)
        body["paging"] = {"next": {"after": after, "link": f"{request.url.path}?after={after}"}}
    return JSON(body)


async def _list(forms: Forms, request: Request) -> Response:
    limit = min(max(_int(request, "limit", FORMS_PAGE_MAX), 1), FORMS_PAGE_MAX)
    ordered = sorted(forms.by_id.values(), key=lambda f: f.rank)
    return _paged(request, [f.as_json() for f in ordered], limit)


async def _read(forms: Forms, request: Request) -> Response:
    return JSON(forms.require(request.path_params["formId"]).as_json())


async def _submissions(forms: Forms, request: Request) -> Response:
    form = forms.require(request.path_params["formId"])
    limit = _int(request, "limit", SUBMISSIONS_PAGE_DEFAULT)
    if not 1 <= limit <= SUBMISSIONS_PAGE_MAX:
        raise errors.bad_request(f"limit must be between 1 and {SUBMISSIONS_PAGE_MAX}")
    newest_first = sorted(form.submissions, key=lambda s: -int(s["submittedAt"]))
    return _paged(
        request, [{k: v for k, v in s.items() if not k.startswith("_")} for s in newest_first], limit
    )


def form_routes(ctx: Context, forms: Forms) -> list[Route]:
    return [
        Route(FORMS_ROOT, endpoint(ctx, partial(_list, forms)), methods=["GET"]),
        Route(f"{FORMS_ROOT}/{{formId}}", endpoint(ctx, partial(_read, forms)), methods=["GET"]),
        Route(f"{SUBMISSIONS_ROOT}/{{formId}}", endpoint(ctx, partial(_submissions, forms)), methods=["GET"]),
    ]


def _convert(ctx: Context, forms: Forms, form: Form, email: str, at_ms: int) -> Record:
    """The contact's conversion properties after a submission of ``form``, as HubSpot sets them."""
    contacts = object_type("contacts")
    assert contacts is not None  # noqa: S101 -- a built-in type
    store = ctx.store
    found = store.get(contacts, email, id_property="email")
    if found is None:
        found = store.create(contacts, {"email": email}, INTERNAL, internal=True)
    done = {f.id for f in forms.by_id.values() if any(s["_contact"] == found.id for s in f.submissions)}
    props = found.properties
    count = int(float(props.get("num_conversion_events") or 0)) + 1
    values = {
        "num_conversion_events": str(count),
        "num_unique_conversion_events": str(len(done | {form.id})),
        "recent_conversion_event_name": form.name,
        "recent_conversion_date": iso(at_ms),
    }
    if not props.get("first_conversion_date"):
        values |= {"first_conversion_event_name": form.name, "first_conversion_date": iso(at_ms)}
    return store.update(contacts, found.id, values, INTERNAL, internal=True)


async def _add(forms: Forms, ctx: Context, request: Request) -> Response:
    body = await json_object(request)
    name, fields = body.get("name"), body.get("fields") or ["email"]
    if not isinstance(name, str) or not name:
        raise errors.bad_request("name is required")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise errors.bad_request("fields must be a list of names")
    return JSON(forms.add(name, tuple(fields), ctx.clock.epoch_ms()).as_json(), 201)


async def _submit(forms: Forms, ctx: Context, request: Request) -> Response:
    form = forms.require(request.path_params["formId"])
    body = await json_object(request)
    values = body.get("values")
    if not isinstance(values, dict) or not isinstance(values.get("email"), str) or "@" not in values["email"]:
        raise errors.bad_request("values must be an object with an email")
    at = max([ctx.clock.epoch_ms(), *(int(s["submittedAt"]) + 1 for s in form.submissions)])
    conversion = str(uuid.UUID(int=ctx.ids.getrandbits(128), version=4))
    contact = _convert(ctx, forms, form, values["email"], at)
    form.submissions.append(
        {
            "conversionId": conversion,
            "submittedAt": at,
            "values": [{"name": str(k), "value": str(v)} for k, v in values.items()],
            "pageUrl": str(body.get("pageUrl") or ""),
            "_contact": contact.id,
        }
    )
    return JSON({"submittedAt": at, "conversionId": conversion, "contactId": contact.id}, 201)


def form_admin_routes(ctx: Context, forms: Forms) -> list[Route]:
    return [
        Route("/_admin/forms", admin_endpoint(ctx, partial(_add, forms, ctx)), methods=["POST"]),
        Route(
            "/_admin/forms/{formId}/submit",
            admin_endpoint(ctx, partial(_submit, forms, ctx)),
            methods=["POST"],
        ),
    ]
