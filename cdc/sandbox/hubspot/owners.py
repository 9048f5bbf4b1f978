"""Owners API (read-only, as HubSpot's, the same in every version): the portal's users who can own records.

- ``GET <owners>`` (``/crm/owners/2026-09``, ...) -- ``?limit`` (1-500, default 100), ``after`` (the
  ``paging.next.after`` of the page before), ``email`` (exact, case-insensitive), ``archived`` (``true``:
  only archived owners).
- ``GET <owners>/{ownerId}`` -- ``?idProperty=id|userId``, ``archived``; 404 when there is none.

An owner answers ``{id, email, type: "PERSON", firstName, lastName, userId, userIdIncludingInactive,
createdAt, updatedAt, archived, teams}``; ``id`` is what a record's ``hubspot_owner_id`` holds. The portal
starts with a few owners from the seed; the admin API adds and archives them:

- ``POST   /_admin/owners`` -- ``{"email", "firstName"?, "lastName"?}`` -> 201 the owner.
- ``DELETE /_admin/owners/{ownerId}`` -- archives it (a user deactivated; records keep its id).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cdc.sandbox.clock import Clock
from cdc.sandbox.hubspot import errors
from cdc.sandbox.hubspot.api import JSON, Context, admin_endpoint, endpoint, json_object
from cdc.sandbox.hubspot.store import iso
from cdc.sandbox.hubspot.versions import ApiVersion

__all__ = ["Owner", "Owners", "owner_admin_routes", "owner_routes"]

SEEDED = (("Avery", "Stone"), ("Jordan", "Blake"), ("Casey", "Nguyen"), ("Riley", "Okafor"))
MAX_LIMIT = 500
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Owner:
    id: str
    email: str
    first_name: str
    last_name: str
    user_id: int
    created_ms: int
    updated_ms: int
    archived: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "type": "PERSON",
            "firstName": self.first_name,
            "lastName": self.last_name,
            "userId": None if self.archived else self.user_id,
            "userIdIncludingInactive": self.user_id,
            "createdAt": iso(self.created_ms),
            "updatedAt": iso(self.updated_ms),
            "archived": self.archived,
            "teams": [],
        }


class Owners:
    """The portal's owners, in creation order."""

    def __init__(self, clock: Clock, rng: random.Random) -> None:
        self._clock = clock
        self._rng = rng
        self._by_id: dict[str, Owner] = {}
        for first, last in SEEDED:
            self.add(f"{first}.{last}@sandbox-owners.example".lower(), first, last)

    def add(self, email: str, first_name: str = "", last_name: str = "") -> Owner:
        if any(o.email.lower() == email.lower() and not o.archived for o in self._by_id.values()):
            raise errors.bad_request(f"An owner with email {email} already exists")
        now = self._clock.epoch_ms()
        owner = Owner(
            id=str(self._rng.randrange(10_000_000, 99_999_999)),
            email=email,
            first_name=first_name,
            last_name=last_name,
            user_id=self._rng.randrange(1_000_000, 9_999_999),
            created_ms=now,
            updated_ms=now,
        )
        self._by_id[owner.id] = owner
        return owner

    def archive(self, owner_id: str) -> Owner:
        owner = self._by_id.get(owner_id)
        if owner is None:
            raise errors.not_found(f"Owner {owner_id} not found")
        archived = replace(owner, archived=True, updated_ms=self._clock.epoch_ms())
        self._by_id[owner_id] = archived
        return archived

    def listed(self, *, archived: bool, email: str | None = None) -> list[Owner]:
        return [
            o
            for o in self._by_id.values()
            if o.archived is archived and (email is None or o.email.lower() == email.lower())
        ]

    def get(self, key: str, *, by_user_id: bool, archived: bool) -> Owner | None:
        for owner in self._by_id.values():
            if owner.archived is archived and key == (str(owner.user_id) if by_user_id else owner.id):
                return owner
        return None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


def _page(request: Request) -> tuple[int, int]:
    """``limit`` and the offset ``after`` stands for."""
    try:
        limit = int(request.query_params.get("limit", DEFAULT_LIMIT))
        start = int(request.query_params.get("after") or 0)
    except ValueError:
        raise errors.bad_request("limit and after must be integers") from None
    if not 1 <= limit <= MAX_LIMIT or start < 0:
        raise errors.bad_request(f"limit must be between 1 and {MAX_LIMIT}")
    return limit, start


async def _list(owners: Owners, request: Request) -> Response:
    limit, start = _page(request)
    found = owners.listed(archived=_flag(request, "archived"), email=request.query_params.get("email"))
    body: dict[str, Any] = {"results": [o.as_json() for o in found[start : start + limit]]}
    if start + limit < len(found):
        after = str(start + limit)
        body["paging"] = {"next": {"after": after, "link": f"{request.url.path}?after={after}"}}
    return JSON(body)


async def _read(owners: Owners, request: Request) -> Response:
    id_property = request.query_params.get("idProperty", "id")
    if id_property not in {"id", "userId"}:
        raise errors.bad_request("idProperty must be id or userId")
    key = request.path_params["ownerId"]
    owner = owners.get(key, by_user_id=id_property == "userId", archived=_flag(request, "archived"))
    if owner is None:
        raise errors.not_found(f"Owner {key} not found")
    return JSON(owner.as_json())


async def _add(owners: Owners, request: Request) -> Response:
    body = await json_object(request)
    email = body.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise errors.bad_request("email is required")
    owner = owners.add(email, str(body.get("firstName") or ""), str(body.get("lastName") or ""))
    return JSON(owner.as_json(), 201)


async def _archive(owners: Owners, request: Request) -> Response:
    return JSON(owners.archive(request.path_params["ownerId"]).as_json())


def owner_routes(ctx: Context, owners: Owners, version: ApiVersion) -> list[Route]:
    return [
        Route(version.owners, endpoint(ctx, partial(_list, owners)), methods=["GET"]),
        Route(f"{version.owners}/{{ownerId}}", endpoint(ctx, partial(_read, owners)), methods=["GET"]),
    ]


def owner_admin_routes(ctx: Context, owners: Owners) -> list[Route]:
    return [
        Route("/_admin/owners", admin_endpoint(ctx, partial(_add, owners)), methods=["POST"]),
        Route("/_admin/owners/{ownerId}", admin_endpoint(ctx, partial(_archive, owners)), methods=["DELETE"]),
    ]
