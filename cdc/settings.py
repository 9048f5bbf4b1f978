"""The one settings tree: built once in ``main`` from a YAML file and ``CDC_`` environment variables.

Precedence, highest first: environment (``CDC_KAFKA__BOOTSTRAP_SERVERS``; ``__`` descends a level), then
the YAML file (``--config FILE`` or ``CDC_CONFIG``), then the defaults. Anything wrong, including an
unknown ``CDC_`` variable (a typo would otherwise be ignored silently), is one :class:`SettingsError`
whose message names the setting, its environment variable and what to write instead.

An error never shows a value that may be a credential: none of a section that holds one (a model with a
``SecretStr`` field: ``hubspot``, ``dataverse``, ``kafka``; a token put under a misspelt key there is still
a token), none of a key named like a secret, and nowhere a value that looks like a token (`looks_secret`).
"""

from __future__ import annotations

import difflib
import os
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from cdc._redact import looks_secret, scrub, secret_name
from streams.config import KafkaSettings

ENV_PREFIX = "CDC_"
NESTING = "__"
# Variables read outside this tree (the config file's path, the local Kafka runner's jar cache).
OTHER_ENV = frozenset({"CDC_CONFIG", "CDC_KAFKA_CACHE"})


class SettingsError(ValueError):
    """The configuration is wrong; the message says where and how to fix it."""


class LogSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["console", "json"] = Field(
        default="console", description="console for people, json for log shippers."
    )


def _digits_as_text(value: object) -> object:
    """A portal id is a number to HubSpot and in YAML (`portal_id: 12345678`); it is kept as its digits."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


HubSpotApiVersion = Literal["2026-09", "2026-03", "legacy"]
"""The HubSpot API versions the daemon speaks (`cdc.hubspot.paths.endpoints`): the date-based 2026-09 and
2026-03, or ``legacy`` (CRM v3 objects, properties and owners, v4 associations, webhooks v3)."""
DEFAULT_HUBSPOT_API_VERSION: HubSpotApiVersion = "2026-09"
"""The newest version whose paths HubSpot's pages confirm (the migration guide points at 2026-09, GA on
2026-09-08); its answers' unconfirmed shapes (a batch's errors folded into a 200) are read either way."""


HubSpotAuthKind = Literal["static", "oauth", "client_credentials"]


class HubSpotAuthSettings(BaseModel):
    """How the daemon gets the bearer token of its HubSpot calls (`cdc.hubspot.tokens`).

    - ``static``: ``hubspot.token`` as it is: a project app's static token (Auth tab), a service key, or a
      legacy private app's token.
    - ``oauth``: a project app with OAuth: access tokens (30 minutes) from ``refresh_token`` with
      ``client_id`` and ``hubspot.client_secret``, renewed before they expire and once on a 401.
    - ``client_credentials``: tokens for ``scopes`` from ``client_id`` and ``hubspot.client_secret`` alone,
      asked for again when they expire (HubSpot documents the grant for the Webhooks Journal).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: HubSpotAuthKind = Field(
        default="static",
        description="static (hubspot.token), oauth (refresh token) or client_credentials (scopes).",
    )
    client_id: str | None = Field(default=None, description="The app's client id (Auth tab), for oauth.")
    refresh_token: SecretStr | None = Field(
        default=None,
        description="The refresh token the app's installation gave (oauth): the authorization code "
        "exchanged once at the token endpoint.",
    )
    scopes: tuple[str, ...] = Field(
        default=(), description="client_credentials: the scopes to ask for (each one the app has)."
    )


HubSpotTier = Literal["free", "starter", "professional", "enterprise"]


