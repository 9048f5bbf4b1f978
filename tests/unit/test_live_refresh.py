"""The sync role's refresh of live option sets (`cdc.live_options`), against fake gateways: what is read
reaches the applier's configuration; a CRM that cannot be read keeps the labels read before; a field
without options is logged once, not at every refresh."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cdc.live_options import LiveOptions
from consumers.applier import Applier
from consumers.config import FieldMap, ValueType
from consumers.ports import CrmUnavailableError
from consumers.values import Converted, Skipped, convert
from streams.keys import SourceSystem
from streams.link_store import LinkIndex
from tests.unit.test_live_options import config

HS, DV = SourceSystem.HUBSPOT, SourceSystem.DATAVERSE
TIER = FieldMap(
    source="cdc_tier",
    target="cdc_tier",
    source_type=ValueType.OPTION,
    target_type=ValueType.OPTION,
    options="tier",
)


class Metadata:
    """A CRM whose only readable thing is its option lists (``None``: down; another field: not a choice);
    the applier is never run here, so nothing else is needed."""

    def __init__(self, system: SourceSystem, options: dict[str, str] | None) -> None:
        self.system, self.tenant, self.options = system, str(system), options
        self.reads = 0

    async def option_labels(self, object_type: str, field: str) -> dict[str, str]:
        self.reads += 1
        if self.options is None:
            raise CrmUnavailableError(self.system, "503 Service Unavailable")
        if field != "cdc_tier":
            raise LookupError(f"{object_type}.{field} is not an enumeration")
        return dict(self.options)


def refresher(hubspot: dict[str, str] | None, dataverse: dict[str, str] | None) -> LiveOptions:
    gateways = {HS: Metadata(HS, hubspot), DV: Metadata(DV, dataverse)}
    cfg = config()
    return LiveOptions(cfg, gateways, Applier(cfg, gateways, LinkIndex()), every_s=0.01)  # type: ignore[arg-type]


def to_dataverse(live: LiveOptions, value: str) -> Converted | Skipped:
    return convert(value, TIER, source_system=HS, option_sets=live.applier.config.option_sets)


async def test_what_is_read_reaches_the_applier_and_a_crm_down_keeps_it() -> None:
    live = refresher({"gold": "Gold", "platinum": "Platinum"}, {"1": "Gold", "7": "Platinum"})
    await live.refresh()
    assert to_dataverse(live, "platinum") == Converted(7)
    for gateway in live.gateways.values():
        gateway.options = None  # type: ignore[attr-defined]
    await live.refresh()
    assert to_dataverse(live, "platinum") == Converted(7)


async def test_the_loop_refreshes_until_stopped() -> None:
    live = refresher({"gold": "Gold"}, {"1": "Gold"})
    stop = asyncio.Event()
    task = asyncio.create_task(live.run(stop))
    await asyncio.sleep(0.2)
    live.gateways[DV].options = {"1": "Gold", "7": "Platinum"}  # type: ignore[attr-defined]
    live.gateways[HS].options = {"gold": "Gold", "platinum": "platinum"}  # type: ignore[attr-defined]
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert to_dataverse(live, "platinum") == Converted(7)


async def test_a_field_without_options_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    live = refresher({}, {})
    live.fields = [*live.fields, type(live.fields[0])(HS, "company", "name")]
    with caplog.at_level(logging.WARNING, logger="cdc.live_options"):
        await live.refresh()
        await live.refresh()
    said = [r.getMessage() for r in caplog.records if "no options to read" in r.getMessage()]
    assert said == [
        "live options: hubspot.company.name has no options to read: company.name is not an enumeration"
    ]
