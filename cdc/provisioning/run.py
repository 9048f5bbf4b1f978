"""One provisioning run: from a `SyncConfig` and `Settings` to a `ProvisionReport`.

Order: (1) what the configuration needs (`needs_of`, pure); (2) HubSpot properties, before (3) the webhook
subscriptions that name them; (4) change tracking on every table `cdc poll` polls (what the enabled
steps sync, `cdc.sources.polled`), then (5) Dataverse columns and their alternate keys, waiting (at most
``key_wait_s``) for Dataverse to build the keys' indexes; all made only with ``create_columns``; (6) the
application user's privileges: what the daemon needs to run (`cdc.provisioning.privileges`) and, on a dry
run with ``create_columns``, what making the missing items would need. A metadata call Dataverse refuses
with 403 (a privilege missing) ends (4)-(5) with one problem, so (6) can say which privileges lack. A
setting the run cannot do without (HubSpot URL or token) is a `ProvisionError`; one it can do without
(the app id for webhooks, the Dataverse org) makes that area a problem and the rest still runs. API
failures other than a refused item (401, outage after the client's retries) propagate: the caller decides
the exit code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus

import httpx
from prometheus_client import CollectorRegistry

from cdc.dataverse.auth import TokenProvider
from cdc.dataverse.client import DataverseClient
from cdc.dataverse.errors import FatalError
from cdc.dataverse.form_table import ensure_form_table, form_columns
from cdc.dataverse.keys import KEY_WAIT_S
from cdc.dataverse.paths import entity_logical_name
from cdc.dataverse.poller import dataverse_tables
from cdc.dataverse.privileges import check_privileges
from cdc.dataverse.provisioning import ensure_change_tracking, ensure_columns
from cdc.hubspot.client import HubSpotClient, hubspot_client
from cdc.hubspot.journal import JOURNAL_SCOPES, SUBSCRIPTIONS_WRITE, journal_tokens
from cdc.hubspot.journal_subscriptions import ensure_journal_subscriptions, wanted_journal_subscriptions
from cdc.hubspot.project import subscriptions_config
from cdc.hubspot.provisioning import ensure_properties, ensure_subscriptions, list_subscriptions
from cdc.metrics import Metrics
from cdc.provisioning.needs import Needs, needs_of
from cdc.provisioning.privileges import CUSTOMIZATION, privilege_needs
from cdc.provisioning.report import Item, ProvisionReport, Section
from cdc.settings import Settings
from consumers.config import SyncConfig
from consumers.loader import default_config
from streams.keys import SourceSystem

__all__ = ["ProvisionError", "enable_change_tracking", "provision", "provision_sandbox"]


_FORBIDDEN = 403
SANDBOX_KEY_WAIT_S = 60.0
"""`provision_sandbox`'s bound on the wait for key indexes (the sandbox builds one in about a second)."""


class ProvisionError(Exception):
    """Provisioning cannot run with these settings, or (``provision_sandbox``) did not end complete."""


Say = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def _config_problems(needs: Needs, report: ProvisionReport) -> None:
    for system, obj, name, why in needs.problems:
        section = report.hubspot if system is SourceSystem.HUBSPOT else report.dataverse
        kind = "property" if system is SourceSystem.HUBSPOT else "column"
        section.problems.append(Item(kind, obj, name, detail=f"configuration: {why}"))


async def provision(
    settings: Settings,
    config: SyncConfig,
    *,
    create_columns: bool = False,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
    metrics: Metrics | None = None,
    key_wait_s: float = KEY_WAIT_S,
) -> ProvisionReport:
    """Make the CRMs hold what ``config``'s enabled steps need; report what was there, made, or wrong.

    Webhook subscriptions are made only with ``hubspot.developer_api_key`` (a legacy public app, the one
    kind whose subscriptions an API manages); for any other app they are listed (``elsewhere``), which is
    no failure: the project files (`cdc provision --hubspot-project`) or the app's settings hold them.
    """
    say = progress or _quiet
    metrics = metrics or Metrics(CollectorRegistry())
    hub = settings.hubspot
    client = hubspot_client(hub, metrics, command="provision")
    needs = needs_of(config)
    polled = tuple(entity_logical_name(t) for t in dataverse_tables(settings, config))
    report = ProvisionReport(dry_run=dry_run)
    _config_problems(needs, report)

    async with client:
        await ensure_properties(client, needs.properties, report.hubspot, dry_run=dry_run, say=say)
        developer_key = hub.developer_api_key.get_secret_value() if hub.developer_api_key else ""
        if not developer_key:
            list_subscriptions(needs.subscriptions, report.webhooks, say=say)
        elif hub.app_id is None:
            report.webhooks.problems.append(
                Item("setting", "hubspot", "app_id", detail="not set (CDC_HUBSPOT__APP_ID): not checked")
            )
        else:
            await ensure_subscriptions(
                client,
                hub.app_id,
                needs.subscriptions,
                report.webhooks,
                dry_run=dry_run,
                say=say,
                developer_api_key=developer_key,
            )

    if hub.sources != "webhooks":
        await _journal_subscriptions(settings, metrics, needs, report, dry_run=dry_run, say=say)
    if not settings.dataverse.base_url:
        report.dataverse.problems.append(
            Item("setting", "dataverse", "base_url", detail="not set (CDC_DATAVERSE__BASE_URL): not checked")
        )
        return report
    tokens = TokenProvider(settings.dataverse)
    dataverse = DataverseClient(settings.dataverse, tokens, metrics)
    try:
        await dataverse.start()
        try:
            await ensure_change_tracking(
                dataverse, polled, report.dataverse, create=create_columns, dry_run=dry_run, say=say
            )
            forms = config.form_submissions
            if forms is not None:
                await ensure_form_table(
                    dataverse, forms, report.dataverse, create=create_columns, dry_run=dry_run, say=say
                )
            await ensure_columns(
                dataverse,
                (*needs.columns, *(form_columns(forms) if forms is not None else ())),
                report.dataverse,
                create=create_columns,
                dry_run=dry_run,
                say=say,
                key_wait_s=key_wait_s,
            )
        except FatalError as error:
            if error.status != _FORBIDDEN:
                raise
            refused = Item("setting", "dataverse", "privileges", detail=f"Dataverse refused: {error.message}")
            report.dataverse.problems.append(refused)
            say(f"problem: {refused}")
        making = {i.kind for i in report.dataverse.missing} if create_columns and dry_run else set()
        customization = [CUSTOMIZATION[kind] for kind in CUSTOMIZATION if kind in making]
        await check_privileges(
            dataverse, (*privilege_needs(config, polled), *customization), report.privileges, say=say
        )
    finally:
        await dataverse.close()
        tokens.close()
    return report