class HubSpotLimits(BaseModel):
    """HubSpot's API limits for this deployment (`cdc.budget`): by default the app kind's and the tier's
    (fact sheet hubspot_2026.md §6); any number can be set instead."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tier: HubSpotTier = Field(
        default="professional", description="The portal's tier: free, starter, professional, enterprise."
    )
    limit_increase_packs: int = Field(
        default=0,
        ge=0,
        le=2,
        description="API Limit Increase packs bought (250 per 10 s; +1,000,000 a day each).",
    )
    marketplace: bool = Field(
        default=False,
        description="The app is an OAuth app distributed on the Marketplace (110 per 10 s per installing "
        "account, no Limit Increase); otherwise privately distributed, whatever its auth.",
    )
    burst: int | None = Field(
        default=None, ge=1, description="Calls per window for the app; default by distribution and tier."
    )
    window_s: float = Field(default=10.0, gt=0, description="The burst window (HubSpot: a rolling 10 s).")
    daily: int | None = Field(
        default=None, ge=1, description="Calls per day for the account; default by tier."
    )
    search_per_second: int = Field(default=5, ge=1, description="Search calls per second per account.")
    daily_cap: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="The fraction of the daily limit left to other integrations: above the rest, the sync "
        "slows to fit.",
    )


class HubSpotSettings(BaseModel):
    """The HubSpot portal and the app the daemon runs as."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str = Field(default="https://api.hubapi.com", description="CRM API base URL.")
    token: SecretStr | None = Field(
        default=None,
        description="A static bearer token (hubspot.auth.kind static): a project app's static token, a "
        "service key, or a legacy private app's token.",
    )
    auth: HubSpotAuthSettings = HubSpotAuthSettings()
    app_id: int | None = Field(default=None, description="The app's id: webhooks of its own writes carry it.")
    client_secret: SecretStr | None = Field(
        default=None,
        description="The app's client secret: webhook signatures, and the token endpoint (hubspot.auth).",
    )
    portal_id: Annotated[str, BeforeValidator(_digits_as_text)] | None = Field(
        default=None,
        description="The portal (hub) id: the tenant in keys and checkpoints; `cdc ingest` refuses webhook "
        "events of any other portal.",
    )
    api_version: HubSpotApiVersion = Field(
        default=DEFAULT_HUBSPOT_API_VERSION,
        description="The API version every call uses: 2026-09, 2026-03, or legacy (v3 objects and v4 "
        "associations; v4 is unsupported from 2027-03-30, v3 from September 2027).",
    )
    developer_api_key: SecretStr | None = Field(
        default=None,
        description="A legacy public app's developer API key: `cdc provision` manages the app's webhook "
        "subscriptions with it (webhooks API, hapikey). Project apps keep theirs in the project's files "
        "(`cdc provision --hubspot-project`).",
    )
    change_sources: Literal["webhooks", "journal", "both"] | None = Field(
        default=None,
        description="Where HubSpot changes come from: webhooks (`cdc ingest`, with the search reconciler in "
        "`cdc poll` catching what they miss), journal (`cdc poll` reads the Webhooks Journal; no public "
        "endpoint needed), or both (webhooks for the lowest latency, the journal filling their gaps). Unset: "
        "both for a project app with OAuth or client credentials, webhooks for any other app.",
    )
    app_kind: Literal["project", "legacy"] = Field(
        default="project",
        description="project: a developer-platform app, whose webhooks are taken with a v3 signature only. "
        "legacy: a legacy app, which may sign CRM webhooks with v1 only; v1/v2 signatures are taken too, "
        "though they carry no timestamp, so a captured request can be replayed for ever.",
    )

    limits: HubSpotLimits = HubSpotLimits()

    @model_validator(mode="after")
    def _one_kind_of_credentials(self) -> Self:
        """Each kind's settings, and none of another kind's: a refresh token left beside a static token
        would otherwise be ignored without a word."""
        problem = _auth_problem(self.auth, token=_given(self.token), secret=_given(self.client_secret))
        if problem:
            raise ValueError(problem)
        return self

    @property
    def sources(self) -> Literal["webhooks", "journal", "both"]:
        """``change_sources``, or its default for this app (its description)."""
        if self.change_sources is not None:
            return self.change_sources
        journal_app = self.app_kind == "project" and self.auth.kind in {"oauth", "client_credentials"}
        return "both" if journal_app else "webhooks"

    @property
    def has_credentials(self) -> bool:
        """Whether the daemon can call HubSpot: a static token, or an app's OAuth or client credentials
        (complete, by :meth:`_one_kind_of_credentials`)."""
        return self.auth.kind != "static" or _given(self.token)


