"""Which input of a HubSpot batch create or upsert each result belongs to (pure: no I/O).

HubSpot answers a batch in no set order ("There is no way to do it", HubSpot's maintainers in
HubSpot/hubspot-api-nodejs issue 190), and its documented 207 (fact sheet §3.3, D-ERR) carries
``objectWriteTraceId`` on the errors only. A result is matched to its input by what identifies the input,
in this order, and never by position:

1. its ``objectWriteTraceId``, where the answer has one;
2. a unique property the input carries (a contact's ``email``, ``cdc_d365id``, an upsert's ``idProperty``
   value): HubSpot holds one record per value, so the record holding the value is the input's;
3. the values the input set, compared as HubSpot may have rewritten them (case, number format, an instant
   given in ms and answered in ISO-8601): a result and an input that match each other and nothing else;
4. the one input left with the one result left (every result is some input's, so it is that one's).

What stays unmatched is the caller's to reconcile: an input with a unique property is read back by it; an
input without one is unresolved, and a result nobody claims is reported, not given to anyone.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cdc.hubspot.search import parse_ms

__all__ = ["Pairing", "Sent", "fingerprint", "pair_results", "same_value", "sent_values", "told_apart"]


@dataclasses.dataclass(frozen=True, slots=True)
class Sent:
    """One create or upsert input as sent."""

    index: int
    trace: str
    values: Mapping[str, str]
    """Every property value sent (wire strings; ``""`` clears)."""
    keys: Mapping[str, str]
    """The unique properties identifying it (name -> non-empty value), e.g. ``{"email": ...}``."""


@dataclasses.dataclass
class Pairing:
    matched: dict[int, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    """Input index -> its result."""
    unmatched: list[int] = dataclasses.field(default_factory=list)
    """Inputs no result was matched to, in input order."""
    stray: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    """Results matched to no input."""


def pair_results(sent: Sequence[Sent], results: Sequence[Mapping[str, Any]]) -> Pairing:
    """Match ``results`` to ``sent`` by the rules of the module docstring."""
    left: dict[int, Sent] = {s.index: s for s in sent}
    pending = [r for r in results if isinstance(r, Mapping)]
    out = Pairing()

    def take(index: int, result: Mapping[str, Any]) -> None:
        out.matched[index] = result
        del left[index]
        pending[:] = [r for r in pending if r is not result]

    by_trace = {s.trace: s.index for s in sent}
    for result in list(pending):
        index = by_trace.get(str(result.get("objectWriteTraceId")))
        if index is not None and index in left:
            take(index, result)
    for result in list(pending):
        owners = [i for i, s in left.items() if _holds_key(result, s)]
        if len(owners) == 1:
            take(owners[0], result)
    # Values: only a pair that matches each other and nothing else (two inputs alike are told apart by
    # neither, so neither is guessed).
    fits = {id(r): {i for i, s in left.items() if _holds_values(r, s)} for r in pending}
    for result, fit in [(r, fits[id(r)]) for r in pending]:
        if len(fit) == 1 and sum(fit <= fits[id(other)] for other in pending) == 1:
            take(next(iter(fit)), result)
    if len(left) == 1 and len(pending) == 1:
        take(next(iter(left)), pending[0])
    out.unmatched = sorted(left)
    out.stray = pending
    return out


def sent_values(body: Mapping[str, Any]) -> dict[str, str]:
    """The values an input sets, an upsert's ``idProperty`` value included."""
    values = dict(body.get("properties") or {})
    if "idProperty" in body:
        values[str(body["idProperty"])] = str(body["id"])
    return values


def told_apart(
    creates: dict[int, dict[str, Any]], keys: Mapping[int, Mapping[str, str]]
) -> Iterator[dict[int, dict[str, Any]]]:
    """Create batches in which every input can be told from the others by what it carries: one with a
    unique property always can; two without one that set the same values and associations go in
    different batches (else neither answer could be given to either)."""
    rounds: list[tuple[dict[int, dict[str, Any]], set[Any]]] = []
    for index, body in creates.items():
        alike = None if keys[index] else (fingerprint(body["properties"]), repr(body.get("associations")))
        into = next((r for r in rounds if alike is None or alike not in r[1]), None)
        if into is None:
            into = ({}, set())
            rounds.append(into)
        into[0][index] = body
        if alike is not None:
            into[1].add(alike)
    for batch, _ in rounds:
        yield batch


def fingerprint(values: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """What two inputs must differ in to be told apart by their values (rule 3): sorted, casefolded."""
    return tuple(sorted((name, value.strip().casefold()) for name, value in values.items() if value.strip()))


def same_value(sent: str, answered: object) -> bool:
    """Whether HubSpot's answered value is the value sent, as it may have rewritten it."""
    a, b = sent.strip(), ("" if answered is None else str(answered).strip())
    if a.casefold() == b.casefold():
        return True
    if not a or not b:
        return False
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return x == y
    t, u = parse_ms(a), parse_ms(b)  # an instant given in ms, answered in ISO-8601 (fact sheet §3.6)
    return t is not None and t == u


def _properties(result: Mapping[str, Any]) -> Mapping[str, Any]:
    found = result.get("properties")
    return found if isinstance(found, Mapping) else {}


def _holds_key(result: Mapping[str, Any], sent: Sent) -> bool:
    properties = _properties(result)
    return any(
        isinstance(properties.get(name), str)
        and properties[name].strip().casefold() == value.strip().casefold()
        for name, value in sent.keys.items()
    )


def _holds_values(result: Mapping[str, Any], sent: Sent) -> bool:
    """Every value sent that the answer shows is the one sent, and at least one non-empty value is shown."""
    properties = _properties(result)
    shown = [name for name in sent.values if name in properties]
    return all(same_value(sent.values[name], properties[name]) for name in shown) and any(
        sent.values[name].strip() for name in shown
    )


def _number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
