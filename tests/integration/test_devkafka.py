"""The local Apache Kafka runner: `cdc dev kafka` serves and stops; a broker that cannot start says why."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys

import orjson
import pytest
from aiokafka import AIOKafkaClient

from cdc.tools.devkafka.runner import KafkaRunnerError, LocalKafka

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def brokers_listed(bootstrap: str) -> int:
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    try:
        await client.bootstrap()
        return len(client.cluster.brokers())
    finally:
        await client.close()


def test_cdc_dev_kafka_prints_bootstrap_serves_metadata_and_stops_on_ctrl_c() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "cdc", "dev", "kafka", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert line, f"no bootstrap line; stderr:\n{process.stderr.read() if process.stderr else ''}"
            info = orjson.loads(line)
            assert info["bootstrap"].startswith("127.0.0.1:")
            assert asyncio.run(brokers_listed(info["bootstrap"])) == 1
            broker_pid = info["pid"]
        finally:
            process.send_signal(signal.SIGINT)
            code = process.wait(60)
        stderr = process.stderr.read() if process.stderr else ""
    assert code == 0, stderr
    assert "stopping Kafka" in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(broker_pid, 0)


def test_a_taken_port_is_one_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(KafkaRunnerError, match=f"port {port} or \\d+ is taken"):
            LocalKafka(port=port, startup_timeout=60).start()


def test_a_broker_that_never_starts_reports_the_log_tail() -> None:
    kafka = LocalKafka(extra_config={"num.io.threads": "0"}, startup_timeout=60)
    with pytest.raises(KafkaRunnerError) as raised:
        kafka.start()
    assert "num.io.threads" in str(raised.value)
    assert not kafka.running


def test_missing_java_names_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", "/nonexistent")
    with pytest.raises(KafkaRunnerError, match=r"java not found: Kafka 4 needs Java 17\+ .*apt-get install"):
        LocalKafka().start()