def _auth_problem(auth: HubSpotAuthSettings, *, token: bool, secret: bool) -> str | None:
    """What is wrong with ``hubspot.auth`` beside a static ``token`` and the app's client ``secret``."""
    prefix = "hubspot.auth"
    if auth.kind == "static":
        stray = [n for n in ("client_id", "refresh_token") if getattr(auth, n) is not None]
        stray += ["scopes"] if auth.scopes else []
        if not stray:
            return None
        return (
            f"{', '.join(f'{prefix}.{n}' for n in stray)} belong to hubspot.auth.kind oauth or "
            "client_credentials; set the kind, or remove them to use hubspot.token"
        )
    if token:
        return (
            f"hubspot.token is a static token, but {prefix}.kind is {auth.kind}: the access tokens come "
            "from the token endpoint; remove hubspot.token, or set the kind to static"
        )
    oauth = auth.kind == "oauth"
    if oauth and auth.scopes:
        return (
            f"{prefix}.scopes belong to client_credentials: an OAuth token has the scopes the app was "
            "installed with"
        )
    if not oauth and auth.refresh_token is not None:
        return f"{prefix}.refresh_token belongs to kind oauth, not client_credentials"
    wanted = {
        f"{prefix}.client_id (CDC_HUBSPOT__AUTH__CLIENT_ID)": bool(auth.client_id),
        "hubspot.client_secret (CDC_HUBSPOT__CLIENT_SECRET)": secret,
    }
    if oauth:
        wanted[f"{prefix}.refresh_token (CDC_HUBSPOT__AUTH__REFRESH_TOKEN)"] = _given(auth.refresh_token)
    else:
        wanted[f"{prefix}.scopes (CDC_HUBSPOT__AUTH__SCOPES, a JSON list)"] = bool(auth.scopes)
    missing = [name for name, given in wanted.items() if not given]
    return f"{prefix}.kind {auth.kind} needs {', '.join(missing)}" if missing else None


def _given(secret: SecretStr | None) -> bool:
    """A secret counts as set when it is not empty (an empty variable is not a credential)."""
    return secret is not None and bool(secret.get_secret_value())


