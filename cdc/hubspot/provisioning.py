"""HubSpot side of provisioning: custom properties (the properties API of ``hubspot.api_version``, in the
``d365_sync`` group) and the app's webhook subscriptions: through the webhooks API of that version for a
legacy public app, whose developer API key (``hapikey``) manages them; listed for the person who
configures any other app, since no token of a project app, legacy private app or service key can (fact
sheet hubspot_2026.md §3-§4: a project app's subscriptions live in its project files; service keys get no
webhooks at all).

Per object type, in order: list the properties; compare the needed ones by name (an existing one of
another ``type``, or an enumeration lacking options the sync writes, is a problem: never modified); when
anything is missing, make sure the group exists; then create the missing properties one by one (the
sandbox has no batch create; HubSpot's own batch endpoint would save calls, not change the outcome). A 409
means someone created it meanwhile: present. Subscriptions are compared by (event type, property); a
generic ``object.*`` subscription of the same object counts. A paused one is reported, not activated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from itertools import groupby
from typing import Any

from cdc._redact import HIDDEN
from cdc.hubspot.client import HubSpotClient
from cdc.hubspot.errors import FatalError, HubSpotApiError, RequestError
from cdc.hubspot.events import OBJECT_TYPE_IDS
from cdc.hubspot.paths import plural
from cdc.provisioning.report import Item, Section
from cdc.provisioning.specs import PropertySpec, SubscriptionSpec

__all__ = ["ensure_properties", "ensure_subscriptions", "key_hidden", "list_subscriptions"]

Say = Callable[[str], None]
_CONFLICT = 409
HUBSPOT_GROUP = "d365_sync"
"""The property group the created properties go in (made when missing)."""
HUBSPOT_GROUP_LABEL = "Dynamics 365 sync"


def _property_item(spec: PropertySpec, detail: str = "") -> Item:
    return Item("property", spec.object, spec.name, spec.type, detail)


def _mismatch(spec: PropertySpec, existing: dict[str, Any]) -> str:
    """Why an existing property cannot serve ``spec``, or ``""``."""
    kind = existing.get("type")
    if kind != spec.type:
        return f"is type {kind}, the sync needs {spec.type} ({', '.join(spec.steps)})"
    if spec.unique and not existing.get("hasUniqueValue"):
        return "is not unique-valued (hasUniqueValue), so creates in HubSpot cannot be made idempotent by it"
    if spec.type == "enumeration" and spec.options:
        have = {str(o.get("value")) for o in existing.get("options") or [] if isinstance(o, dict)}
        lacking = [value for value, _ in spec.options if value not in have]
        if lacking:
            return f"lacks option value(s) {', '.join(lacking)} the sync writes"
    return ""


async def ensure_properties(
    client: HubSpotClient, specs: Sequence[PropertySpec], section: Section, *, dry_run: bool, say: Say
) -> None:
    """Create the missing ``specs`` (grouped per object type) and record every outcome in ``section``."""
    ordered = sorted(specs, key=lambda s: s.object)
    for object_type, group in groupby(ordered, key=lambda s: s.object):
        listed = await client.call(client.api.list_properties, plural(object_type))
        existing = {str(p.get("name")): p for p in listed.get("results") or [] if isinstance(p, dict)}
        missing: list[PropertySpec] = []
        for spec in group:
            found = existing.get(spec.name)
            if found is None:
                missing.append(spec)
                continue
            why = _mismatch(spec, found)
            if why:
                section.problems.append(_property_item(spec, why))
                say(f"problem: {section.problems[-1]}")
            else:
                section.present.append(_property_item(spec))
        if not missing:
            continue
        if dry_run:
            await _group(client, object_type, section, create=False, say=say)
            for spec in missing:
                section.missing.append(_property_item(spec))
                say(f"would create {section.missing[-1]}")
            continue
        await _group(client, object_type, section, create=True, say=say)
        for spec in missing:
            await _create_property(client, spec, section, say)


async def _group(
    client: HubSpotClient, object_type: str, section: Section, *, create: bool, say: Say
) -> None:
    listed = await client.call(client.api.list_property_groups, plural(object_type))
    if any(isinstance(g, dict) and g.get("name") == HUBSPOT_GROUP for g in listed.get("results") or []):
        return
    item = Item("group", object_type, HUBSPOT_GROUP, "property group")
    if not create:
        section.missing.append(item)
        say(f"would create {item}")
        return
    try:
        body = {"name": HUBSPOT_GROUP, "label": HUBSPOT_GROUP_LABEL}
        await client.call(client.api.create_property_group, plural(object_type), body=body)
    except RequestError as error:
        if error.status != _CONFLICT:
            raise
        return
    section.created.append(item)
    say(f"created {item}")


async def _create_property(client: HubSpotClient, spec: PropertySpec, section: Section, say: Say) -> None:
    try:
        await client.call(client.api.create_property, plural(spec.object), body=spec.body(HUBSPOT_GROUP))
    except RequestError as error:
        if error.status == _CONFLICT:
            section.present.append(_property_item(spec))
            return
        section.problems.append(_property_item(spec, f"HubSpot refused it: {error}"))
        say(f"problem: {section.problems[-1]}")
        return
    section.created.append(_property_item(spec))
    say(f"created {section.created[-1]}")


def _existing_key(sub: dict[str, Any]) -> str:
    """``contact.propertyChange:email`` for a legacy or a generic (``object.*`` + type id) subscription."""
    prefix, _, action = str(sub.get("eventType", "")).partition(".")
    if prefix == "object":
        prefix = OBJECT_TYPE_IDS.get(str(sub.get("objectTypeId")), f"object[{sub.get('objectTypeId')}]")
    prop = sub.get("propertyName")
    return f"{prefix}.{action}:{prop}" if prop else f"{prefix}.{action}"


def _subscription_item(spec: SubscriptionSpec, detail: str = "") -> Item:
    name = f"{spec.action}:{spec.property_name}" if spec.property_name else spec.action
    return Item("subscription", spec.object, name, spec.event_type, detail)


def list_subscriptions(specs: Sequence[SubscriptionSpec], section: Section, *, say: Say) -> None:
    """No API can subscribe this app: say what it must subscribe to, and where that is done."""
    say(
        f"webhook subscriptions: this app keeps them in its own configuration, so none is made here; it "
        f"must subscribe to these {len(specs)} events. A project app: `cdc provision --hubspot-project DIR` "
        "writes them into its project files for `hs project upload`. A legacy public app: set "
        "hubspot.developer_api_key. A service key gets no webhooks: `cdc poll` catches the changes."
    )
    for spec in specs:
        section.elsewhere.append(_subscription_item(spec, "subscribe the app to it"))
        say(f"subscribe to {spec.key}")


@contextlib.contextmanager
def key_hidden(key: str) -> Iterator[None]:
    """An error's text never shows ``key``: a network error may quote the URL, ``hapikey`` and all."""
    try:
        yield
    except HubSpotApiError as error:
        error.args = tuple(str(arg).replace(key, HIDDEN) for arg in error.args)
        raise


