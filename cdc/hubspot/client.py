"""The HubSpot CRM API client: bearer auth, one retry policy, search's own rate limiter, metrics per route.

Every call goes through :meth:`HubSpotClient._call`, in order: wait for the search limiter (search only), take
the bearer token from the role's token provider (`cdc.hubspot.tokens`: static, or OAuth renewed before it
ends), send (a 401 to a renewable token renews it once and sends once more), sort the answer with
:func:`cdc.hubspot.errors.classify`, then either return the JSON, or, for a `RetriableError`, wait and send
again by the one retry policy (`consumers.retries`: a throttle as long as the limit asks, 5xx and network
errors with capped exponential backoff, each within the client's `RetryPolicy`), or raise. Metrics carry the
endpoint's label (`cdc.hubspot.paths.Endpoint.label`), never a record URL. A client speaks one API version
(``hubspot.api_version``): :attr:`HubSpotClient.api` holds its endpoints, callers name one of them and the
values of its path, and the client builds the path, so no other module writes one. The sync engine's gateway
(`cdc.hubspot.gateway`) sends its batch calls through :meth:`HubSpotClient.call`. Every role opens its client
with :func:`hubspot_client`, which picks the token provider ``hubspot.auth`` names.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

import aiohttp
import orjson

from cdc.budget import Budget, BudgetClosedError, budget_for, hubspot_kind, hubspot_limits
from cdc.hubspot._sent import sent
from cdc.hubspot.errors import CredentialsRefusedError, FatalError, RetriableError, classify
from cdc.hubspot.paths import (
    DEFAULT_HUBSPOT_API_VERSION,
    Endpoint,
    Endpoints,
    HubSpotApiVersion,
    Query,
    endpoints,
)
from cdc.hubspot.tokens import StaticToken, TokenSource, token_source
from cdc.metrics import Metrics
from cdc.settings import HubSpotSettings
from consumers.owners import Owner
from consumers.retries import Retry, RetryPolicy, retrying

__all__ = ["AssociatedRecord", "HubSpotClient", "SearchPage", "hubspot_client"]

log = logging.getLogger(__name__)
SYSTEM = "hubspot"
ASSOCIATIONS_READ_LIMIT = 1000
OWNERS_PAGE = 500
Body = Mapping[str, Any] | Sequence[Any]


@dataclass(frozen=True)
class SearchPage:
    total: int
    results: list[dict[str, Any]]
    has_more: bool
    after: str | None = None
    """``paging.next.after``: where the next page of the same query starts."""


@dataclass(frozen=True)
class AssociatedRecord:
    to_id: str
    type_ids: tuple[int, ...]
    labels: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()


class HubSpotClient:
    """One HTTP session to one portal; use as ``async with HubSpotClient(...) as client``. ``token`` is a
    static token, or the role's provider (:func:`hubspot_client`)."""

    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        *,
        metrics: Metrics,
        policy: RetryPolicy | None = None,
        budget: Budget | None = None,
        timeout_s: float = 30.0,
        version: HubSpotApiVersion = DEFAULT_HUBSPOT_API_VERSION,
    ) -> None:
        self.api: Endpoints = endpoints(version)
        """The endpoints of the API version this client speaks."""
        self._base_url = base_url.rstrip("/")
        self._tokens: TokenSource = StaticToken(token) if isinstance(token, str) else token
        self._metrics = metrics
        self._policy = policy or RetryPolicy()
        self.budget = (
            budget or budget_for(SYSTEM) or Budget(hubspot_limits(HubSpotSettings()), metrics=metrics)
        )
        """The role's HubSpot budget (`cdc.budget`), or, outside a role, one of this client's own."""
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            headers={"Accept": "application/json"},
            timeout=self._timeout,
            json_serialize=lambda value: orjson.dumps(value).decode(),
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def token(self) -> str:
        """The bearer token the next call sends: a role fetches it up front, so credentials the token
        endpoint refuses fail the start-up with their reason (`cdc.hubspot.tokens`)."""
        return await self._tokens.token()

    async def search(self, object_type: str, body: Mapping[str, Any]) -> SearchPage:
        """One page of a search (`Endpoints.search`)."""
        answer = await self._call(self.api.search, self.api.search.path(object_type), body)
        after = ((answer.get("paging") or {}).get("next") or {}).get("after")
        return SearchPage(
            total=int(answer.get("total") or 0),
            results=list(answer.get("results") or []),
            has_more=bool((answer.get("paging") or {}).get("next")),
            after=str(after) if after else None,
        )

    async def owner_list(self) -> list[Owner]:
        """Every owner, active then archived (``?archived=true`` lists only the archived ones, Crm Owners
        spec; an archived owner keeps its ``id`` on records but cannot be assigned): `Endpoints.owners`,
        500 per page, following ``paging.next.after``."""
        owners: list[Owner] = []
        for archived in ("false", "true"):
            query = {"limit": OWNERS_PAGE, "archived": archived}
            owners += [
                Owner(str(owner["id"]), str(owner["email"]), active=archived == "false")
                async for owner in self.listed(self.api.owners, query=query)
                if owner.get("id") is not None and owner.get("email")
            ]
        return owners

    async def listed(
        self, endpoint: Endpoint, *names: str, query: Query | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every result of a GET list endpoint, page after page (``paging.next.after``)."""
        after: str | None = None
        while True:
            page = {**(query or {}), **({"after": after} if after else {})}
            answer = await self._call(endpoint, endpoint.path(*names, query=page))
            for item in answer.get("results") or []:
                if isinstance(item, dict):
                    yield item
            after = ((answer.get("paging") or {}).get("next") or {}).get("after") or None
            if after is None:
                return

    async def read_associations(
        self, from_type: str, to_type: str, ids: Sequence[str]
    ) -> dict[str, list[AssociatedRecord]]:
        """Every association of ``ids`` to ``to_type`` (batch read, following per-record paging).

        Records that no longer exist (the answer's ``errors``, in a 207 or folded into a 200 as 2026-09
        answers) are left out: their deletion has its own event.
        """
        found: dict[str, list[AssociatedRecord]] = {record_id: [] for record_id in ids}
        pending: list[dict[str, str]] = [{"id": record_id} for record_id in ids]
        endpoint = self.api.associations_batch_read
        path = endpoint.path(from_type, to_type)
        while pending:
            chunk, pending = pending[:ASSOCIATIONS_READ_LIMIT], pending[ASSOCIATIONS_READ_LIMIT:]
            answer = await self._call(endpoint, path, {"inputs": chunk})
            for result in answer.get("results") or []:
                from_id = str((result.get("from") or {}).get("id"))
                for item in result.get("to") or []:
                    kinds = item.get("associationTypes") or []
                    found.setdefault(from_id, []).append(
                        AssociatedRecord(
                            to_id=str(item.get("toObjectId")),
                            type_ids=tuple(int(k["typeId"]) for k in kinds if "typeId" in k),
                            labels=tuple(str(k["label"]) for k in kinds if k.get("label")),
                            categories=tuple(str(k["category"]) for k in kinds if k.get("category")),
                        )
                    )
                after = ((result.get("paging") or {}).get("next") or {}).get("after")
                if after:
                    pending.append({"id": from_id, "after": str(after)})
        return found

    async def call(
        self,
        endpoint: Endpoint,
        *names: str,
        query: Query | None = None,
        body: Body | None = None,
        retry: bool = True,
    ) -> dict[str, Any]:
        """Any CRM call through the one retry policy: ``endpoint`` with ``names`` filled into its path; an
        empty answer (204) is ``{}``. ``retry=False`` sends once and raises what a retry would wait out: for
        a write planned from a read, whose caller must read again before it writes again (HubSpot has no
        If-Match)."""
        return await self._call(endpoint, endpoint.path(*names, query=query), body, retry=retry)

    async def _call(
        self,
        endpoint: Endpoint,
        path: str,
        body: Body | None = None,
        *,
        retry: bool = True,
    ) -> dict[str, Any]:
        """Send until the answer is a success, a non-retriable error, or the retries are spent."""
        if self._session is None:
            raise RuntimeError("HubSpotClient is used outside its `async with` block")

        async def once() -> dict[str, Any]:
            token = await self._tokens.token()
            try:
                return await self._send_once(endpoint, path, body, token)
            except CredentialsRefusedError as refused:
                if not self._tokens.renewable:
                    raise
                # One line per call would repeat what the provider logs once per renewal.
                log.debug(
                    "HubSpot %s answered 401 (%s): renewing the token once", endpoint.label, refused.category
                )
                token = await self._tokens.renew(token)
            try:
                return await self._send_once(endpoint, path, body, token)
            except CredentialsRefusedError as again:
                raise CredentialsRefusedError(
                    f"HubSpot {endpoint.label} answered 401: {self._tokens.hint}",
                    status=again.status,
                    category=again.category,
                    correlation_id=again.correlation_id,
                    endpoint=endpoint.label,
                ) from None

        if not retry:
            return await once()
        return await retrying(
            once, policy=self._policy, on=self._retriable, what=SYSTEM, on_retry=self._retried
        )

    def _retriable(self, error: Exception) -> bool:
        """A system error, unless the role is stopping: then the call that could not get budget is given up
        (retried, it failed again at once, tens of thousands of times a second until cancelled)."""
        return isinstance(error, RetriableError) and not self.budget.closing

    def _steer(self, headers: Mapping[str, str]) -> None:
        """HubSpot's own count (fact sheet §6: ``X-HubSpot-RateLimit-Max``/``-Remaining`` for the app's
        burst window, ``-Daily``/``-Daily-Remaining`` for the account's day, the latter absent for OAuth):
        what it counts beyond our calls is another integration's (`cdc.budget.limiter.Budget.observe`)."""
        for window, limit, remaining in (
            ("ten_secondly", "X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining"),
            ("daily", "X-HubSpot-RateLimit-Daily", "X-HubSpot-RateLimit-Daily-Remaining"),
        ):
            server_max, left = _header_number(headers, limit), _header_number(headers, remaining)
            if server_max is not None and left is not None:
                self.budget.observe(window, server_max, left)

    def _retried(self, retry: Retry) -> None:
        self._metrics.retried(retry)
        self._metrics.api_retries.labels(system=SYSTEM).inc()

    async def _send_once(
        self, endpoint: Endpoint, path: str, body: Body | None, token: str
    ) -> dict[str, Any]:
        """One request, once the budget has room for it (`cdc.budget`: a stopping role's wait ends in a
        `RetriableError` that asks for no wait, so the engine gives the batch up)."""
        assert self._session is not None  # noqa: S101 -- checked by the caller; narrows the type
        template = endpoint.label
        auth = {"Authorization": f"Bearer {token}"}
        try:
            async with self.budget.spend(hubspot_kind(endpoint.exemptions)):
                with sent(self._metrics, template) as request:
                    async with self._session.request(
                        endpoint.method, self._base_url + path, json=body, headers=auth
                    ) as response:
                        request.status = str(response.status)
                        raw = await response.read()
                        headers = dict(response.headers)
                        status = response.status
        except BudgetClosedError as closed:
            raise RetriableError(str(closed), retry_after=0.0, endpoint=template) from None
        self._steer(headers)
        try:
            answer: Any = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            answer = {"message": raw[:200].decode("utf-8", "replace")}
        refused = classify(status, answer, headers, endpoint=template, now=datetime.now(UTC))
        if refused is not None:
            if status == 429:  # noqa: PLR2004
                self._metrics.api_throttled.labels(system=SYSTEM, endpoint=template).inc()
                policy = _policy(answer.get("policyName") if isinstance(answer, dict) else None)
                self._metrics.api_rate_limited.labels(system=SYSTEM, policy=policy).inc()
                if isinstance(refused, RetriableError) and refused.retry_after is not None:
                    # The window closes to the process's calls, seen wanted (`cdc.budget.limiter`, step 4);
                    # only a window the call counts against (the journal's, exempt, close none).
                    counted = self.budget.limits.kinds[hubspot_kind(endpoint.exemptions)]
                    windows = tuple(name for name in _WINDOWS[policy] if name in counted)
                    refused.retry_after = self.budget.throttled(windows, refused.retry_after)
            raise refused
        if not isinstance(answer, dict):
            raise FatalError(
                f"HubSpot {template} answered {status} with a non-object body", endpoint=template
            )
        return answer


_WINDOWS = {
    "TEN_SECONDLY_ROLLING": ("ten_secondly",),
    "unnamed": ("ten_secondly",),
    "SECONDLY": ("search",),
    "DAILY": ("daily",),
}
"""The budget's windows (`cdc.budget.windows.hubspot_limits`) a 429's policy closes."""


def _policy(name: object) -> str:
    """A 429's ``policyName`` as a bounded label."""
    known = {"TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"}
    return str(name) if name in known else "unnamed"


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def hubspot_client(
    settings: HubSpotSettings,
    metrics: Metrics,
    *,
    command: str,
    policy: RetryPolicy | None = None,
    budget: Budget | None = None,
) -> HubSpotClient:
    """The client of one role (``command`` names it in a missing setting's error) with its one token
    provider, by ``hubspot.auth`` (`cdc.hubspot.tokens.token_source`): every task of the role shares both,
    so no two of them refresh the token at once."""
    return HubSpotClient(
        settings.base_url,
        token_source(settings, metrics, command=command),
        metrics=metrics,
        policy=policy,
        budget=budget or budget_for(SYSTEM) or Budget(hubspot_limits(settings), metrics=metrics),
        version=settings.api_version,
    )
