"""The whole pipeline for end-to-end sync tests: sandbox CRMs, `cdc ingest`, the Dataverse poller and
`cdc sync`, on a real Kafka, all in this event loop. Records are edited through the sandboxes' admin APIs,
as a user would in the CRM's UI, and read back the same way."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from cdc.dataverse.poller import dataverse_tables, run_dataverse_poller
from cdc.metrics import Metrics
from cdc.provisioning.run import enable_change_tracking, provision_sandbox
from cdc.roles.ingest import run_ingest
from cdc.roles.poll import run_poll
from cdc.roles.sync import run_sync
from cdc.sandbox.runner import Sandbox, run_sandbox
from cdc.settings import PollSettings, ProxySettings, Settings, SyncSettings
from consumers.config import SyncConfig
from consumers.loader import standard_fields_config
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog

T = TypeVar("T")


def small_config(**step_updates: Any) -> SyncConfig:
    """The small two-way configuration; ``step_updates`` merge into every step (e.g. ``conflict=...``)."""
    raw = standard_fields_config().model_dump(mode="json")
    raw["steps"] = [{**step, **step_updates} for step in raw["steps"]]
    return SyncConfig.model_validate(raw)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def role_env(settings: Settings) -> dict[str, str]:
    """The environment a `cdc` role process needs for these settings (``CDC_*`` only, plus PATH & co)."""
    hub, dv, kafka = settings.hubspot, settings.dataverse, settings.kafka
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDC_")}
    env.update(
        {
            "CDC_LOG__LEVEL": "WARNING",
            "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "CDC_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
            "CDC_KAFKA__PARTITIONS": str(kafka.partitions),
            "CDC_HUBSPOT__BASE_URL": hub.base_url,
            "CDC_HUBSPOT__APP_ID": str(hub.app_id),
            "CDC_HUBSPOT__CLIENT_SECRET": _secret(hub.client_secret),
            "CDC_HUBSPOT__PORTAL_ID": str(hub.portal_id),
            "CDC_HUBSPOT__API_VERSION": hub.api_version,
            "CDC_DATAVERSE__BASE_URL": str(dv.base_url),
            "CDC_DATAVERSE__TENANT_ID": str(dv.tenant_id),
            "CDC_DATAVERSE__CLIENT_ID": str(dv.client_id),
            "CDC_DATAVERSE__AUTHORITY": str(dv.authority),
            "CDC_DATAVERSE__SCOPE": str(dv.scope),
            "CDC_DATAVERSE__CA_BUNDLE": str(dv.ca_bundle),
            "CDC_SYNC__GROUP_PREFIX": settings.sync.group_prefix,
            "CDC_SYNC__CONFIG": str(settings.sync.config or ""),
            "CDC_SYNC__PORT": "0",
            "CDC_SYNC__STATE_DIR": str(settings.sync.state_dir),
            "CDC_INGEST": settings.ingest.model_dump_json(),
            "CDC_POLL": settings.poll.model_dump_json(),
        }
    )
    if hub.auth.kind == "static":
        env["CDC_HUBSPOT__TOKEN"] = _secret(hub.token)
    else:  # the sandbox's OAuth app, as `Sandbox.daemon_settings` configures it
        env["CDC_HUBSPOT__AUTH__KIND"] = hub.auth.kind
        env["CDC_HUBSPOT__AUTH__CLIENT_ID"] = str(hub.auth.client_id)
        env["CDC_HUBSPOT__AUTH__REFRESH_TOKEN"] = _secret(hub.auth.refresh_token)
    if dv.client_certificate_path is not None:
        env["CDC_DATAVERSE__CLIENT_CERTIFICATE_PATH"] = str(dv.client_certificate_path)
    else:
        env["CDC_DATAVERSE__CLIENT_SECRET"] = _secret(dv.client_secret)
    if dv.proxy is not None:
        env["CDC_DATAVERSE__PROXY__URL"] = dv.proxy.url
        if dv.proxy.username is not None:
            env["CDC_DATAVERSE__PROXY__USERNAME"] = dv.proxy.username
            env["CDC_DATAVERSE__PROXY__PASSWORD"] = _secret(dv.proxy.password)
    return env


def stack_settings(
    kafka: KafkaSettings,
    box: Sandbox,
    *,
    tables: tuple[str, ...] | None,
    config_file: Path | None = None,
    certificate: bool = False,
    proxy: ProxySettings | None = None,
) -> Settings:
    """``tables`` None: `cdc poll` polls what the configuration's enabled steps sync, as in production.
    ``certificate``: Dataverse with the app's certificate instead of its secret; ``proxy``: through it."""
    settings = box.daemon_settings(
        kafka,
        poll=PollSettings(port=0, dataverse_tables=tables, dataverse_interval_s=0.3),
        certificate=certificate,
    )
    sync = SyncSettings(port=0, group_prefix=f"{kafka.topic_prefix}g-", config=config_file)
    dataverse = settings.dataverse.model_copy(update={"proxy": proxy})
    return settings.model_copy(update={"sync": sync, "dataverse": dataverse})


