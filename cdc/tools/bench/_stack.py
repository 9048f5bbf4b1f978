"""The real processes of one sync benchmark stack: `cdc sandbox`, `cdc ingest`, `cdc poll`, `cdc sync`.

Each role is its own ``python -m cdc ...`` process configured only through ``CDC_*`` environment variables
(the way an orchestrator runs it), its stderr kept in a log file so a run that misbehaves can be read back.
Start order: the sandbox (posting webhooks to the port `cdc ingest` will take), `cdc ingest`, `cdc sync`,
and `cdc poll` last, because its first pass *is* the backfill a scenario measures. Stop order: poll, sync,
ingest, sandbox, each with SIGTERM and a bounded wait, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from cdc.dataverse.poller import dataverse_tables
from cdc.provisioning.run import enable_change_tracking
from cdc.settings import DataverseSettings, Settings, SyncSettings
from cdc.tools.devkafka.runner import free_ports
from consumers.loader import load_config
from streams.admin import ensure_topics, open_admin
from streams.config import KafkaSettings
from streams.topics import TopicCatalog

__all__ = ["RoleOptions", "Stack", "SyncCounts", "running_stack"]

UNLIMITED_HUBSPOT: dict[str, Any] = {"burst": None, "daily": None, "search_per_second": None}
UNLIMITED_BUDGET = {
    "CDC_HUBSPOT__LIMITS__BURST": "1000000000",
    "CDC_HUBSPOT__LIMITS__DAILY": "1000000000",
    "CDC_HUBSPOT__LIMITS__SEARCH_PER_SECOND": "1000000",
    "CDC_DATAVERSE__LIMITS__REQUESTS": "1000000000",
    "CDC_DATAVERSE__LIMITS__EXECUTION_S": "1000000000",
    "CDC_DATAVERSE__LIMITS__CONCURRENT": "100000",
}
"""The daemon's budget while both sandboxes run unthrottled: it is told the truth, as it would be by
``hubspot.limits`` and ``dataverse.limits`` (the rate-limited scenario sets HubSpot's real ones)."""
STOP_WAIT_S = 30.0


@dataclass(frozen=True)
class RoleOptions:
    """What a scenario may change about the daemon: batching, the poll interval, the sync config file."""

    sync_config: Path
    batch_size: int | None = None
    batch_wait_ms: int | None = None
    """``batch_size``, ``batch_wait_ms`` None: the daemon's defaults (`SyncSettings`), so a checkout is
    measured as it ships."""
    dataverse_interval_s: float = 1.0
    hubspot_interval_s: float = 30.0


@dataclass(frozen=True)
class SyncCounts:
    """Totals scraped from `cdc sync`'s /metrics."""

    routed: float
    writes_ok: float
    writes_failed: float
    deadletters: float
    by_write: dict[str, float]

    def creates(self, target: str, obj: str) -> float:
        return self.by_write.get(f"{target} {obj} create ok", 0.0)


@dataclass
class Stack:
    kafka: KafkaSettings
    info: dict[str, Any]
    hs: httpx.AsyncClient
    dv: httpx.AsyncClient
    logs: Path
    base_env: dict[str, str]
    options: RoleOptions
    ports: dict[str, int]
    processes: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    group_prefix: str = ""

    # -- the daemon's roles ---------------------------------------------------------------------------
    async def start(
        self, role: str, env: dict[str, str] | None = None, *, command: str | None = None
    ) -> None:
        """Start ``cdc <command>`` (default: ``role``) as ``role`` and wait for its /healthz (ingest, poll,
        sync all serve one)."""
        log = (self.logs / f"{role}.log").open("ab")
        process = await asyncio.create_subprocess_exec(
            sys.executable, *_profiled(role), "-m", "cdc", command or role,
            env={**self.base_env, **(env or {})},
            stdout=log, stderr=log,
        )  # fmt: skip
        log.close()
        self.processes[role] = process
        await _wait_healthy(f"http://127.0.0.1:{self.ports[role]}/healthz", process, role)

    async def start_sync(self, group_prefix: str, env: dict[str, str] | None = None) -> None:
        self.group_prefix = group_prefix
        await self.start("sync", {"CDC_SYNC__GROUP_PREFIX": group_prefix, **(env or {})})

    async def start_sync_replica(self, name: str, env: dict[str, str] | None = None) -> None:
        """One more `cdc sync` in the group of the running one (``name``: ``sync2``, ...), with a port and a
        link-store directory of its own."""
        if name not in self.ports:
            (self.ports[name],) = free_ports(1)
        await self.start(
            name,
            {
                "CDC_SYNC__GROUP_PREFIX": self.group_prefix,
                "CDC_SYNC__PORT": str(self.ports[name]),
                "CDC_SYNC__STATE_DIR": str(self.logs / f"{name}-state"),
                **(env or {}),
            },
            command="sync",
        )

    async def stop(self, role: str) -> None:
        process = self.processes.pop(role, None)
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_WAIT_S)
        except TimeoutError:
            process.kill()
            await process.wait()

    def exited(self) -> dict[str, int]:
        """Roles that died on their own (a role must never exit while the benchmark runs)."""
        return {role: p.returncode for role, p in self.processes.items() if p.returncode is not None}

    async def sync_counts(self) -> SyncCounts:
        """The totals of every running `cdc sync` replica."""
        replicas = [r for r in self.processes if r.startswith("sync")] or ["sync"]
        async with httpx.AsyncClient(timeout=10) as client:
            texts = [
                (await client.get(f"http://127.0.0.1:{self.ports[role]}/metrics")).text for role in replicas
            ]
        routed = ok = failed = dead = 0.0
        by_write: dict[str, float] = {}
        for family in (f for text in texts for f in text_string_to_metric_families(text)):
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                if sample.name == "cdc_sync_routed_total":
                    routed += sample.value
                elif sample.name == "cdc_sync_writes_total":
                    labels = sample.labels
                    key = f"{labels['target']} {labels['object']} {labels['operation']} {labels['outcome']}"
                    by_write[key] = by_write.get(key, 0.0) + sample.value
                    if labels["outcome"] == "ok":
                        ok += sample.value
                    else:
                        failed += sample.value
                elif sample.name == "cdc_sync_deadletters_total":
                    dead += sample.value
        return SyncCounts(routed, ok, failed, dead, by_write)

    # -- the sandboxes' admin APIs ---------------------------------------------------------------------
    async def calls(self) -> dict[str, Any]:
        return {
            "hubspot": (await self.hs.get("/_admin/calls")).json(),
            "dataverse": (await self.dv.get("/_admin/calls")).json(),
        }

    async def reset_calls(self) -> None:
        await self.hs.delete("/_admin/calls")
        await self.dv.delete("/_admin/calls")

    async def hubspot_limits(self, limits: dict[str, Any]) -> None:
        (await self.hs.put("/_admin/ratelimits", json=limits)).raise_for_status()
        (await self.hs.delete("/_admin/ratelimits")).raise_for_status()

    async def hs_all(self, object_type: str) -> list[dict[str, Any]]:
        answer = await self.hs.get(f"/_admin/objects/{object_type}")
        answer.raise_for_status()
        return list(answer.json()["results"])

    async def dv_all(self, table: str) -> list[dict[str, Any]]:
        answer = await self.dv.get(f"/_admin/tables/{table}/rows")
        answer.raise_for_status()
        return list(answer.json()["value"])


