"""The sync role's live option sets: their labels read from both CRMs at start and every
``sync.options_refresh_s``, and handed to the applier (`consumers.live_options` decides what they become).

A field whose metadata cannot be read keeps the labels read before (or the configured ones): a CRM that is
down for a refresh changes nothing, and is asked again at the next one. A field that is missing or not an
enumeration is logged once as a warning (``cdc config check --against-crm`` refuses it before start).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from consumers.applier import Applier
from consumers.config import SyncConfig
from consumers.live_options import OptionField, live_fields, with_labels
from consumers.ports import CrmGateway, CrmUnavailableError
from streams.keys import SourceSystem

__all__ = ["LiveOptions"]

log = logging.getLogger("cdc.live_options")


class LiveOptions:
    """Reads the labels of ``config``'s live option sets and swaps ``applier.config`` when they change."""

    def __init__(
        self,
        config: SyncConfig,
        gateways: Mapping[SourceSystem, CrmGateway],
        applier: Applier,
        *,
        every_s: float,
    ) -> None:
        self.config, self.gateways, self.applier, self.every_s = config, gateways, applier, every_s
        self.fields = sorted({f for fields in live_fields(config).values() for f in fields})
        self.labels: dict[OptionField, dict[str, str]] = {}
        self._refused: set[OptionField] = set()

    async def refresh(self) -> None:
        """Read every live field once; the applier plans with the result from its next pass on."""
        for f in self.fields:
            try:
                read = await self.gateways[f.system].option_labels(f.object_type, f.field)
            except CrmUnavailableError as error:
                log.warning(
                    "live options: %s not read (%s); keeping its labels until the next refresh", f, error
                )
                continue
            except LookupError as error:
                if f not in self._refused:
                    self._refused.add(f)
                    log.warning("live options: %s has no options to read: %s", f, error)
                continue
            if read != self.labels.get(f):
                added = sorted(set(read.values()) - set((self.labels.get(f) or {}).values()))
                log.info("live options: %s lists %d options (new labels: %s)", f, len(read), added or "-")
                self.labels[f] = read
        self.applier.config = with_labels(self.config, self.labels)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every ``every_s`` until ``stop`` (the first read is the start-up's own)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.every_s)
            if not stop.is_set():
                await self.refresh()
