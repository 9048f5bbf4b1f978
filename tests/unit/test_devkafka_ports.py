"""The local broker's ports: two distinct ones, even when the OS hands a just-closed port out again."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Self

import pytest

from cdc.tools.devkafka import runner
from cdc.tools.devkafka.runner import KafkaRunnerError, LocalKafka


class LowestFreePortOS:
    """Loopback ports as Linux may hand them out: the lowest one no open socket holds, so a port is free
    again the moment its probe socket closes."""

    def __init__(self, first: int = 40000) -> None:
        self.first = first
        self.held: set[int] = set()

    def socket(self, *_: Any) -> _Socket:
        return _Socket(self)


class _Socket:
    def __init__(self, os: LowestFreePortOS) -> None:
        self._os, self._port = os, 0

    def bind(self, address: tuple[str, int]) -> None:
        assert address[1] == 0
        self._port = min(set(range(self._os.first, self._os.first + 100)) - self._os.held)
        self._os.held.add(self._port)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)

    def close(self) -> None:
        self._os.held.discard(self._port)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@pytest.fixture
def reusing_os(monkeypatch: pytest.MonkeyPatch) -> LowestFreePortOS:
    fake = LowestFreePortOS()
    monkeypatch.setattr(socket, "socket", fake.socket)
    return fake


def written_ports(kafka: LocalKafka, monkeypatch: pytest.MonkeyPatch) -> tuple[int, int]:
    """Start the broker up to writing ``server.properties`` (no JVM), and read the two ports from it."""
    for step in ("_format", "_save_state", "_launch", "_wait_ready"):
        monkeypatch.setattr(kafka, step, lambda *_: None)
    kafka._start("java", Path("/nonexistent"))
    properties = kafka._layout.properties.read_text()
    listeners = next(line for line in properties.splitlines() if line.startswith("listeners="))
    ports = [int(part.rsplit(":", 1)[1]) for part in listeners.removeprefix("listeners=").split(",")]
    assert len(ports) == 2, listeners
    return ports[0], ports[1]


def test_the_broker_and_its_controller_never_get_the_same_port(
    reusing_os: LowestFreePortOS, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broker, controller = written_ports(LocalKafka(data_dir=tmp_path), monkeypatch)
    assert broker != controller
    assert not reusing_os.held, "every probe socket is closed again"


@pytest.mark.usefixtures("reusing_os")
def test_a_given_port_is_kept_and_the_free_one_differs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broker, controller = written_ports(LocalKafka(data_dir=tmp_path, port=40000), monkeypatch)
    assert (broker, controller) == (40000, 40001)


def test_one_port_for_both_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KafkaRunnerError, match="cannot share port 9092"):
        LocalKafka(data_dir=tmp_path, port=9092, controller_port=9092)._ports({})


def test_free_ports_are_distinct_on_the_real_os() -> None:
    ports = runner.free_ports(8)
    assert len(set(ports)) == 8
    for port in ports:  # and free: each can be bound now
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))