class ProxySettings(BaseModel):
    """An HTTP proxy that tunnels HTTPS (``CONNECT``), as corporate networks put in front of the internet.

    The URL carries no credentials: they are settings of their own, the password a ``SecretStr``, so they
    never appear in a log line, an error or ``repr``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(description="The proxy, http://host:port (an HTTP proxy; HTTPS goes through CONNECT).")
    username: str | None = Field(default=None, description="Basic proxy authentication: the user.")
    password: SecretStr | None = Field(default=None, description="Basic proxy authentication: the password.")

    @field_validator("url")
    @classmethod
    def _http_proxy(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError("must be an http:// URL with a host, e.g. http://proxy.example.com:3128")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials: set proxy.username and proxy.password instead")
        if parts.path not in {"", "/"} or parts.query or parts.fragment:
            raise ValueError("must be scheme, host and port only")
        try:
            parts.port  # noqa: B018 -- urlsplit checks the port only when it is read
        except ValueError:
            raise ValueError("has an invalid port") from None
        return url

    @model_validator(mode="after")
    def _both_or_none(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("set proxy.username and proxy.password together (Basic proxy authentication)")
        return self


class DataverseLimits(BaseModel):
    """Dataverse's service protection limits per user and web server (fact sheet dataverse.md §4), which the
    whole deployment shares: it calls as one application user (`cdc.budget`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(default=6000, ge=1, description="Requests per window.")
    window_s: float = Field(default=300.0, gt=0, description="The sliding window (5 minutes).")
    execution_s: float = Field(
        default=1200.0, gt=0, description="Combined execution time per window, in seconds."
    )
    concurrent: int = Field(default=52, ge=1, description="Concurrent requests.")


class DataverseSettings(BaseModel):
    """The Dataverse (Dynamics 365) org and the app registration the daemon authenticates as.

    The app proves who it is with a client secret or with a certificate (``client_certificate_path``):
    exactly one of the two (many tenants forbid secrets). A certificate's PEM holds the private key and
    the certificate; with the key alone, ``client_certificate_thumbprint`` names the certificate uploaded
    to the app registration. Requests to the org and to the identity provider go through ``proxy`` when
    set, else, with ``trust_env``, through ``HTTPS_PROXY`` unless ``NO_PROXY`` names the host."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str | None = Field(default=None, description="Org URL, e.g. https://contoso.crm.dynamics.com.")
    api_version: str = "v9.2"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_certificate_path: Path | None = Field(
        default=None,
        description="PEM file with the app registration's certificate and its private key (instead of a "
        "client secret).",
    )
    client_certificate_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase of an encrypted private key in client_certificate_path."
    )
    client_certificate_thumbprint: str | None = Field(
        default=None,
        description="SHA-1 thumbprint (hex, as the Azure portal shows it) of the registered certificate; "
        "needed only when the PEM holds the private key alone.",
    )
    authority: str | None = Field(
        default=None, description="OAuth authority; default https://login.microsoftonline.com/<tenant_id>."
    )
    scope: str | None = Field(default=None, description="Token scope; default <base_url>/.default.")
    ca_bundle: Path | None = Field(default=None, description="Extra CA bundle to trust (the sandbox's).")
    request_timeout_s: float = Field(default=30.0, gt=0)
    proxy: ProxySettings | None = Field(
        default=None, description="HTTP proxy for the Web API and the token endpoint."
    )
    limits: DataverseLimits = DataverseLimits()
    trust_env: bool = Field(
        default=False,
        description="Without proxy: use HTTPS_PROXY / NO_PROXY from the environment for both.",
    )

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        certificate = self.client_certificate_path is not None
        if _given(self.client_secret) and certificate:
            raise ValueError(
                "set dataverse.client_secret or dataverse.client_certificate_path, not both: the app "
                "registration is authenticated with one credential"
            )
        if not certificate and (
            _given(self.client_certificate_passphrase) or self.client_certificate_thumbprint
        ):
            raise ValueError(
                "dataverse.client_certificate_passphrase and client_certificate_thumbprint belong to "
                "dataverse.client_certificate_path, which is not set"
            )
        if self.proxy is not None and self.trust_env:
            raise ValueError(
                "set dataverse.proxy or dataverse.trust_env, not both: proxy names the proxy itself, "
                "trust_env takes it from HTTPS_PROXY / NO_PROXY"
            )
        return self

    @property
    def uses_certificate(self) -> bool:
        return self.client_certificate_path is not None


class PollSettings(BaseModel):
    """`cdc poll`: the Dataverse change-tracking poller and the HubSpot reconciler.

    What is polled follows from the enabled sync steps (the ``sync.config`` file `cdc sync` runs, else the
    default steps; `cdc.sources.polled`): every table and object type a step syncs. ``dataverse_tables`` and
    ``hubspot_objects`` override that; an override must name everything the enabled steps sync, and an
    empty list turns that part off. A part runs when its system is configured too: Dataverse with
    ``dataverse.base_url``, HubSpot with its credentials (``hubspot.token`` or ``hubspot.auth``). Replicas
    share the tables through the ``<prefix>poll`` consumer group (`cdc.roles.leases`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataverse_tables: tuple[str, ...] | None = Field(
        default=None,
        description="Entity sets to poll for changes; default: every table an enabled sync step syncs.",
    )
    dataverse_interval_s: float = Field(
        default=2.0, gt=0, description="Delay between delta polls of a table."
    )
    dataverse_page_size: int = Field(default=5000, ge=1, le=5000, description="Prefer: odata.maxpagesize.")
    dataverse_select: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Entity set -> columns to $select; a table not listed is read with all its columns.",
    )
    hubspot_objects: tuple[str, ...] | None = Field(
        default=None,
        description="Object types the reconciler pages; default: every one an enabled sync step syncs.",
    )
    dataverse_recheck_s: float = Field(
        default=60.0,
        gt=0,
        description="How often a table without change tracking is checked again (polled once it has it).",
    )
    hubspot_interval_s: float = Field(default=60.0, gt=0, description="Delay between reconciler passes.")
    hubspot_journal_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="How long the Webhooks Journal source waits when it has read everything (journal reads "
        "count against no HubSpot rate limit).",
    )
    hubspot_lookback_s: float = Field(
        default=300.0,
        ge=0,
        description="Each pass starts this far before the cursor: search lags behind writes.",
    )
    hubspot_deletes_interval_s: float = Field(
        default=900.0,
        ge=0,
        description="How often the reconciler looks for linked records HubSpot archived without a webhook "
        "reaching us (lists archived records; 0 turns it off).",
    )
    hubspot_properties: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Properties the reconciler reads per object type; types not named get the defaults.",
    )
    host: str = Field(default="127.0.0.1", description="Where `cdc poll` serves /metrics, /healthz, /readyz.")
    port: int = Field(default=8081, ge=0, le=65535, description="Its port (ingest has 8080).")
    shutdown_grace_s: float = Field(
        default=15.0,
        gt=0,
        description="A table being stopped (shutdown, or handed to another replica) may finish its page "
        "this long before it is cancelled.",
    )
    lease_session_timeout_s: float = Field(
        default=10.0,
        ge=6,
        le=300,
        description="A replica that stops heart-beating this long loses its tables to the others "
        "(brokers refuse under 6 s by default: group.min.session.timeout.ms).",
    )


