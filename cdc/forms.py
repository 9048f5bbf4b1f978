"""The form-submissions loop of `cdc sync` (group ``<prefix>sync-forms``): HubSpot form submissions ->
rows of a Dataverse table related to the synced contact or lead (`consumers.forms` decides; this reads and
writes).

Per batch of HubSpot change events, in order:

1. a contact event naming a conversion property (`consumers.forms.conversion_changed`) puts the contact on
   the waiting list;
2. each waiting contact that is linked (the link view, tailed by the sync role) gets its pass: read its
   email and first conversion date; read the wanted forms' submissions newest first, 50 a page, down to
   that date; keep the contact's (by email) that the table lacks (its rows' keys); upsert each by the
   table's alternate key (``PATCH <set>(<key column>='<key>')``), so a replay, a retry or a second replica
   writes a row once;
3. the batch's offsets are committed. A contact not linked yet stays on the in-memory list and is passed
   as soon as its link appears (checked every poll); a contact still waiting when the process stops is
   passed at its next conversion change (harsh but never a wrong row: README, "Form submissions").

A failing pass (a CRM down) raises out of the loop, uncommitted; the role's supervisor restarts it and the
batch is read again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import orjson

from cdc.dataverse import paths as dv
from cdc.dataverse.client import DataverseClient
from cdc.hubspot.client import HubSpotClient
from cdc.hubspot.errors import RequestError
from consumers.forms import (
    FormSubmissions,
    Submission,
    conversion_changed,
    keys_of,
    of_contact,
    parse_submission,
    pending,
    row,
    submission_key,
)
from streams.clients import make_consumer, running
from streams.codec import Position, SchemaError
from streams.config import KafkaSettings
from streams.events import CHANGE_CODEC, ChangeEvent
from streams.keys import RecordRef, SourceSystem
from streams.link_store import CommittedLinks
from streams.topics import TopicCatalog, TopicRole

__all__ = ["FormSubmissionLoop"]

log = logging.getLogger("cdc.forms")
PAGE = 50
"""The submissions API's largest page (`consumers.forms`, 1)."""
CUSTOMERS = {"contact": "contacts", "lead": "leads"}


