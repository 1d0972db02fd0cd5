"""Fixtures for MQTT tests: real mosquitto brokers on free loopback ports (never a mocked wire).

``mosquitto``          a running anonymous broker (persistence off)
``mosquitto_factory``  ``mosquitto_factory(users=..., tls=..., require_certificate=..., persistence=...)``
                       returns a started :class:`mqtt_support.Mosquitto`; all are stopped at teardown
``tls_files``          test CA, server and client certificates generated with ``cryptography``
``db``                 a DuckDB file with the kilnwatch schema and the outbox
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from mqtt_support import Mosquitto, TlsFiles, free_port, make_tls_files

from agent import storage
from agent.broker import find_mosquitto
from agent.outbox import ensure_outbox

MosquittoFactory = Callable[..., Mosquitto]


@pytest.fixture
def mosquitto_factory(tmp_path: Path) -> Iterator[MosquittoFactory]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    started: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        broker = Mosquitto(workdir=tmp_path / f"mosquitto{len(started)}", port=free_port(), **options)
        started.append(broker)
        broker.start()
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory: MosquittoFactory) -> Mosquitto:
    return mosquitto_factory()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "site.duckdb"


@pytest.fixture
def db(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = storage.connect(db_path)
    ensure_outbox(con)
    yield con
    con.close()