class IngestSettings(BaseModel):
    """The webhook receiver (`cdc ingest`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="Larger bodies are answered 413.")
    publish_deadline_s: float = Field(
        default=4.0,
        gt=0,
        lt=5,
        description="Kafka must acknowledge within this, else 503 (HubSpot waits 5 s).",
    )
    public_url: str | None = Field(
        default=None, description="The webhook URL as HubSpot calls it, when a proxy changes scheme or host."
    )
    trust_forwarded_headers: bool = Field(
        default=False, description="Take scheme and host from X-Forwarded-* (only behind a trusted proxy)."
    )
    clock_skew_s: float = Field(
        default=60.0,
        ge=0,
        le=300,
        description="A v3 timestamp may be this far ahead of our clock; later -> 401 (our rule: HubSpot "
        "documents only that a timestamp older than 5 minutes is refused).",
    )
    max_events_per_request: int = Field(
        default=100, ge=1, description="More events in one request -> 413 (HubSpot sends at most 100)."
    )
    read_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="A request's headers must arrive within this of its first byte (or of the connection "
        "opening), then its body within this again; else the connection is closed (slow body: 408). "
        "HubSpot gives up after 5 s.",
    )
    max_concurrent_requests: int = Field(
        default=64,
        ge=1,
        description="Signed webhook requests being published at once; more -> 503 (HubSpot retries). "
        "Requests still being read do not count: anyone can open those (read_timeout_s bounds them).",
    )
    shutdown_grace_s: float = Field(
        default=10.0, gt=0, description="In-flight requests may finish this long."
    )


def default_state_dir() -> Path:
    """The per-user data directory (XDG), for state a replica can rebuild."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "cdc"