def write_config(config: SyncConfig) -> Path:
    """The configuration as a YAML file, for `cdc` processes (``sync.config``)."""
    path = Path(tempfile.mkdtemp(prefix="cdc-sync-")) / "sync.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude_defaults=True)))
    return path


@dataclass
class Stack:
    box: Sandbox
    settings: Settings
    metrics: Metrics
    hs: httpx.AsyncClient
    dv: httpx.AsyncClient
    config: SyncConfig
    _sync: tuple[asyncio.Event, asyncio.Task[None]] | None = None
    _replicas: list[asyncio.subprocess.Process] = field(default_factory=list)
    _roles: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)
    """Base URL serving ``/metrics`` per running role: ``ingest``, ``sync`` and, when it runs, ``poll``
    (only `cdc poll` serves one; the bare Dataverse poller of a stack without ``reconcile`` does not)."""

    @property
    def webhook_url(self) -> str:
        """Where `cdc ingest` receives HubSpot webhooks."""
        return f"{self.urls['ingest']}/webhooks/hubspot"

    async def add_replica(self) -> int:
        """Another `cdc sync`, a real process in the same groups (a rebalance); its index, to kill it.
        It reads the stack's configuration from ``sync.config``, as `cdc poll` does."""
        self._replicas.append(await _spawn("sync", env=self._env))
        return len(self._replicas) - 1

    @property
    def _env(self) -> dict[str, str]:
        return role_env(self.settings)

    async def start_role(self, role: str) -> None:
        """`cdc ingest` or `cdc poll` as a real process (the stack's ``processes=True``); ingest listens on
        the port the sandbox's webhooks were pointed at, so a restarted one takes the retries."""
        self._roles[role] = await _spawn(role, env=self._env)
        if role == "ingest":
            ready = f"{self.urls['ingest']}/readyz"
            async with httpx.AsyncClient(timeout=2) as client:

                async def up() -> bool:
                    with contextlib.suppress(httpx.TransportError):
                        return (await client.get(ready)).status_code == 200
                    return False

                await eventually(up, within=60, what="cdc ingest to be ready")

    async def kill_role(self, role: str, *, restart: bool = True) -> None:
        """kill -9 `cdc ingest` or `cdc poll` (no shutdown at all), then start it again (or not)."""
        process = self._roles.pop(role)
        process.kill()
        await process.wait()
        if restart:
            await self.start_role(role)

    async def stop_roles(self) -> None:
        await _stop(list(self._roles.values()))
        self._roles.clear()

    async def kill_replica(self, n: int, *, restart: bool = True) -> None:
        """kill -9 a replica mid-flight (no shutdown at all), then start a new one (or not)."""
        process = self._replicas.pop(n)
        process.kill()
        await process.wait()
        if restart:
            await self.add_replica()

    async def stop_replicas(self) -> None:
        await _stop(self._replicas)
        self._replicas.clear()

    async def write_calls(self) -> int:
        """Data-changing API calls both sandboxes counted (every replica's writes, in or out of process)."""
        total = 0
        for snapshot in (await self.calls()).values():
            for endpoint, n in snapshot["by_endpoint"].items():
                method = endpoint.split(" ", 1)[0]
                reading = "/batch/read" in endpoint or "/search" in endpoint or method == "GET"
                if not reading and "token" not in endpoint:
                    total += int(n)
        return total

    async def start_sync(self, *, group_prefix: str | None = None, metrics: Metrics | None = None) -> None:
        """Start `cdc sync` (again); a new ``group_prefix`` re-reads every change from the start."""
        settings = self.settings
        if group_prefix is not None:
            sync = settings.sync.model_copy(update={"group_prefix": group_prefix})
            settings = settings.model_copy(update={"sync": sync})
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(
            run_sync(
                settings, stop, metrics=metrics or self.metrics, config=self.config, on_ready=ready.set_result
            )
        )
        self._sync = (stop, task)
        await asyncio.wait([ready, task], timeout=60, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if task.done():
            task.result()
        assert ready.done(), "cdc sync did not start within 60 s"
        self.urls["sync"] = ready.result()

    async def stop_sync(self) -> None:
        if self._sync is not None:
            stop, task = self._sync
            self._sync = None
            stop.set()
            await asyncio.wait_for(task, 30)

    async def calls(self) -> dict[str, Any]:
        """API calls counted by both sandboxes since the last reset."""
        return {
            "hubspot": (await self.hs.get("/_admin/calls")).json(),
            "dataverse": (await self.dv.get("/_admin/calls")).json(),
        }

    # -- HubSpot, as a user ------------------------------------------------------------------------
    async def hs_create(self, object_type: str, properties: dict[str, Any]) -> str:
        answer = await self.hs.post(f"/_admin/objects/{object_type}", json={"properties": properties})
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["id"])

    async def hs_update(self, object_type: str, object_id: str, properties: dict[str, Any]) -> None:
        answer = await self.hs.patch(
            f"/_admin/objects/{object_type}/{object_id}", json={"properties": properties}
        )
        assert answer.status_code == 200, answer.text

    async def hs_all(self, object_type: str) -> list[dict[str, Any]]:
        answer = await self.hs.get(f"/_admin/objects/{object_type}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return list(body["results"] if isinstance(body, dict) else body)

    async def hs_associate(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        """A primary association, as a user sets a contact's company."""
        answer = await self.hs.post(
            "/_admin/associations",
            json={
                "fromType": from_type,
                "fromId": from_id,
                "toType": to_type,
                "toId": to_id,
                "primary": True,
            },
        )
        assert answer.status_code in (200, 201, 204), answer.text

    async def hs_delete(self, object_type: str, object_id: str) -> None:
        answer = await self.hs.delete(f"/_admin/objects/{object_type}/{object_id}")
        assert answer.status_code == 204, answer.text

    async def hs_merge(self, object_type: str, primary_id: str, merged_id: str) -> str:
        """Merge ``merged_id`` into ``primary_id``, as a user does in HubSpot; the survivor's (new) id."""
        answer = await self.hs.post(
            f"/_admin/objects/{object_type}/merge",
            json={"primaryObjectId": primary_id, "objectIdToMerge": merged_id},
        )
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])

    # -- Dataverse, as a user ----------------------------------------------------------------------
    async def dv_create(self, table: str, row: dict[str, Any]) -> str:
        answer = await self.dv.post(f"/_admin/tables/{table}/rows", json=row)
        assert answer.status_code in (200, 201), answer.text
        return str(answer.json()["value"][0][f"{table}id"])

    async def dv_update(self, table: str, row_id: str, changes: dict[str, Any]) -> None:
        answer = await self.dv.patch(f"/_admin/tables/{table}/rows/{row_id}", json=changes)
        assert answer.status_code in (200, 204), answer.text

    async def dv_delete(self, table: str, row_id: str) -> None:
        answer = await self.dv.delete(f"/_admin/tables/{table}/rows/{row_id}")
        assert answer.status_code in (200, 204), answer.text

    async def dv_all(self, table: str) -> list[dict[str, Any]]:
        answer = await self.dv.get(f"/_admin/tables/{table}/rows")
        assert answer.status_code == 200, answer.text
        return list(answer.json()["value"])

    # -- counting ---------------------------------------------------------------------------------
    def sync_writes(self) -> float:
        return sum(
            s.value
            for metric in self.metrics.sync_writes.collect()
            for s in metric.samples
            if s.name.endswith("_total")
        )


