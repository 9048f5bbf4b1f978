"""What `hs project upload` would refuse in a project's files, checked before it is uploaded (pure).

HubSpot publishes no JSON schema for project components: HubSpot/hubspot-project-components holds
templates per platform version, a ``config.json`` catalogue of component types (which auth types and
distributions each supports) and rules for coding agents (``defaultFiles/AGENTS.md``), and carries no
licence at its root, so nothing of it is copied here. The rules below are written from those field lists
and the docs, each with its source:

- ``hsproject.json``: ``name``, ``srcDir``, ``platformVersion`` (pc:2026.03/defaultFiles/hsproject.json;
  the beta's version is ``2026.09-beta``);
- app (hs:docs/apps/developer-platform/build-apps/app-configuration): ``uid`` up to 64 characters of
  letters, digits, ``_``, ``-`` and ``.``, unique in the project; ``type`` ``app``; ``config.name`` up to 200
  characters, not starting or ending with a space; ``config.description`` up to 8,192; ``distribution``
  ``private`` or ``marketplace``, and marketplace apps use ``oauth`` only (pc:2026.03/defaultFiles/AGENTS.md);
  ``auth.type`` ``static`` or ``oauth``, ``redirectUrls`` for OAuth only (fact sheet hubspot_2026.md §3);
  scopes as lists of names;
- webhooks (hs:docs/apps/developer-platform/add-features/configure-webhooks): ``uid``, ``type``
  ``webhooks``, ``settings`` with ``targetUrl`` and ``maxConcurrentRequests``, ``subscriptions`` of three
  arrays: ``crmObjects`` (``object.*`` types with ``objectType``), ``legacyCrmObjects`` (per-object types)
  and ``hubEvents`` (``contact.privacyDeletion``, ``conversation.*``); entries hold ``subscriptionType``,
  ``objectType``, ``propertyName`` (for property changes) and ``active``. From the webhooks API's rules,
  which the file presumably shares (unverified for project files; hubspot.md §1.3-§1.5):
  ``maxConcurrentRequests`` greater than five, no subscription to ``hs_lastmodifieddate`` or
  ``num_unique_conversion_events``, at most 1,000 subscriptions.

A field the docs do not list is reported too: the upload's validation is not published, and a typo
(``redirectUrl``) would otherwise pass silently.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

__all__ = ["check_app", "check_hsproject", "check_project", "check_webhooks"]

_UID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_VERSION = re.compile(r"[0-9]{4}\.[0-9]+(-beta)?")
_SCOPE = re.compile(r"[a-z0-9_.-]+")
NAME_MAX = 200
DESCRIPTION_MAX = 8192
MIN_CONCURRENT = 6
MAX_SUBSCRIPTIONS = 1000
UNSUBSCRIBABLE = frozenset({"hs_lastmodifieddate", "num_unique_conversion_events"})
GENERIC_ACTIONS = frozenset(
    {"creation", "deletion", "merge", "restore", "propertyChange", "associationChange"}
)
LEGACY_OBJECTS = frozenset({"contact", "company", "deal", "ticket", "product", "line_item", "conversation"})
HUB_EVENTS = frozenset(
    {
        "contact.privacyDeletion",
        "conversation.creation",
        "conversation.deletion",
        "conversation.newMessage",
        "conversation.privacyDeletion",
        "conversation.propertyChange",
    }
)
_PROJECT_FIELDS = frozenset({"name", "srcDir", "platformVersion"})
_APP_CONFIG_FIELDS = frozenset(
    {"name", "description", "distribution", "auth", "permittedUrls", "support", "isUserLevel"}
)
_AUTH_FIELDS = frozenset(
    {"type", "redirectUrls", "requiredScopes", "optionalScopes", "conditionallyRequiredScopes"}
)
_SUPPORT_FIELDS = frozenset({"supportEmail", "documentationUrl", "supportUrl", "supportPhone"})
_ENTRY_FIELDS = {
    "crmObjects": frozenset({"subscriptionType", "objectType", "propertyName", "active"}),
    "legacyCrmObjects": frozenset({"subscriptionType", "propertyName", "active"}),
    "hubEvents": frozenset({"subscriptionType", "active"}),
}


def _text(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and value != ""


def _unknown(found: Mapping[str, Any], known: frozenset[str], where: str) -> list[str]:
    return [f"{where}.{key}: not a documented field" for key in sorted(set(found) - known)]


def _url(value: Any, *, local_http: bool = False) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if local_http and parts.scheme == "http":
        return parts.hostname == "localhost"
    return parts.scheme in {"https", "http"} and bool(parts.hostname)


def _strings(value: Any) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(_text(item) for item in value)


def check_hsproject(project: Any) -> list[str]:
    """Problems of ``hsproject.json`` (empty when none)."""
    if not isinstance(project, dict):
        return ["hsproject.json: not a JSON object"]
    problems = _unknown(project, _PROJECT_FIELDS, "hsproject.json")
    if not _text(project.get("name")):
        problems.append("hsproject.json.name: required, a non-empty string")
    src = project.get("srcDir")
    if not _text(src) or src.startswith("/") or ".." in src.split("/"):
        problems.append("hsproject.json.srcDir: required, a directory inside the project")
    version = project.get("platformVersion")
    if not isinstance(version, str) or not _VERSION.fullmatch(version):
        problems.append("hsproject.json.platformVersion: required, e.g. 2026.03")
    return problems


def _component(
    component: Any, kind: str, where: str, fields: frozenset[str]
) -> tuple[list[str], dict[str, Any] | None]:
    """Problems of a component's envelope (``uid``, ``type``, ``config`` and the fields of its ``config``),
    and its ``config`` when it is an object."""
    if not isinstance(component, dict):
        return [f"{where}: not a JSON object"], None
    problems = _unknown(component, frozenset({"uid", "type", "config"}), where)
    if not isinstance(component.get("uid"), str) or not _UID.fullmatch(component["uid"]):
        problems.append(f"{where}.uid: required, up to 64 letters, digits, _, - or .")
    if component.get("type") != kind:
        problems.append(f"{where}.type: must be {kind!r}")
    config = component.get("config")
    if not isinstance(config, dict):
        return [*problems, f"{where}.config: required, an object"], None
    return problems + _unknown(config, fields, f"{where}.config"), config


def _scopes(auth: Mapping[str, Any], where: str) -> list[str]:
    problems = []
    required = auth.get("requiredScopes")
    if not _strings(required) or not required:
        problems.append(f"{where}.requiredScopes: required, a non-empty list of scope names")
    for name in ("requiredScopes", "optionalScopes", "conditionallyRequiredScopes"):
        scopes = auth.get(name)
        if scopes is None or (name == "requiredScopes" and not _strings(scopes)):
            continue
        if not _strings(scopes) or not all(_SCOPE.fullmatch(s) for s in scopes):
            problems.append(f"{where}.{name}: a list of scope names")
        elif len(set(scopes)) != len(scopes):
            problems.append(f"{where}.{name}: a scope is listed twice")
    if _strings(required) and _strings(auth.get("optionalScopes")):
        both = sorted(set(required) & set(auth["optionalScopes"]))
        if both:
            problems.append(f"{where}: {', '.join(both)} both required and optional")
    return problems


def _auth(config: Mapping[str, Any], where: str) -> list[str]:
    auth = config.get("auth")
    if not isinstance(auth, dict):
        return [f"{where}.auth: required, an object"]
    where = f"{where}.auth"
    problems = _unknown(auth, _AUTH_FIELDS, where)
    kind = auth.get("type")
    if kind not in {"static", "oauth"}:
        problems.append(f"{where}.type: static or oauth")
    if config.get("distribution") == "marketplace" and kind != "oauth":
        problems.append(f"{where}.type: a marketplace app uses oauth")
    urls = auth.get("redirectUrls")
    if kind == "oauth" and (not isinstance(urls, list) or not urls):
        problems.append(f"{where}.redirectUrls: an oauth app needs at least one")
    elif kind != "oauth" and urls is not None:
        problems.append(f"{where}.redirectUrls: for oauth apps only")
    if isinstance(urls, list) and not all(_url(u, local_http=True) for u in urls):
        problems.append(f"{where}.redirectUrls: https URLs (http only for localhost)")
    return problems + _scopes(auth, where)


def check_app(app: Any, where: str = "app-hsmeta.json") -> list[str]:
    """Problems of the ``app`` component (empty when none)."""
    problems, config = _component(app, "app", where, _APP_CONFIG_FIELDS)
    if config is None:
        return problems
    where = f"{where}.config"
    name = config.get("name")
    if not _text(name) or len(name) > NAME_MAX or name != name.strip():
        problems.append(f"{where}.name: required, up to {NAME_MAX} characters, no space at either end")
    description = config.get("description")
    if not _text(description) or len(description) > DESCRIPTION_MAX:
        problems.append(f"{where}.description: required, up to {DESCRIPTION_MAX} characters")
    if config.get("distribution") not in {"private", "marketplace"}:
        problems.append(f"{where}.distribution: private or marketplace")
    if "isUserLevel" in config and not isinstance(config["isUserLevel"], bool):
        problems.append(f"{where}.isUserLevel: true or false")
    permitted = config.get("permittedUrls")
    if permitted is not None and (
        not isinstance(permitted, dict)
        or set(permitted) - {"fetch", "iframe", "img"}
        or not all(_strings(v) for v in permitted.values())
    ):
        problems.append(f"{where}.permittedUrls: fetch, iframe and img lists of URLs")
    support = config.get("support")
    if support is not None and (not isinstance(support, dict) or set(support) - _SUPPORT_FIELDS):
        problems.append(f"{where}.support: {', '.join(sorted(_SUPPORT_FIELDS))}")
    return problems + _auth(config, where)


def _entry_problems(entry: Any, array: str, where: str) -> list[str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("subscriptionType"), str):
        return [f"{where}: an object with a subscriptionType"]
    problems = _unknown(entry, _ENTRY_FIELDS[array], where)
    prefix, _, action = entry["subscriptionType"].partition(".")
    if array == "crmObjects" and (prefix != "object" or action not in GENERIC_ACTIONS):
        problems.append(f"{where}.subscriptionType: object.<action> in crmObjects")
    if array == "crmObjects" and not _text(entry.get("objectType")):
        problems.append(f"{where}.objectType: required in crmObjects")
    if array == "legacyCrmObjects" and (prefix not in LEGACY_OBJECTS or action not in GENERIC_ACTIONS):
        problems.append(f"{where}.subscriptionType: <object>.<action> in legacyCrmObjects")
    if array == "hubEvents" and entry["subscriptionType"] not in HUB_EVENTS:
        problems.append(f"{where}.subscriptionType: contact.privacyDeletion or conversation.* in hubEvents")
    prop = entry.get("propertyName")
    if action == "propertyChange" and not _text(prop):
        problems.append(f"{where}.propertyName: required for a property change")
    elif action != "propertyChange" and prop is not None:
        problems.append(f"{where}.propertyName: only for a property change")
    if prop in UNSUBSCRIBABLE:
        problems.append(f"{where}.propertyName: HubSpot refuses subscriptions to {prop}")
    if not isinstance(entry.get("active"), bool):
        problems.append(f"{where}.active: true or false")
    return problems


def _subscription_key(entry: Any) -> tuple[str, ...]:
    if not isinstance(entry, dict):
        return ()
    return tuple(str(entry.get(k)) for k in ("subscriptionType", "objectType", "propertyName"))


def _settings_problems(settings: Any, where: str) -> list[str]:
    if not isinstance(settings, dict):
        return [f"{where}: required, an object"]
    problems = _unknown(settings, frozenset({"targetUrl", "maxConcurrentRequests"}), where)
    if not _url(settings.get("targetUrl")):
        problems.append(f"{where}.targetUrl: required, the absolute URL HubSpot posts to")
    concurrent = settings.get("maxConcurrentRequests")
    if not isinstance(concurrent, int) or isinstance(concurrent, bool) or concurrent < MIN_CONCURRENT:
        problems.append(f"{where}.maxConcurrentRequests: a number greater than five")
    return problems


def check_webhooks(hooks: Any, where: str = "webhooks-hsmeta.json") -> list[str]:
    """Problems of the ``webhooks`` component (empty when none)."""
    problems, config = _component(hooks, "webhooks", where, frozenset({"settings", "subscriptions"}))
    if config is None:
        return problems
    where = f"{where}.config"
    problems += _settings_problems(config.get("settings"), f"{where}.settings")
    subs = config.get("subscriptions")
    if not isinstance(subs, dict):
        return [*problems, f"{where}.subscriptions: required, an object"]
    problems += _unknown(subs, frozenset(_ENTRY_FIELDS), f"{where}.subscriptions")
    seen: set[tuple[str, ...]] = set()
    count = 0
    for array in _ENTRY_FIELDS:
        entries = subs.get(array, [])
        if not isinstance(entries, list):
            problems.append(f"{where}.subscriptions.{array}: a list")
            continue
        count += len(entries)
        for n, entry in enumerate(entries):
            at = f"{where}.subscriptions.{array}[{n}]"
            problems += _entry_problems(entry, array, at)
            key = _subscription_key(entry)
            if key in seen:
                problems.append(f"{at}: the same subscription twice")
            seen.add(key)
    if count > MAX_SUBSCRIPTIONS:
        problems.append(f"{where}.subscriptions: {count} subscriptions; HubSpot takes {MAX_SUBSCRIPTIONS}")
    return problems


def check_project(project: Any, app: Any, hooks: Any) -> list[str]:
    """Problems of the three files together: each one's, and a ``uid`` used twice (uids are unique within
    a project, app-configuration page)."""
    problems = [*check_hsproject(project), *check_app(app), *check_webhooks(hooks)]
    uids = [c.get("uid") for c in (app, hooks) if isinstance(c, dict)]
    if len(uids) == len(set(uids)) + 1:
        problems.append(f"uid {uids[0]!r} is used by two components; each needs its own")
    return problems