class SyncSettings(BaseModel):
    """The sync role (`cdc sync`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: Path | None = Field(
        default=None, description="Sync configuration YAML; default: the seeds' set-up."
    )
    group_prefix: str = Field(
        default="cdc-", description="Consumer groups: <prefix>sync-route, <prefix>sync-apply."
    )
    batch_size: int = Field(
        default=500,
        ge=1,
        le=1000,
        description="Work items per batch at most: its reads, lookups and writes go 100 records a call "
        "(the CRMs' batch limit), per system and object type, so a batch of several hundred fills them.",
    )
    batch_wait_ms: int = Field(
        default=50,
        ge=0,
        le=1000,
        description="The longest a part-full batch waits for more while a backlog is arriving; an idle loop "
        "hands a batch on at once (streams.batching).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8082, ge=0, le=65535, description="/metrics, /healthz, /readyz.")
    dry_run: bool = Field(default=False, description="Plan and audit writes without performing them.")
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Where the replica keeps its link store (links-<topic>.sqlite3, rebuilt from the links "
        "topic when missing: nothing to back up); default: $XDG_DATA_HOME/cdc or ~/.local/share/cdc.",
    )
    shutdown_grace_s: float = Field(default=10.0, gt=0)
    loop_failures_max: int = Field(
        default=5,
        ge=1,
        description="A loop (links, route, apply) failing unexpectedly this many times within "
        "loop_failures_window_s ends `cdc sync` with exit code 70, for its supervisor to restart it; "
        "fewer failures are restarted in place with backoff.",
    )
    loop_failures_window_s: float = Field(
        default=600.0, gt=0, description="The window loop_failures_max counts failures in."
    )
    owners_refresh_s: float = Field(
        default=600.0,
        ge=1,
        description="`lookup: owner`: the HubSpot owner and Dataverse user lists are read again this often "
        "(and at most every 30 s when a record names someone not in them).",
    )
    options_refresh_s: float = Field(
        default=300.0,
        ge=1.0,
        description="How often the labels of `live: true` option sets are read again from both CRMs.",
    )


class BudgetSettings(BaseModel):
    """The API budget every process of the deployment shares (`cdc.budget`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(
        default=True,
        description="Wait for budget before each call; off, only the 429s' retries slow the calls down.",
    )
    share: bool = Field(
        default=True,
        description="Share the budget with the other processes through the `<prefix>budget` topic; off, "
        "each process takes the whole limit.",
    )
    report_interval_s: float = Field(default=1.0, gt=0, description="How often a process reports its use.")
    stale_after_s: float = Field(
        default=5.0, gt=0, description="A process that has not reported for this long is gone."
    )


class AdminSettings(BaseModel):
    """`cdc admin`, the sync health page (`cdc.admin`): who may log in, where it listens, its sessions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(default="127.0.0.1", description="Where the page listens: localhost unless told.")
    port: int = Field(default=8083, ge=0, le=65535)
    users: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="User name -> password hash, as `cdc admin hash-password` prints it.",
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs the session cookies; every replica needs the same one (unset: a random one per "
        "process, so a session lasts as long as the process and holds on one replica only).",
    )
    session_max_age_s: int = Field(
        default=8 * 3600, ge=60, description="A session expires this long after login."
    )
    secure_cookies: bool = Field(
        default=True, description="Cookies only over HTTPS; off only for a plain-HTTP localhost (the demo)."
    )
    login_attempts: int = Field(default=5, ge=1, description="Failed logins per address per window.")
    login_window_s: float = Field(default=300.0, gt=0, description="The failed-login window.")


class Settings(BaseSettings):
    """Everything the daemon can be told. Frozen: nothing changes it after start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTING,
        frozen=True,
        extra="forbid",
        case_sensitive=False,
    )

    kafka: KafkaSettings = KafkaSettings()
    hubspot: HubSpotSettings = HubSpotSettings()
    dataverse: DataverseSettings = DataverseSettings()
    ingest: IngestSettings = IngestSettings()
    poll: PollSettings = PollSettings()
    sync: SyncSettings = SyncSettings()
    budget: BudgetSettings = BudgetSettings()
    admin: AdminSettings = AdminSettings()
    log: LogSettings = LogSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],  # noqa: ARG003 -- part of the hook's signature
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003 -- no .env files: one settings tree
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init values; the environment overrides it.
        return env_settings, init_settings


def _field_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        yield path
        for sub in _models_in(info.annotation):  # a section that may be left out too (``X | None``)
            yield from _field_paths(sub, path)


def env_name(path: tuple[str | int, ...]) -> str:
    return ENV_PREFIX + NESTING.join(str(part) for part in path).upper()