PROFILE_ENV = "BENCH_PROFILE_DIR"
"""A directory: each role of the bench's stacks then runs under cProfile and leaves ``<role>-<n>.prof``
there when it stops (``python -m pstats`` reads it). For finding where a role's time goes;
the figures of a profiled run are slower than a plain one's."""
_profiles = iter(range(1, 1_000_000))


def _profiled(role: str) -> list[str]:
    """The interpreter arguments that run ``cdc <role>`` under cProfile when `PROFILE_ENV` is set."""
    where = os.environ.get(PROFILE_ENV)
    if not where:
        return []
    Path(where).mkdir(parents=True, exist_ok=True)
    return ["-m", "cProfile", "-o", str(Path(where) / f"{role}-{next(_profiles)}.prof")]


async def _wait_healthy(
    url: str, process: asyncio.subprocess.Process, role: str, limit_s: float = 60
) -> None:
    deadline = time.monotonic() + limit_s
    async with httpx.AsyncClient(timeout=1) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"cdc {role} exited with {process.returncode} during start-up")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url)).status_code == 200:  # noqa: PLR2004 -- HTTP OK
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"cdc {role} did not answer {url} within {limit_s:.0f}s")


def _role_env(
    kafka: KafkaSettings, info: dict[str, Any], options: RoleOptions, ports: dict[str, int]
) -> dict[str, str]:
    hub, dv = info["hubspot"], info["dataverse"]
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CDC_")},
        "PYTHONUNBUFFERED": "1",
        "CDC_LOG__LEVEL": "WARNING",
        "CDC_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "CDC_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "CDC_KAFKA__PARTITIONS": str(kafka.partitions),
        "CDC_HUBSPOT__BASE_URL": hub["base_url"],
        "CDC_HUBSPOT__TOKEN": hub["token"],
        "CDC_HUBSPOT__APP_ID": str(hub["app_id"]),
        "CDC_HUBSPOT__CLIENT_SECRET": hub["client_secret"],
        "CDC_HUBSPOT__PORTAL_ID": str(hub["portal_id"]),
        "CDC_DATAVERSE__BASE_URL": dv["base_url"],
        "CDC_DATAVERSE__TENANT_ID": dv["tenant_id"],
        "CDC_DATAVERSE__CLIENT_ID": dv["client_id"],
        "CDC_DATAVERSE__CLIENT_SECRET": dv["client_secret"],
        "CDC_DATAVERSE__AUTHORITY": dv["authority"],
        "CDC_DATAVERSE__SCOPE": dv["scope"],
        "CDC_DATAVERSE__CA_BUNDLE": dv["ca_bundle"],
        "CDC_INGEST__PORT": str(ports["ingest"]),
        "CDC_POLL__PORT": str(ports["poll"]),
        "CDC_POLL__DATAVERSE_INTERVAL_S": str(options.dataverse_interval_s),
        "CDC_POLL__HUBSPOT_INTERVAL_S": str(options.hubspot_interval_s),
        "CDC_SYNC__PORT": str(ports["sync"]),
        "CDC_SYNC__CONFIG": str(options.sync_config),
        **({} if options.batch_size is None else {"CDC_SYNC__BATCH_SIZE": str(options.batch_size)}),
        **({} if options.batch_wait_ms is None else {"CDC_SYNC__BATCH_WAIT_MS": str(options.batch_wait_ms)}),
        **UNLIMITED_BUDGET,
    }


