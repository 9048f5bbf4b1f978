"""A real single-node Apache Kafka (KRaft, broker + controller) started from its Maven jars, no Docker.

Start-up, in order:

1. check ``java`` (17+) and ``mvn`` are there, with one clear error naming the apt packages if not;
2. resolve the broker's jars from Maven Central into a cache outside the repo (once; a lock makes
   parallel test workers wait for one download), keyed by a digest of the shipped ``pom.xml``;
3. pick two free loopback ports, write ``server.properties`` and format KRaft storage (``--standalone``);
4. start ``kafka.Kafka`` in its own session, stdout and stderr to ``broker.log``;
5. wait until the PLAINTEXT port accepts connections *and* a metadata request lists the broker,
   failing fast with the log's tail if the JVM exits (and retrying with new ports on a bind race).

:meth:`LocalKafka.stop` sends SIGTERM (Kafka's clean shutdown hook), waits, then SIGKILLs; it is
idempotent and also registered with :mod:`atexit`.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from cdc.exits import CliError

MIN_JAVA = 17
APT_HINT = "apt-get install -y openjdk-17-jre-headless maven"
JAVA_EXCEPTION = re.compile(r"^(?:Exception in thread .*?|Caused by: )?[\w.$]+(?:Exception|Error)\b(?::|$)")
BIND_ERROR = re.compile(r"Address already in use|BindException|Failed to bind")
Progress = Callable[[str], None]


class KafkaRunnerError(CliError):
    """The local broker could not be resolved or started; the message says what to fix (a `CliError`, so
    `cdc dev kafka`, `cdc demo` and `cdc bench` end with that one line and exit 1)."""


def _quiet(_: str) -> None:
    return None


def pom_bytes() -> bytes:
    return (resources.files("cdc.tools.devkafka") / "pom.xml").read_bytes()


def kafka_version() -> str:
    match = re.search(rb"<kafka\.version>([^<]+)</kafka\.version>", pom_bytes())
    if match is None:
        raise KafkaRunnerError("cdc/tools/devkafka/pom.xml names no <kafka.version>")
    return match.group(1).decode()


def default_cache_dir() -> Path:
    """``$CDC_KAFKA_CACHE``, else ``$XDG_CACHE_HOME/cdc-kafka``, else ``~/.cache/cdc-kafka``."""
    if explicit := os.environ.get("CDC_KAFKA_CACHE"):
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cdc-kafka"


def java_executable() -> str:
    """The ``java`` to run, checked to be 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise KafkaRunnerError(f"java not found: Kafka 4 needs Java {MIN_JAVA}+ (install it: {APT_HINT})")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        raise KafkaRunnerError(f"could not read the version of {java}: {out.stderr.strip()[:200]}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise KafkaRunnerError(f"{java} is Java {major}; Kafka 4 needs Java {MIN_JAVA}+ ({APT_HINT})")
    return java


def resolve_jars(cache: Path | None = None, progress: Progress = _quiet) -> Path:
    """The folder of broker jars, resolving them with Maven on first use. Safe to call concurrently."""
    cache = cache or default_cache_dir()
    pom = pom_bytes()
    home = cache / f"kafka-{kafka_version()}-{hashlib.sha256(pom).hexdigest()[:12]}"
    libs, marker = home / "libs", home / "resolved"
    if marker.exists():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be resolving: wait for it
        if marker.exists():
            return libs
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaRunnerError(f"mvn not found: it resolves Kafka's jars from Maven Central ({APT_HINT})")
        (home / "pom.xml").write_bytes(pom)
        progress(f"resolving Apache Kafka {kafka_version()} jars from Maven Central into {libs} ...")
        started = time.monotonic()
        command = [
            mvn, "-B", "-q", "-f", str(home / "pom.xml"),
            f"-Dmaven.repo.local={cache / 'm2'}",
            "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
        ]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
        if out.returncode != 0:
            tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-15:])
            raise KafkaRunnerError(f"Maven could not resolve Kafka's jars (exit {out.returncode}):\n{tail}")
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise KafkaRunnerError(f"Maven finished but {libs} holds no kafka_2.13 jar")
        marker.write_text(f"{time.time()}\n")
        progress(f"resolved {sum(1 for _ in libs.glob('*.jar'))} jars in {time.monotonic() - started:.1f}s")
    return libs


def java_failure(output: str, lines: int = 10) -> str:
    """The exception lines of a JVM's output (what went wrong), not the stack frames under them."""
    causes = [line.strip() for line in output.splitlines() if JAVA_EXCEPTION.match(line)]
    if causes:
        return "\n".join(dict.fromkeys(causes))  # each distinct cause once, in order
    return "\n".join(output.strip().splitlines()[-lines:])