def unknown_env(environ: Mapping[str, str]) -> list[str]:
    """``CDC_`` variables that name no setting, each with a suggestion when one is close."""
    known = {env_name(path) for path in _field_paths(Settings)} | OTHER_ENV
    problems = []
    for name in sorted(environ):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        close = difflib.get_close_matches(upper, sorted(known), n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name} is not a setting{hint}")
    return problems


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type):
        return [annotation] if issubclass(annotation, BaseModel) else []
    if typing.get_origin(annotation) in {typing.Union, types.UnionType}:
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _is_secret(annotation: object) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, SecretStr)
    return any(_is_secret(arg) for arg in typing.get_args(annotation))


def credential_sections(
    model: type[BaseModel] = Settings, prefix: tuple[str, ...] = ()
) -> frozenset[tuple[str, ...]]:
    """Paths of the sections that hold a credential (a ``SecretStr`` field): nothing under them is shown."""
    found: set[tuple[str, ...]] = set()
    if any(_is_secret(info.annotation) for info in model.model_fields.values()):
        found.add(prefix)
    for name, info in model.model_fields.items():
        for sub in _models_in(info.annotation):
            found |= credential_sections(sub, (*prefix, name))
    return frozenset(found)


def _why_hidden(location: tuple[str, ...], value: str) -> str | None:
    """Why the value given at ``location`` must not be shown, or None when it may be."""
    for section in sorted(credential_sections()):
        if location[: len(section)] == section:
            return f"{'.'.join(section)} holds credentials"
    if any(secret_name(part) for part in location):
        return "the name says it is a secret"
    if looks_secret(value):
        return "it looks like a token"
    return None


def _describe(error: ValidationError, source_file: Path | None) -> str:
    lines = []
    for item in error.errors():
        location = tuple(str(part) for part in item["loc"])
        dotted = ".".join(location) or "settings"
        where = f"{dotted} ({env_name(location)}"
        where += f" or {source_file})" if source_file else ")"
        got = item.get("input")
        shown = ""
        if not isinstance(got, dict) and got is not None:
            # Never echo what may be a secret, even a wrong one or one under a misspelt key.
            text = str(got)
            hidden = _why_hidden(location, text)
            shown = f"; got {text[:80]!r}" if hidden is None else f" (value not shown: {hidden})"
        lines.append(f"{where}: {scrub(item['msg'])}{shown}")
    return "invalid settings: " + "; ".join(lines)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"config file {path} is not valid YAML: {_yaml_problem(error)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingsError(f"config file {path} must hold a mapping at the top, not {type(loaded).__name__}")
    return loaded


def _yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where, without the quoted line PyYAML adds (it may hold a token)."""
    if not isinstance(error, yaml.MarkedYAMLError):
        return type(error).__name__
    parts = []
    for text, mark in ((error.context, error.context_mark), (error.problem, error.problem_mark)):
        if text:
            place = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            parts.append(scrub(text) + place)
    return "; ".join(parts) or type(error).__name__


def require(value: object, path: str, command: str) -> None:
    """Fail with the setting's name and variable when a command needs a setting that is not set."""
    if value is None or value == "":
        variable = env_name(tuple(path.split(".")))
        raise SettingsError(f"{path} ({variable}) is required by `cdc {command}`")


def load_settings(config_file: Path | None = None) -> Settings:
    """Build the settings tree from ``os.environ`` and the YAML file, or raise :class:`SettingsError`."""
    if config_file is None and os.environ.get("CDC_CONFIG"):
        config_file = Path(os.environ["CDC_CONFIG"])
    problems = unknown_env(os.environ)
    if problems:
        raise SettingsError("; ".join(problems))
    values = _read_yaml(config_file) if config_file else {}
    try:
        return Settings(**values)
    except ValidationError as error:
        raise SettingsError(_describe(error, config_file)) from None
    except SourceError as error:
        # A section set from one variable (CDC_HUBSPOT='{...}') that is not JSON; the message names the
        # field and the source, never the value.
        raise SettingsError(
            f"{scrub(str(error))}: a section set by one variable takes a JSON object"
        ) from None
