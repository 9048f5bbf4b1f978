"""A CRM gateway passed through unchanged: tests subclass it to put one behaviour of their own between a
replica and a real gateway (a barrier before a create, links arriving during a read)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from consumers.owners import Owner
from consumers.ports import CrmGateway, FieldInfo, Record, WriteOp, WriteOutcome
from streams.codec import Scalar
from streams.keys import SourceSystem


class WrappedGateway:
    def __init__(self, gateway: CrmGateway) -> None:
        self._gateway = gateway

    @property
    def system(self) -> SourceSystem:
        return self._gateway.system

    @property
    def tenant(self) -> str:
        return self._gateway.tenant

    async def read(
        self,
        object_type: str,
        ids: Sequence[str],
        *,
        fields: Sequence[str],
        associations: Sequence[str] = (),
        archived: bool = False,
    ) -> dict[str, Record]:
        return await self._gateway.read(
            object_type, ids, fields=fields, associations=associations, archived=archived
        )

    async def find(
        self,
        object_type: str,
        field: str,
        values: Sequence[str],
        *,
        fields: Sequence[str],
        contains: bool = False,
    ) -> dict[str, list[Record]]:
        return await self._gateway.find(object_type, field, values, fields=fields, contains=contains)

    async def lookup(self, kind: str, keys: Sequence[str]) -> dict[str, str]:
        return await self._gateway.lookup(kind, keys)

    async def owners(self, *, refresh: bool = False) -> Sequence[Owner]:
        return await self._gateway.owners(refresh=refresh)

    async def fields(self, object_type: str, with_options: Collection[str]) -> dict[str, FieldInfo]:
        return await self._gateway.fields(object_type, with_options)

    async def option_labels(self, object_type: str, field: str) -> dict[str, str]:
        return await self._gateway.option_labels(object_type, field)

    async def own_writes(
        self, object_type: str, ids: Sequence[str], *, fields: Sequence[str]
    ) -> dict[str, dict[str, Scalar]]:
        return await self._gateway.own_writes(object_type, ids, fields=fields)

    async def write(self, ops: Sequence[WriteOp]) -> list[WriteOutcome]:
        return await self._gateway.write(ops)