async def _journal_subscriptions(
    settings: Settings, metrics: Metrics, needs: Needs, report: ProvisionReport, *, dry_run: bool, say: Say
) -> None:
    """The Webhooks Journal's subscriptions (``hubspot.change_sources`` takes the journal), with the app's
    client-credentials token; a problem when none can be had."""
    hub = settings.hubspot
    tokens = journal_tokens(
        settings, metrics, scopes=(*JOURNAL_SCOPES, SUBSCRIPTIONS_WRITE), role="provision"
    )
    if isinstance(tokens, str) or hub.portal_id is None or not hub.portal_id.isdigit():
        why = tokens if isinstance(tokens, str) else "hubspot.portal_id is not set (CDC_HUBSPOT__PORTAL_ID)"
        report.journal.problems.append(Item("setting", "hubspot", "change_sources", detail=why))
        say(f"problem: journal subscriptions not checked: {why}")
        return
    wanted = wanted_journal_subscriptions(needs.subscriptions, int(hub.portal_id))
    async with HubSpotClient(hub.base_url, tokens, metrics=metrics, version=hub.api_version) as client:
        await ensure_journal_subscriptions(client, wanted, report.journal, dry_run=dry_run, say=say)


async def enable_change_tracking(settings: Settings, tables: Sequence[str]) -> Section:
    """Turn change tracking on for ``tables`` (entity sets, e.g. ``poll.dataverse_tables``) through the
    metadata API, as `cdc provision --dataverse` does; raises `ProvisionError` unless all end tracked.
    For set-ups that poll Dataverse without the rest of provisioning (tests, benchmarks)."""
    section = Section()
    tokens = TokenProvider(settings.dataverse)
    dataverse = DataverseClient(settings.dataverse, tokens, Metrics(CollectorRegistry()))
    try:
        await dataverse.start()
        logical = [entity_logical_name(t) for t in tables]
        await ensure_change_tracking(dataverse, logical, section, create=True, dry_run=False, say=_quiet)
    finally:
        await dataverse.close()
        tokens.close()
    if section.problems or section.missing:
        wrong = "; ".join(str(i) for i in (*section.problems, *section.missing))
        raise ProvisionError(f"change tracking could not be turned on: {wrong}")
    return section


async def _deploy_sandbox_webhooks(settings: Settings, config: SyncConfig) -> None:
    """The subscriptions of the project's webhooks file (`cdc.hubspot.project`), deployed to the sandbox."""
    component = subscriptions_config(None, needs_of(config).subscriptions).component
    async with httpx.AsyncClient(base_url=settings.hubspot.base_url, timeout=30) as admin:
        answer = await admin.put("/_admin/project/webhooks", json=component)
    if answer.status_code != HTTPStatus.OK:
        raise ProvisionError(f"the sandbox refused the webhooks file: {answer.status_code} {answer.text}")


async def provision_sandbox(
    settings: Settings,
    config: SyncConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    key_wait_s: float = SANDBOX_KEY_WAIT_S,
) -> ProvisionReport:
    """Prepare fresh CRMs (the sandbox, for the demo and end-to-end tests) in one call: HubSpot properties,
    webhook subscriptions and Dataverse columns for ``config`` (default: the packaged defaults), waiting for
    the alternate keys' indexes as a user would before starting the daemon. A project app's subscriptions
    are deployed as ``hs project upload`` would deploy the project's webhooks file (the sandbox's admin API
    stands in for the upload). Raises `ProvisionError` unless everything ends present (and every key
    Active)."""
    config = config or default_config()
    report = await provision(settings, config, create_columns=True, progress=progress, key_wait_s=key_wait_s)
    if report.webhooks.elsewhere:
        await _deploy_sandbox_webhooks(settings, config)
        report.webhooks.created += report.webhooks.elsewhere
        report.webhooks.elsewhere = []
    if not report.ok or report.count("pending"):
        wrong = [str(i) for s in report.sections.values() for i in (*s.problems, *s.missing, *s.pending)]
        raise ProvisionError(
            f"provisioning left {len(wrong)} item(s) missing, wrong or not ready: {'; '.join(wrong)}"
        )
    return report