async def ensure_subscriptions(
    client: HubSpotClient,
    app_id: int,
    specs: Sequence[SubscriptionSpec],
    section: Section,
    *,
    dry_run: bool,
    say: Say,
    developer_api_key: str,
) -> None:
    """Create the missing subscriptions, active, with the developer API key (``hapikey``, sent with every
    call of the webhooks API). A refused key is a `FatalError` naming that setting, not the token."""
    app, query = str(app_id), {"hapikey": developer_api_key}
    try:
        with key_hidden(developer_api_key):
            listed = await client.call(client.api.list_subscriptions, app, query=query)
    except FatalError as error:
        raise FatalError(
            f"HubSpot refused the developer API key for app {app_id}'s webhook subscriptions; check "
            "hubspot.developer_api_key (CDC_HUBSPOT__DEVELOPER_API_KEY) and hubspot.app_id",
            status=error.status,
            category=error.category,
            correlation_id=error.correlation_id,
            endpoint=error.endpoint,
        ) from None
    existing: dict[str, dict[str, Any]] = {}
    for sub in listed.get("results") or []:
        if isinstance(sub, dict):
            existing.setdefault(_existing_key(sub), sub)
    for spec in specs:
        found = existing.get(spec.key)
        if found is not None:
            if found.get("active") is False:
                section.problems.append(
                    _subscription_item(spec, f"subscription {found.get('id')} is paused; activate it")
                )
                say(f"problem: {section.problems[-1]}")
            else:
                section.present.append(_subscription_item(spec))
            continue
        if dry_run:
            section.missing.append(_subscription_item(spec))
            say(f"would create {section.missing[-1]}")
            continue
        try:
            with key_hidden(developer_api_key):
                await client.call(client.api.create_subscription, app, query=query, body=spec.body())
        except RequestError as error:
            section.problems.append(_subscription_item(spec, f"HubSpot refused it: {error}"))
            say(f"problem: {section.problems[-1]}")
            continue
        section.created.append(_subscription_item(spec))
        say(f"created {section.created[-1]}")
