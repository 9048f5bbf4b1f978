"""Associations v4 between contacts, companies and deals: HubSpot-defined type ids and the edge store.

Facts (sheet §4): every labelled association implies the unlabeled one; a contact (or deal) has at most
one primary company; removing the unlabeled type removes every label. Each direction is stored, so a
read from either side sees the pair; every added or removed type becomes one association change per
direction (so creating a primary gives two events on each side: primary and unlabeled).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

__all__ = [
    "HUBSPOT_DEFINED",
    "PRIMARY_OF",
    "Associations",
    "Edge",
    "Spec",
    "association_type_name",
    "label_of",
]

Spec = tuple[str, int]  # (associationCategory, associationTypeId)
HUBSPOT_DEFINED = "HUBSPOT_DEFINED"

# (from, to) -> {typeId: inverse typeId}; the first entry of each pair is the unlabeled type.
_TYPES: dict[tuple[str, str], dict[int, int]] = {
    ("contacts", "companies"): {279: 280, 1: 2},
    ("companies", "contacts"): {280: 279, 2: 1},
    ("deals", "companies"): {341: 342, 5: 6},
    ("companies", "deals"): {342: 341, 6: 5},
    ("contacts", "deals"): {4: 3},
    ("deals", "contacts"): {3: 4},
    ("contacts", "contacts"): {449: 449},
    ("companies", "companies"): {450: 450, 13: 14, 14: 13},
    ("deals", "deals"): {451: 451},
}
_PRIMARY = {1, 2, 5, 6}
# The "Primary" type from each side of the pairs that have one (contact/deal -> company and back).
PRIMARY_OF = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
}
# Types a record may hold towards only one other record (the primary company of a contact or deal).
_SINGLE = {1, 5}
_LABELS = {1: "Primary", 2: "Primary", 5: "Primary", 6: "Primary", 13: "Parent Company", 14: "Child Company"}


def label_of(type_id: int) -> str | None:
    return _LABELS.get(type_id)


def association_type_name(from_singular: str, to_singular: str) -> str:
    """``CONTACT_TO_COMPANY``: the ``associationType`` field of association webhooks (§1.2)."""
    return f"{from_singular.upper()}_TO_{to_singular.upper()}"


def unlabeled(from_type: str, to_type: str) -> int:
    return next(iter(_TYPES[(from_type, to_type)]))


def known_types(from_type: str, to_type: str) -> dict[int, int]:
    return _TYPES.get((from_type, to_type), {})


@dataclass(frozen=True)
class Edge:
    """One type added or removed in one direction: what one webhook event reports."""

    from_type: str
    from_id: str
    to_type: str
    to_id: str
    type_id: int
    removed: bool

    @property
    def primary(self) -> bool:
        return self.type_id in _PRIMARY


Node = tuple[str, str]


class Associations:
    """Edges as ``(type, id) -> (type, id) -> {typeId}``; callers hold the store lock."""

    def __init__(self) -> None:
        self._edges: dict[Node, dict[Node, set[int]]] = defaultdict(lambda: defaultdict(set))

    def types_between(self, source: Node, target: Node) -> set[int]:
        return set(self._edges.get(source, {}).get(target, set()))

    def targets(self, source: Node, to_type: str) -> dict[str, set[int]]:
        return {
            node[1]: set(types)
            for node, types in self._edges.get(source, {}).items()
            if node[0] == to_type and types
        }

    def _put(self, source: Node, target: Node, type_id: int, changes: list[Edge]) -> None:
        held = self._edges[source][target]
        if type_id not in held:
            held.add(type_id)
            changes.append(Edge(source[0], source[1], target[0], target[1], type_id, removed=False))

    def _drop(self, source: Node, target: Node, type_id: int, changes: list[Edge]) -> None:
        held = self._edges.get(source, {}).get(target)
        if held and type_id in held:
            held.discard(type_id)
            changes.append(Edge(source[0], source[1], target[0], target[1], type_id, removed=True))

    def add(self, source: Node, target: Node, type_ids: list[int]) -> list[Edge]:
        """Adds the types (and the unlabeled one), both directions; returns what changed."""
        table = _TYPES[(source[0], target[0])]
        changes: list[Edge] = []
        for type_id in [unlabeled(source[0], target[0]), *type_ids]:
            if type_id in _SINGLE:  # one primary company: demote the current one first
                for other, held in list(self._edges.get(source, {}).items()):
                    if other != target and type_id in held:
                        self._drop(source, other, type_id, changes)
                        self._drop(other, source, table[type_id], changes)
            self._put(source, target, type_id, changes)
            self._put(target, source, table[type_id], changes)
        return changes

    def remove(self, source: Node, target: Node, type_ids: list[int] | None = None) -> list[Edge]:
        """Removes the given types (all when None or when the unlabeled one is among them)."""
        table = _TYPES[(source[0], target[0])]
        held = self.types_between(source, target)
        if type_ids is None or unlabeled(source[0], target[0]) in type_ids:
            type_ids = sorted(held, key=lambda t: t == unlabeled(source[0], target[0]))
        changes: list[Edge] = []
        for type_id in type_ids:
            if type_id in held:
                self._drop(source, target, type_id, changes)
                self._drop(target, source, table[type_id], changes)
        return changes

    def move(self, old: Node, new: Node) -> None:
        """Re-points a merged record's edges to the new record (no events: the merge event covers it).

        Call it for the primary first: a single-valued type (primary company) the new record already
        holds is not taken from the second record, as HubSpot keeps the primary's (fact sheet §6).
        """
        for target, types in list(self._edges.pop(old, {}).items()):
            self._edges.get(target, {}).pop(old, None)
            if target == new:
                continue
            table = _TYPES[(old[0], target[0])]
            for type_id in sorted(types):
                if type_id in _SINGLE and any(type_id in held for held in self._edges.get(new, {}).values()):
                    continue
                self._edges[new][target].add(type_id)
                self._edges[target][new].add(table[type_id])