async def eventually(check: Callable[[], Awaitable[T | None]], *, within: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + within
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {what or check}; last: {last!r}")


async def quiet(stack: Stack, *, for_s: float = 2.5, within: float = 30.0) -> float:
    """Wait until the sync stage has written nothing for ``for_s`` seconds; the write count then."""
    deadline = time.monotonic() + within
    count, since = stack.sync_writes(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = stack.sync_writes()
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= for_s:
            return count
    raise AssertionError(f"sync never went quiet: still writing after {within}s")


@asynccontextmanager
async def running_stack(
    kafka: KafkaSettings,
    config: SyncConfig,
    *,
    seed: int = 5,
    tables: tuple[str, ...] | None = None,
    provision: bool = False,
    reconcile: bool = False,
    processes: bool = False,
    certificate: bool = False,
    proxy: ProxySettings | None = None,
) -> AsyncIterator[Stack]:
    """The pipeline. It polls what ``config``'s enabled steps sync (``tables`` overrides the Dataverse
    side); the polled tables get change tracking through the metadata API (``provision``: everything
    `cdc provision --dataverse` makes). ``reconcile``: the reconciler pages the HubSpot objects the steps
    sync too (`cdc poll` then runs both parts, every 2 s with a 30 s lookback, archived records every 3 s),
    to catch webhooks the sandbox drops. With ``processes``,
    `cdc ingest`, `cdc poll` and `cdc sync` run as real processes a test can kill (`Stack.kill_role`,
    `Stack.kill_replica`); the stack's own metrics then see none of them. ``certificate`` and ``proxy``:
    the daemon reaches Dataverse with the app's certificate, through that proxy (`stack_settings`)."""
    before = asyncio.all_tasks()
    try:
        async with _pipeline(
            kafka,
            config,
            seed=seed,
            tables=tables,
            provision=provision,
            reconcile=reconcile,
            processes=processes,
            certificate=certificate,
            proxy=proxy,
        ) as stack:
            yield stack
    finally:
        await _settled(before)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


LOG_DIR = Path(tempfile.gettempdir()) / "cdc-stack-logs"


async def _spawn(role: str, *args: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    """A `cdc <role>` process; its warnings and errors go to ``LOG_DIR/<role>-<n>.log``."""
    LOG_DIR.mkdir(exist_ok=True)
    log = LOG_DIR / f"{role}-{time.time_ns()}.log"
    with log.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cdc", role, *args, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=sink
        )


async def _stop(processes: list[asyncio.subprocess.Process]) -> None:
    """SIGTERM (a numbered shutdown), SIGKILL after 30 s."""
    for process in processes:
        if process.returncode is None:
            process.terminate()
    for process in processes:
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _settled(before: set[asyncio.Task[Any]], within: float = 10.0) -> None:
    """Wait for the tasks a killed replica's Kafka clients leave behind (they finish cancelling shortly)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        left = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
        if not left:
            return
        await asyncio.sleep(0.1)


@asynccontextmanager
async def _pipeline(
    kafka: KafkaSettings,
    config: SyncConfig,
    *,
    seed: int,
    tables: tuple[str, ...] | None,
    provision: bool,
    reconcile: bool,
    processes: bool,
    certificate: bool = False,
    proxy: ProxySettings | None = None,
) -> AsyncIterator[Stack]:
    catalog = TopicCatalog.from_settings(kafka)
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, catalog)
    async with run_sandbox(seed=seed) as box:
        settings = stack_settings(
            kafka, box, tables=tables, config_file=write_config(config), certificate=certificate, proxy=proxy
        )
        if provision:
            await provision_sandbox(settings, config)
        else:
            await enable_change_tracking(settings, dataverse_tables(settings, config))
        metrics = Metrics(CollectorRegistry())
        stop = asyncio.Event()
        listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        urls: dict[str, str] = {}
        ca = ssl.create_default_context(cafile=box.info.dataverse.ca_bundle)
        # The user's idle connections are dropped well before uvicorn closes them (keep-alive 5 s): a request
        # sent on a connection the server is closing at that moment fails without an answer.
        limits = httpx.Limits(keepalive_expiry=2.0)
        async with (
            httpx.AsyncClient(base_url=box.info.hubspot.base_url, timeout=30, limits=limits) as hs,
            httpx.AsyncClient(
                base_url=box.info.dataverse.base_url, verify=ca, timeout=30, limits=limits
            ) as dv,
            asyncio.TaskGroup() as tasks,
        ):
            if reconcile:
                poll = settings.poll.model_copy(
                    update={
                        "hubspot_interval_s": 2.0,
                        "hubspot_lookback_s": 30.0,
                        "hubspot_deletes_interval_s": 3.0,
                    }
                )
                settings = settings.model_copy(update={"poll": poll})
            if processes:
                ingest = settings.ingest.model_copy(update={"port": _free_port()})
                settings = settings.model_copy(update={"ingest": ingest})
                urls["ingest"] = f"http://{ingest.host}:{ingest.port}"
            else:
                tasks.create_task(
                    run_ingest(settings, stop, metrics=metrics, on_listening=listening.set_result)
                )
                urls["ingest"] = (await asyncio.wait_for(listening, 30)).removesuffix("/webhooks/hubspot")
            box.hubspot.set_webhook_url(f"{urls['ingest']}/webhooks/hubspot")
            if reconcile and not processes:
                tasks.create_task(
                    run_poll(
                        settings,
                        stop,
                        metrics=metrics,
                        on_ready=lambda url: urls.update(poll=url),
                        config=config,
                    )
                )
            elif not processes:
                tasks.create_task(run_dataverse_poller(settings, stop, metrics=metrics, config=config))
            stack = Stack(box=box, settings=settings, metrics=metrics, hs=hs, dv=dv, config=config, urls=urls)
            try:
                if processes:
                    await stack.start_role("ingest")
                    await stack.start_role("poll")
                    await stack.add_replica()  # `cdc sync` too is a process (replica 0)
                else:
                    await stack.start_sync()
                yield stack
            finally:
                await stack.stop_roles()
                await stack.stop_replicas()
                await stack.stop_sync()
                stop.set()
