"""What every fake HTTP service in these tests shares: a ThreadingHTTPServer on 127.0.0.1 (a free port)
served from a daemon thread, and a request handler that answers at once and logs nothing."""
from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional


class QuickHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle waits for the client's delayed ACK
        # (about 40 ms a request)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def header_map(self) -> dict[str, str]:
        """The request's headers, names lower-cased."""
        return {k.lower(): v for k, v in self.headers.items()}

    def send(self, status: int, headers: dict[str, str], payload: bytes, content_type: Optional[str]) -> None:
        """One whole answer (no body for HEAD); content-type only when given."""
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if content_type:
            self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)


class LocalHTTPServer:
    """Serves `handler` on 127.0.0.1 from construction until close()."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], poll_interval: float = 0.02):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": poll_interval},
                                        daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        """host:port"""
        host, port = self._httpd.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