def free_ports(count: int, *, taken: Iterable[int] = ()) -> list[int]:
    """``count`` distinct free loopback ports, none of them in ``taken``.

    Every probe socket stays bound until all are chosen: a port is free again the moment its probe closes,
    so two ``free_port()`` calls in a row can return the same port (seen on a fresh machine: the broker and
    its controller on one port, "If you have two listeners on the same port...").
    """
    chosen: list[int] = []
    avoid = set(taken)
    with contextlib.ExitStack() as held:
        for _ in range(count * 20):
            if len(chosen) == count:
                break
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
            if port not in avoid:
                avoid.add(port)
                chosen.append(port)
    if len(chosen) < count:
        raise KafkaRunnerError(f"found {len(chosen)} free loopback ports of the {count} needed")
    return chosen


def free_port() -> int:
    """One free loopback port (for several at once, `free_ports`: each call here may repeat the last)."""
    return free_ports(1)[0]


def new_cluster_id() -> str:
    """Kafka's canonical form: 16 random bytes, base64url without padding, never starting with '-'."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def server_properties(data: Path, port: int, controller_port: int, extra: Mapping[str, str]) -> str:
    """A combined broker+controller on loopback, sized for 2 cores, with compaction visible in seconds."""
    config = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data),
        "num.partitions": "1",
        # Topics come from the catalog (`cdc topics ensure`); a typo must not create one silently.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "num.recovery.threads.per.data.dir": "1",
        "background.threads": "2",
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        "log.cleaner.backoff.ms": "500",
        "log.cleaner.min.cleanable.ratio": "0.01",
        "log.cleaner.min.compaction.lag.ms": "0",
        **extra,
    }
    return "".join(f"{key}={value}\n" for key, value in config.items())


def _metadata_lists_a_broker(bootstrap: str, timeout: float) -> bool:
    """Ask the broker for cluster metadata over the Kafka protocol (in a thread: callers may be async)."""
    from aiokafka import AIOKafkaClient  # noqa: PLC0415 -- only the readiness probe needs it

    async def probe() -> bool:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
        try:
            await asyncio.wait_for(client.bootstrap(), timeout)
            return bool(client.cluster.brokers())
        finally:
            await client.close()

    result: list[bool] = []

    def run() -> None:
        try:
            result.append(asyncio.run(probe()))
        except (OSError, TimeoutError):
            result.append(False)
        except Exception:  # noqa: BLE001 -- any client error means "not ready yet"; the caller retries
            result.append(False)

    thread = threading.Thread(target=run, name="kafka-ready-probe", daemon=True)
    thread.start()
    thread.join(timeout + 5)
    return bool(result and result[0])


@dataclass(frozen=True)
class _Layout:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def properties(self) -> Path:
        return self.root / "server.properties"

    @property
    def log(self) -> Path:
        return self.root / "broker.log"

    @property
    def state(self) -> Path:
        return self.root / "cdc-kafka.json"


class LocalKafka:
    """One local broker. ``with LocalKafka() as kafka: kafka.bootstrap`` or ``start()`` / ``stop()``.

    With ``data_dir`` the broker keeps its data (and its ports and cluster id) across runs; without it,
    everything lives in a temporary folder removed on stop.
    """

    def __init__(
        self,
        *,
        data_dir: Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        heap: str = "512m",
        startup_timeout: float = 90.0,
        cache: Path | None = None,
        extra_config: Mapping[str, str] | None = None,
        progress: Progress = _quiet,
    ) -> None:
        self._persistent = data_dir is not None
        self._layout = _Layout(Path(data_dir) if data_dir else Path(tempfile.mkdtemp(prefix="cdc-kafka-")))
        self._port, self._controller_port = port, controller_port
        self._heap = heap
        self._startup_timeout = startup_timeout
        self._cache = cache
        self._extra = dict(extra_config or {})
        self._progress = progress
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._stopped = False
        self.startup_seconds: float | None = None

    @property
    def bootstrap(self) -> str:
        if self._process is None:
            raise KafkaRunnerError("the local broker is not running")
        return f"127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        return self._process is not None and not self._stopped and self._process.poll() is None

    @property
    def log_path(self) -> Path:
        return self._layout.log

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self._layout.log.read_text(errors="replace")
        except FileNotFoundError:
            return "(no broker log yet)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        started = time.monotonic()
        java = java_executable()
        libs = resolve_jars(self._cache, self._progress)
        try:
            self._start(java, libs)
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        self.startup_seconds = time.monotonic() - started
        self._progress(f"Kafka {kafka_version()} ready at {self.bootstrap} in {self.startup_seconds:.1f}s")
        return self

    def _start(self, java: str, libs: Path) -> None:
        self._layout.root.mkdir(parents=True, exist_ok=True)
        state = self._load_state()
        fixed_ports = self._port is not None or "port" in state
        for attempt in range(3):
            self._port, self._controller_port = self._ports(state)
            cluster_id = str(state.get("cluster_id") or new_cluster_id())
            self._layout.properties.write_text(
                server_properties(self._layout.data, self._port, self._controller_port, self._extra)
            )
            self._format(java, libs, cluster_id)
            self._save_state(cluster_id)
            self._launch(java, libs)
            try:
                self._wait_ready()
            except _BindRaceError:
                self._terminate()
                if fixed_ports or attempt == 2:  # noqa: PLR2004 -- three tries with fresh ports
                    reason = java_failure(self.log_tail(200))
                    raise KafkaRunnerError(
                        f"port {self._port} or {self._controller_port} is taken ({reason})"
                    ) from None
                self._port = self._controller_port = None
                state = {}
                shutil.rmtree(self._layout.data, ignore_errors=True)
            except KafkaRunnerError as error:
                raise KafkaRunnerError(f"{error}; last lines of its log:\n{self.log_tail()}") from None
            else:
                return

    def _ports(self, state: Mapping[str, int | str]) -> tuple[int, int]:
        """The broker and controller ports: as given, else as the data dir last used, else two distinct
        free ones (a free one never equal to the other, given, port)."""
        port = self._port or int(state.get("port", 0))
        controller = self._controller_port or int(state.get("controller_port", 0))
        given = [p for p in (port, controller) if p]
        fresh = iter(free_ports(2 - len(given), taken=given))
        port, controller = port or next(fresh), controller or next(fresh)
        if port == controller:
            raise KafkaRunnerError(f"the broker and its controller cannot share port {port}")
        return port, controller

    def _load_state(self) -> dict[str, int | str]:
        """Cluster id and ports of a persistent data dir (the controller port is written into storage)."""
        if not self._persistent or not self._layout.state.exists():
            return {}
        loaded: dict[str, int | str] = json.loads(self._layout.state.read_text())
        return loaded

    def _save_state(self, cluster_id: str) -> None:
        state = {"cluster_id": cluster_id, "port": self._port, "controller_port": self._controller_port}
        self._layout.state.write_text(json.dumps(state))

    def _jvm(self, java: str, libs: Path, heap: str) -> list[str]:
        log4j = resources.files("cdc.tools.devkafka") / "log4j2.properties"
        return [
            java, f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Djava.awt.headless=true", f"-Dkafka.logs.dir={self._layout.root / 'logs'}",
            f"-Dlog4j2.configurationFile={log4j}", "-cp", f"{libs}/*",
        ]  # fmt: skip

    def _format(self, java: str, libs: Path, cluster_id: str) -> None:
        command = [
            *self._jvm(java, libs, "256m"), "kafka.tools.StorageTool", "format", "--standalone",
            "--ignore-formatted", "-t", cluster_id, "-c", str(self._layout.properties),
        ]  # fmt: skip
        out = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
        if out.returncode != 0:
            reason = java_failure(out.stdout + out.stderr)
            raise KafkaRunnerError(f"formatting KRaft storage in {self._layout.data} failed: {reason}")

    def _launch(self, java: str, libs: Path) -> None:
        self._log_file = self._layout.log.open("ab")
        command = [
            *self._jvm(java, libs, self._heap),
            "-Xms128m",
            "kafka.Kafka",
            str(self._layout.properties),
        ]
        self._process = subprocess.Popen(
            command, stdout=self._log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # a crashed parent leaves no broker holding the port and the log dir lock
        )  # fmt: skip
        self._stopped = False

    def _wait_ready(self) -> None:
        assert self._process is not None  # noqa: S101 -- set by _launch just before
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                if BIND_ERROR.search(self.log_tail(200)):
                    raise _BindRaceError
                raise KafkaRunnerError(f"the broker exited with code {code} while starting")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self._port or 0), 0.5):
                if _metadata_lists_a_broker(f"127.0.0.1:{self._port}", 5.0):
                    return
            time.sleep(0.1)
        raise KafkaRunnerError(f"the broker did not answer within {self._startup_timeout:.0f}s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout``) and remove a temporary data dir.

        Idempotent.
        """
        if self._stopped:
            return
        self._stopped = True
        self._terminate(timeout)
        if not self._persistent:
            shutil.rmtree(self._layout.root, ignore_errors=True)

    def _terminate(self, timeout: float = 30.0) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # Kafka's shutdown hook: a clean stop
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class _BindRaceError(Exception):
    """The ports picked were taken before the broker bound them; pick new ones."""