class FormSubmissionLoop:
    def __init__(  # noqa: PLR0917 -- the loop's collaborators, wired once by the sync role
        self,
        kafka: KafkaSettings,
        catalog: TopicCatalog,
        config: FormSubmissions,
        index: CommittedLinks,
        hubspot: HubSpotClient,
        dataverse: DataverseClient,
        *,
        portal_id: int,
        group: str,
        on_written: Callable[[int], None] = lambda _: None,
    ) -> None:
        self._kafka, self._catalog, self._config, self._index = kafka, catalog, config, index
        self._hubspot, self._dataverse = hubspot, dataverse
        self._portal = str(portal_id)
        self.group = group
        self._on_written = on_written
        self.waiting: dict[str, None] = {}
        self.written = 0

    async def run(self, stop: asyncio.Event) -> None:
        topic = self._catalog.name(TopicRole.CHANGES_HUBSPOT)
        async with running(make_consumer(self._kafka, topic, group_id=self.group)) as consumer:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batches.values():
                    for record in records:
                        where = Position(record.topic, record.partition, record.offset)
                        self._note(record.value, where)
                await self._pass_linked()
                if batches:
                    await consumer.commit()

    def _note(self, raw: bytes | None, where: Position) -> None:
        try:
            event = CHANGE_CODEC.decode(raw, where)
        except SchemaError:
            return  # the router dead-letters an unreadable event; this loop only looks for conversions
        if _converts(event):
            assert event is not None  # noqa: S101 -- _converts checked it
            self.waiting[event.object_id] = None

    async def _pass_linked(self) -> None:
        for contact_id in list(self.waiting):
            ref = RecordRef(
                system=SourceSystem.HUBSPOT, tenant=self._portal, object_type="contact", object_id=contact_id
            )
            link = self._index.find(ref)
            if link is None or link.dataverse.object_type not in CUSTOMERS:
                continue
            await self.sync_contact(contact_id, (link.dataverse.object_type, link.dataverse.object_id))
            self.waiting.pop(contact_id, None)

    async def sync_contact(self, contact_id: str, customer: tuple[str, str]) -> int:
        """Write the contact's submissions the table lacks; how many were written."""
        api = self._hubspot.api
        props = await self._hubspot.call(
            api.read_object,
            "contacts",
            contact_id,
            query={"properties": "email,first_conversion_date"},
        )
        values = props.get("properties") or {}
        since = _epoch_ms(values.get("first_conversion_date"))
        names, seen = await self._forms()
        subs: list[Submission] = []
        for form_id in names:
            subs += of_contact(await self._submissions(form_id, since), values.get("email"))
        table, row_id = customer
        written = await self._written(row_id)
        todo = pending(subs, contact_id, written)
        kind: Literal["contact", "lead"] = "contact" if table == "contact" else "lead"
        for sub in todo:
            body = row(
                sub,
                form_name=seen.get(sub.form_id, ""),
                contact_id=contact_id,
                customer=(kind, dv.reference(CUSTOMERS[table], row_id)),
                config=self._config,
            )
            await self._upsert(submission_key(sub.form_id, contact_id, sub.submitted_at), body)
        self.written += len(todo)
        self._on_written(len(todo))
        if todo:
            log.info("form submissions written", extra={"contact": contact_id, "rows": len(todo)})
        return len(todo)

    async def _forms(self) -> tuple[list[str], dict[str, str]]:
        """The wanted forms' ids and names (the list of all forms, paged, or each named form)."""
        api = self._hubspot.api
        names: dict[str, str] = {}
        if self._config.forms == "all":
            after: str | None = None
            while True:
                query: dict[str, str | int] = {"limit": 100, **({"after": after} if after else {})}
                page = await self._hubspot.call(api.list_forms, query=query)
                names |= {str(f["id"]): str(f.get("name") or "") for f in page.get("results") or []}
                after = _after(page)
                if after is None:
                    return sorted(names), names
        for form_id in self._config.forms:
            try:
                form = await self._hubspot.call(api.read_form, form_id)
            except RequestError as refused:  # a configured form deleted or mistyped: the others go on
                log.warning("form %s skipped: %s", form_id, refused)
                continue
            names[form_id] = str(form.get("name") or "")
        return list(names), names

    async def _submissions(self, form_id: str, since_ms: int | None) -> list[Submission]:
        """The form's submissions, newest first, down to ``since_ms`` (none of the contact's is older)."""
        out: list[Submission] = []
        after: str | None = None
        while True:
            query: dict[str, str | int] = {"limit": PAGE, **({"after": after} if after else {})}
            page = await self._hubspot.call(self._hubspot.api.form_submissions, form_id, query=query)
            for raw in page.get("results") or []:
                try:
                    sub = parse_submission(form_id, raw)
                except ValueError as bad:
                    log.warning("form submission skipped: %s", bad)
                    continue
                if since_ms is not None and sub.submitted_at < since_ms:
                    return out
                out.append(sub)
            after = _after(page)
            if after is None:
                return out

    def _set(self) -> str:
        return dv.entity_set_name(self._config.table)

    async def _written(self, row_id: str) -> set[str]:
        cols = self._config.columns
        url = dv.with_options(
            dv.rows(self._dataverse.api_root, self._set()),
            select=(cols.key,),
            where=f"_{cols.customer.lower()}_value eq {row_id}",
        )
        rows: list[dict[str, Any]] = []
        next_url: str | None = url
        while next_url:
            page = await self._dataverse.get_json(next_url, endpoint=dv.rows_label(self._set(), "forms"))
            rows += page.get("value") or []
            next_url = page.get("@odata.nextLink")
        return keys_of(rows, self._config)

    async def _upsert(self, key: str, body: dict[str, Any]) -> None:
        url = dv.row_by_key(self._dataverse.api_root, self._set(), self._config.columns.key, key)
        fields = {k: v for k, v in body.items() if k != self._config.columns.key}
        await self._dataverse.send(
            "PATCH",
            url,
            endpoint=f"{self._set()}:upsert",
            body=orjson.dumps(fields),
            headers={"Content-Type": "application/json"},
        )


def _converts(event: ChangeEvent | None) -> bool:
    return (
        event is not None
        and event.source is SourceSystem.HUBSPOT
        and event.object_type == "contact"
        and conversion_changed(event.changed_properties)
    )


def _after(page: dict[str, Any]) -> str | None:
    after = ((page.get("paging") or {}).get("next") or {}).get("after")
    return str(after) if after else None


def _epoch_ms(value: object) -> int | None:
    """A HubSpot datetime property (ISO-8601 or epoch ms) as epoch ms; None when empty or unreadable."""
    if value in {None, ""}:
        return None
    text = str(value)
    if text.isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None
