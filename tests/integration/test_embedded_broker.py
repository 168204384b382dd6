"""The embedded broker lives and dies with the service: real `incident serve` processes."""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from incident.adapters.kafka import free_port
from tests.support.processes import Server


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


def _env(tmp_path: Path, broker_port: int, store_url: str | None = None) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("INCIDENT_")},
        "INCIDENT_STORE__URL": store_url or f"sqlite:///{tmp_path / 'db.sqlite'}",
        "INCIDENT_AUTH__TOKENS_FILE": str(tmp_path / "tokens.toml"),
        "INCIDENT_HTTP__PORT": "0",
        "INCIDENT_KAFKA__EMBEDDED_LISTENER": f"127.0.0.1:{broker_port}",
    }


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


def test_the_broker_dies_with_a_killed_service_and_a_restart_gets_its_port(
    tmp_path: Path, servers: list[Server]
) -> None:
    """Before: Tansu got SIGTERM when the service died and drained its client connections for
    ~5 s (acknowledging reports nobody would read), and a quick restart found the port taken."""
    port = free_port()
    env = _env(tmp_path, port)
    servers.append(first := Server(env, tmp_path / "first.log"))
    assert _listening(port)
    # A producer elsewhere holds a connection to the broker, as report gateways do.
    client = socket.create_connection(("127.0.0.1", port))
    try:
        first.proc.kill()  # kill -9: no clean-up code runs
        first.proc.wait(timeout=10)
        deadline = time.monotonic() + 3
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _listening(port), "the broker outlived the service"
    finally:
        client.close()
    servers.append(second := Server(env, tmp_path / "second.log"))
    assert second.request("GET", "/healthz")[0] == 200
    code, log = second.stop(signal.SIGTERM)
    assert code == 0, log
    assert "already taken" not in log
    deadline = time.monotonic() + 3
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _listening(port), "the broker outlived a clean stop"


@pytest.mark.postgres
def test_serve_warns_when_postgresql_is_paired_with_the_embedded_broker(
    tmp_path: Path, servers: list[Server], postgres_schema_url: str
) -> None:
    env = _env(tmp_path, free_port(), postgres_schema_url)
    servers.append(server := Server(env, tmp_path / "serve.log"))
    code, log = server.stop(signal.SIGTERM)
    assert code == 0, log
    assert "embedded broker, which keeps messages in memory only" in log
    assert "[kafka] bootstrap_servers" in log


def test_serve_does_not_warn_on_sqlite_with_the_embedded_broker(
    tmp_path: Path, servers: list[Server]
) -> None:
    servers.append(server := Server(_env(tmp_path, free_port()), tmp_path / "serve.log"))
    _, log = server.stop(signal.SIGTERM)
    assert "memory only" not in log
