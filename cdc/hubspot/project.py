"""The HubSpot developer-platform project this daemon needs: its content, merged into what is there (pure).

A project app takes its scopes and webhook subscriptions from files uploaded with ``hs project upload``,
not from an API (fact sheet hubspot_2026.md §3; HubSpot/hubspot-project-components, ``2026.03/``):

1. ``hsproject.json``: ``{name, srcDir, platformVersion}``;
2. ``<srcDir>/app/app-hsmeta.json``: the ``app`` component, whose ``config.auth.requiredScopes`` are what
   the enabled sync steps need (:func:`required_scopes`);
3. ``<srcDir>/app/webhooks/webhooks-hsmeta.json``: the ``webhooks`` component, ``config.settings.targetUrl``
   the receiver's public URL and one subscription per :class:`~cdc.provisioning.specs.SubscriptionSpec`:
   generic ``object.*`` ones in ``crmObjects`` (with ``objectType``), ``contact.privacyDeletion`` in
   ``hubEvents`` (it exists only in the old format, §3).

Platform version: ``2026.03``. The published component repository (snapshot of 2026-08-19) holds
``2026.03`` as its released version and 2026.09 only as ``2026.09-beta``; the changelog says 2026.09 went GA
in September 2026, but no stored source shows the file it expects, and the ``app`` and ``webhooks``
components are the same in both directories. 2026.03 is supported until about September 2027 (18 months
after GA, [derived]); moving on is one edit of ``platformVersion`` and an upload (§3), and a version the
user set is kept.

Merging keeps what a person added: every existing key stays where it is, values of ours are set
(``type``, ``targetUrl``, ``auth.type`` when asked), lists gain what is missing at their end (scopes,
subscriptions) and lose nothing. A subscription already there in either format (generic in ``crmObjects``
or legacy in ``legacyCrmObjects``/``hubEvents``) counts as present; a paused one is reported, never
switched on (as `cdc.hubspot.provisioning` does with the webhooks API). So a second run changes nothing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from cdc.provisioning.needs import Needs
from cdc.provisioning.specs import SubscriptionSpec
from consumers.config import OWNER_EMAIL, SyncConfig
from streams.keys import SourceSystem

__all__ = [
    "APP_FILE",
    "PLATFORM_VERSION",
    "PROJECT_FILE",
    "SRC_DIR",
    "WEBHOOKS_FILE",
    "AuthType",
    "ProjectError",
    "Webhooks",
    "app_component",
    "hsproject",
    "required_scopes",
    "subscriptions_config",
    "webhooks_component",
]

PLATFORM_VERSION = "2026.03"
PROJECT_FILE = "hsproject.json"
SRC_DIR = "src"
APP_FILE = "app/app-hsmeta.json"
WEBHOOKS_FILE = "app/webhooks/webhooks-hsmeta.json"
"""Component files, under ``srcDir``: one ``app`` component in ``app/``, one ``webhooks`` in
``app/webhooks/``, names ending in ``-hsmeta.json`` (pc:2026.03/defaultFiles/AGENTS.md)."""
PROJECT_NAME = "hubspot-dynamics-sync"
APP_UID = "cdc_dynamics_sync_app"
WEBHOOKS_UID = "cdc_dynamics_sync_webhooks"
APP_NAME = "Dynamics 365 sync"
APP_DESCRIPTION = (
    "Keeps HubSpot and Dynamics 365 (Dataverse) records in step in near real time: reads and writes the "
    "synced CRM objects, creates the sync's custom properties, and receives their change webhooks."
)
MAX_CONCURRENT_REQUESTS = 10
"""The template's value; HubSpot's own default is 10 requests at once per account (hubspot.md §1.4)."""

AuthType = Literal["static", "oauth"]
# Scope names per object (fact sheet §2, from the 2026-09 operations' security blocks): tickets have one
# scope of their own; an object without a named scope family is a custom object.
_OBJECT_SCOPES = {"contact": "contacts", "company": "companies", "deal": "deals"}
OAUTH_SCOPE = "oauth"
"""Every template lists it first among the required scopes (pc:2026.03/components/app/*)."""
OWNERS_SCOPE = "crm.objects.owners.read"
FORMS_SCOPE = "forms"
"""Forms and their submissions (spec Marketing/Forms v3 ``security``; the v1 submissions page)."""


class ProjectError(ValueError):
    """The project cannot be written as asked; the message says what to set or fix."""


def _object_scope(obj: str, access: str) -> str:
    if obj == "ticket":
        return "tickets"
    return f"crm.objects.{_OBJECT_SCOPES.get(obj, 'custom')}.{access}"


def _schema_scope(obj: str) -> str:
    if obj == "ticket":
        return "tickets"
    return f"crm.schemas.{_OBJECT_SCOPES.get(obj, 'custom')}.write"


def required_scopes(config: SyncConfig, needs: Needs) -> tuple[str, ...]:
    """What the enabled steps need, sorted: read every HubSpot object a step or an association touches,
    write every one a step writes (records, associations and merges need the object's write scope), write
    the schema of every object whose properties `cdc provision` creates, read owners when a field is
    an owner's email (``lookup: owner_email``), and read forms with ``form_submissions``."""
    steps = config.enabled_steps()
    read: set[str] = set()
    write: set[str] = set()
    for step in steps:
        read.add(step.pair.hubspot)
        read.update(a.hubspot_object for a in step.associations)
        if step.target.system is SourceSystem.HUBSPOT:
            write.add(step.target.object)
    scopes = {OAUTH_SCOPE}
    scopes.update(_object_scope(obj, "read") for obj in read)
    scopes.update(_object_scope(obj, "write") for obj in write)
    scopes.update(_schema_scope(spec.object) for spec in needs.properties)
    if any(fm.lookup == OWNER_EMAIL for step in steps for fm in step.active_fields()):
        scopes.add(OWNERS_SCOPE)
    if config.form_submissions is not None:
        scopes.update({FORMS_SCOPE, _object_scope("contact", "read")})
    return tuple(sorted(scopes))


def _object(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProjectError(f"{where} is not a JSON object; fix it or remove the file to start again")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ProjectError(f"{where} is not a JSON array; fix it or remove the file to start again")
    return value


def _extend(have: list[Any], wanted: Iterable[Any]) -> list[Any]:
    return [*have, *(item for item in wanted if item not in have)]


def hsproject(existing: Any) -> dict[str, Any]:
    """``hsproject.json``: the name, source directory and platform version already set are kept."""
    project = copy.deepcopy(_object(existing, PROJECT_FILE))
    project.setdefault("name", PROJECT_NAME)
    project.setdefault("srcDir", SRC_DIR)
    project.setdefault("platformVersion", PLATFORM_VERSION)
    return project


def app_component(
    existing: Any, scopes: Iterable[str], *, auth: AuthType | None, redirect_urls: Iterable[str] = ()
) -> dict[str, Any]:
    """``app-hsmeta.json``: a private app (``distribution`` kept when set) whose auth type is ``auth``, else
    the file's, else ``static``; ``requiredScopes`` gain ``scopes`` (one listed as optional moves over).
    ``oauth`` needs a redirect URL (``redirectUrls`` is for OAuth only, §3): the file's, plus
    ``redirect_urls``."""
    app = copy.deepcopy(_object(existing, APP_FILE))
    app.setdefault("uid", APP_UID)
    app["type"] = "app"
    config = app["config"] = _object(app.get("config"), f"{APP_FILE}: config")
    config.setdefault("name", APP_NAME)
    config.setdefault("description", APP_DESCRIPTION)
    config.setdefault("distribution", "private")
    auth_config = config["auth"] = _object(config.get("auth"), f"{APP_FILE}: config.auth")
    chosen = auth or auth_config.get("type") or "static"
    auth_config["type"] = chosen
    if chosen == "oauth":
        urls = _extend(_list(auth_config.get("redirectUrls"), f"{APP_FILE}: redirectUrls"), redirect_urls)
        if not urls:
            raise ProjectError(
                "an oauth app needs a redirect URL, where HubSpot sends the installing user with the "
                "authorization code: pass --redirect-url URL"
            )
        auth_config["redirectUrls"] = urls
    else:
        auth_config.pop("redirectUrls", None)
    ours = list(scopes)
    required = _list(auth_config.get("requiredScopes"), f"{APP_FILE}: requiredScopes")
    auth_config["requiredScopes"] = _extend(required, ours)
    optional = _list(auth_config.get("optionalScopes"), f"{APP_FILE}: optionalScopes")
    auth_config["optionalScopes"] = [s for s in optional if s not in ours]
    auth_config.setdefault("conditionallyRequiredScopes", [])
    config.setdefault("permittedUrls", {"fetch": [], "iframe": [], "img": []})
    return app


def _entry_key(entry: Any, generic: bool) -> tuple[str, str, str | None] | None:
    """(object, action, property) of a subscription entry of the file, or None when it names none."""
    if not isinstance(entry, dict) or not isinstance(entry.get("subscriptionType"), str):
        return None
    prefix, _, action = entry["subscriptionType"].partition(".")
    obj = entry.get("objectType") if generic else prefix
    prop = entry.get("propertyName")
    return (str(obj), action, prop if isinstance(prop, str) else None)


def _spec_key(spec: SubscriptionSpec) -> tuple[str, str, str | None]:
    return (spec.object, spec.action, spec.property_name)


def _entry(spec: SubscriptionSpec) -> tuple[str, dict[str, Any]]:
    """Which array of ``subscriptions`` takes ``spec``, and its entry there (active: HubSpot sends only for
    active ones)."""
    if spec.action == "privacyDeletion":
        return "hubEvents", {"subscriptionType": spec.event_type, "active": True}
    entry: dict[str, Any] = {"subscriptionType": f"object.{spec.action}", "objectType": spec.object}
    if spec.property_name:
        entry["propertyName"] = spec.property_name
    entry["active"] = True
    return "crmObjects", entry


@dataclass
class Webhooks:
    """The webhooks component, and which needed subscriptions it holds paused (``active: false``)."""

    component: dict[str, Any]
    paused: list[SubscriptionSpec] = field(default_factory=list)


def subscriptions_config(existing: Any, specs: Iterable[SubscriptionSpec]) -> Webhooks:
    """``config.subscriptions`` of the webhooks component holding every one of ``specs`` (module docstring),
    wrapped in a bare component (`webhooks_component` completes it)."""
    subs = copy.deepcopy(_object(existing, f"{WEBHOOKS_FILE}: config.subscriptions"))
    arrays = {
        name: _list(subs.get(name), f"{WEBHOOKS_FILE}: subscriptions.{name}")
        for name in ("crmObjects", "legacyCrmObjects", "hubEvents")
    }
    present: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for name, entries in arrays.items():
        for entry in entries:
            key = _entry_key(entry, generic=name == "crmObjects")
            if key is not None:
                present.setdefault(key, entry)
    paused: list[SubscriptionSpec] = []
    for spec in specs:
        found = present.get(_spec_key(spec))
        if found is None:
            name, entry = _entry(spec)
            arrays[name].append(entry)
            present[_spec_key(spec)] = entry
        elif found.get("active") is False:
            paused.append(spec)
    subs.update(arrays)
    return Webhooks({"config": {"subscriptions": subs}}, paused)


def webhooks_component(existing: Any, specs: Iterable[SubscriptionSpec], *, target_url: str) -> Webhooks:
    """``webhooks-hsmeta.json``: HubSpot posts to ``target_url``; ``maxConcurrentRequests`` is kept."""
    hooks = copy.deepcopy(_object(existing, WEBHOOKS_FILE))
    hooks.setdefault("uid", WEBHOOKS_UID)
    hooks["type"] = "webhooks"
    config = hooks["config"] = _object(hooks.get("config"), f"{WEBHOOKS_FILE}: config")
    settings = config["settings"] = _object(config.get("settings"), f"{WEBHOOKS_FILE}: config.settings")
    settings["targetUrl"] = target_url
    settings.setdefault("maxConcurrentRequests", MAX_CONCURRENT_REQUESTS)
    made = subscriptions_config(config.get("subscriptions"), specs)
    config["subscriptions"] = made.component["config"]["subscriptions"]
    return Webhooks(hooks, made.paused)