async def _track_changes(info: dict[str, Any], options: RoleOptions) -> None:
    """Change tracking on the tables `cdc poll` will poll (what the sync configuration's steps sync), turned
    on through the metadata API as `cdc provision --dataverse` does: a fresh org has it on no table."""
    dv = info["dataverse"]
    settings = Settings(
        dataverse=DataverseSettings(
            base_url=dv["base_url"],
            tenant_id=dv["tenant_id"],
            client_id=dv["client_id"],
            client_secret=SecretStr(dv["client_secret"]),
            authority=dv["authority"],
            scope=dv["scope"],
            ca_bundle=Path(dv["ca_bundle"]),
        ),
        sync=SyncSettings(config=options.sync_config),
    )
    await enable_change_tracking(settings, dataverse_tables(settings, load_config(options.sync_config)))


@contextlib.asynccontextmanager
async def running_stack(kafka: KafkaSettings, options: RoleOptions, logs: Path) -> AsyncIterator[Stack]:
    """The sandbox and `cdc ingest` running on fresh topics; the scenario starts sync and poll itself.

    Both sandboxes start unthrottled (HubSpot limits off, Dataverse service protection off): the scenarios
    measure the daemon; the rate-limited scenario switches HubSpot's real limits on by itself.
    """
    await asyncio.to_thread(logs.mkdir, parents=True, exist_ok=True)
    async with open_admin(kafka) as admin:
        await ensure_topics(admin, TopicCatalog.from_settings(kafka))
    ports = dict(zip(("ingest", "poll", "sync"), free_ports(3), strict=True))
    sandbox_log = (logs / "sandbox.log").open("ab")
    sandbox = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc", "sandbox", "--json",
        "--webhook-url", f"http://127.0.0.1:{ports['ingest']}/webhooks/hubspot",
        stdout=asyncio.subprocess.PIPE, stderr=sandbox_log,
    )  # fmt: skip
    sandbox_log.close()
    try:
        assert sandbox.stdout is not None  # noqa: S101 -- PIPE above
        line = await asyncio.wait_for(sandbox.stdout.readline(), 60)
        if not line:
            raise RuntimeError(f"cdc sandbox exited with {await sandbox.wait()}; see {logs / 'sandbox.log'}")
        info: dict[str, Any] = orjson.loads(line)
        async with (
            httpx.AsyncClient(base_url=info["hubspot"]["base_url"], timeout=120) as hs,
            httpx.AsyncClient(
                base_url=info["dataverse"]["base_url"], verify=info["dataverse"]["ca_bundle"], timeout=120
            ) as dv,
        ):
            env = {
                **_role_env(kafka, info, options, ports),
                # The link store beside the run's logs, not in the user's `sync.state_dir` default.
                "CDC_SYNC__STATE_DIR": str(logs / "sync-state"),
            }
            stack = Stack(kafka, info, hs, dv, logs, env, options, ports)
            await _track_changes(info, options)
            await stack.hubspot_limits(UNLIMITED_HUBSPOT)
            (await dv.put("/_admin/protection", json={"enabled": False})).raise_for_status()
            try:
                await stack.start("ingest")
                yield stack
            finally:
                for role in ("poll", *sorted(r for r in stack.processes if r.startswith("sync")), "ingest"):
                    await stack.stop(role)
    finally:
        if sandbox.returncode is None:
            sandbox.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(sandbox.wait(), STOP_WAIT_S)
            except TimeoutError:
                sandbox.kill()
                await sandbox.wait()
