"""Work items: change events re-keyed by the sync stage to the pair they belong to, on `sync.work`.

Key: the route (``link/<link_id>`` once the pair is linked, ``match/<pair>/<match key>`` before, or
``record/<record key>`` when the record has no match key), so one partition and one consumer own a pair
and apply its changes in order, whichever system they came from (guarantee 4). Two brand-new records with
the same match key created at once on both sides meet on one partition and become one pair.
"""

from __future__ import annotations

from typing import ClassVar

import orjson
from pydantic import Field

from streams.codec import Codec, Versioned
from streams.events import ChangeEvent
from streams.keys import join_key
from streams.links import link_key

__all__ = ["WORK_CODEC", "WorkItem", "link_route", "match_route", "passed_through", "record_route"]


class WorkItem(Versioned):
    """One change, routed to one pair (a change of a record in two pairs makes two items)."""

    SCHEMA: ClassVar[str] = "work"

    pair: str = Field(min_length=1, description="The pair, '<hubspot object>~<dataverse object>'.")
    route: str = Field(min_length=1, description="The message key it was routed by.")
    change: ChangeEvent


def link_route(link_id: str) -> str:
    return link_key(link_id)


def match_route(pair: str, key: str) -> str:
    return join_key("match", pair, key)


def record_route(pair: str, record_key: str) -> str:
    return join_key("record", pair, record_key)


WORK_CODEC: Codec[WorkItem] = Codec(WorkItem)


def passed_through(item: WorkItem, change: bytes) -> bytes:
    """``item`` as `WORK_CODEC` encodes it, but with its change as it was read (``change``: the bytes
    ``item.change`` was decoded from, validated then): the router passes most changes through unaltered,
    and encoding each again cost it a fifth of its time. The work topic's reader decodes it to the same item
    (`tests/unit/test_work_passthrough.py`)."""
    pair, route = orjson.dumps(item.pair), orjson.dumps(item.route)
    return b'{"schema_version":%d,"pair":%b,"route":%b,"change":%b}' % (
        item.schema_version,
        pair,
        route,
        change,
    )
