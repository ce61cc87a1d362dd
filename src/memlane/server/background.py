"""A server on a loopback port in a thread of this process (tests, benchmarks, notebooks)."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from .app import ServerSettings, create_app


@contextmanager
def serve_in_thread(settings: Optional[ServerSettings] = None, app: Any = None,
                    host: str = "127.0.0.1") -> Iterator[str]:
    """Start uvicorn on a free port of `host`; yields the base URL; stops it on exit."""
    import uvicorn

    app = app if app is not None else create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="memlane-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("memlane server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
