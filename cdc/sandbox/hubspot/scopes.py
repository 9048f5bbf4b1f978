"""Which scopes let a HubSpot API call through, so that a token's scopes decide what it may call.

From the operations' ``security`` blocks of the 2026-09 specs (HubSpot/HubSpot-public-api-spec-collection:
``CRM/{Contacts,Companies,Deals,Tickets}/Rollouts/424/2026-09``, ``CRM/Properties``, ``CRM/Crm Owners``;
fact sheet hubspot_2026.md §2, "Scopes needed"); a block lists alternatives, any one of which will do:

- records, batches, search and merge: ``crm.objects.<type>.read`` for a read (GET, ``batch/read``,
  ``search``), ``crm.objects.<type>.write`` for anything else; tickets: ``tickets``. A write scope does not
  let a token read: each object spec's GET lists the read scope alone;
- properties and property groups: a read takes the type's object or schema read scope (the Properties spec
  lists any object or schema read scope: the type's own is served, the harsher reading), a write needs
  ``crm.schemas.<type>.write``;
- owners: ``crm.objects.owners.read``;
- forms and form submissions: ``forms`` (spec Marketing/Forms v3 ``security``; the v1 submissions page);
- associations (the batch APIs and one record's): the ``from`` type's read or write scope, as for records.
  The Associations spec lists every object scope of every type; which one HubSpot checks is UNVERIFIED.

:func:`required_scopes` reads the route from the request's path and path parameters, so no route table
names its scope twice. The webhooks API takes the developer API key, which has no scopes.
"""

from __future__ import annotations

from collections.abc import Mapping

from cdc.sandbox.hubspot.objects import OBJECT_TYPES, object_type

__all__ = [
    "ALL_SCOPES",
    "FORMS",
    "JOURNAL_READ",
    "JOURNAL_SCOPES",
    "JOURNAL_SNAPSHOTS_WRITE",
    "JOURNAL_SUBSCRIPTIONS_READ",
    "JOURNAL_SUBSCRIPTIONS_WRITE",
    "OWNERS",
    "required_scopes",
]

OWNERS = "crm.objects.owners.read"
FORMS = "forms"
FORM_ROOTS = ("/marketing/v3/forms", "/form-integrations/")
TICKETS = "tickets"
READ_ENDINGS = ("/batch/read", "/search")
JOURNAL_READ = "developer.webhooks_journal.read"
JOURNAL_SUBSCRIPTIONS_READ = "developer.webhooks_journal.subscriptions.read"
JOURNAL_SUBSCRIPTIONS_WRITE = "developer.webhooks_journal.subscriptions.write"
JOURNAL_SNAPSHOTS_WRITE = "developer.webhooks_journal.snapshots.write"
JOURNAL_SCOPES = frozenset(
    {JOURNAL_READ, JOURNAL_SUBSCRIPTIONS_READ, JOURNAL_SUBSCRIPTIONS_WRITE, JOURNAL_SNAPSHOTS_WRITE}
)
"""The Webhooks Journal's scopes (fact sheet hubspot_2026.md §2): a client-credentials token's alone."""


def _object(name: str, access: str) -> str:
    return TICKETS if name == "tickets" else f"crm.objects.{name}.{access}"


def _schema(name: str, access: str) -> str:
    return TICKETS if name == "tickets" else f"crm.schemas.{name}.{access}"


ALL_SCOPES: frozenset[str] = frozenset(
    {OWNERS, FORMS}
    | {_object(name, a) for name in OBJECT_TYPES for a in ("read", "write")}
    | {_schema(name, a) for name in OBJECT_TYPES for a in ("read", "write")}
)
"""Every scope a call to this emulator can need: what the portal's static token holds."""


def _reading(method: str, path: str) -> bool:
    return method == "GET" or path.endswith(READ_ENDINGS) or path.endswith("/labels")


def required_scopes(method: str, path: str, params: Mapping[str, str]) -> tuple[str, ...]:
    """The scopes, any one of which lets ``method path`` through; () when the call needs none it can be
    told by (a type the emulator does not know is the handler's to refuse)."""
    if "/owners" in path:
        return (OWNERS,)
    if path.startswith(FORM_ROOTS):
        return (FORMS,)
    found = object_type(params.get("objectType") or params.get("fromObjectType") or "")
    if found is None:
        return ()
    name, reading = found.name, _reading(method, path)
    if "/properties/" in path:
        if reading:
            return tuple(dict.fromkeys((_object(name, "read"), _schema(name, "read"))))
        return (_schema(name, "write"),)
    return (_object(name, "read" if reading else "write"),)
