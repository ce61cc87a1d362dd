"""Where the Ollama server is, read one way for the LLM and the embedder, by Ollama's own rules (its Python
client's `_parse_host` and its CLI's `envconfig.Host` agree on them):

  (unset), ""            http://localhost:11434
  host                   http://host:11434
  host:port, :port       http://host:port (localhost when the host is left out)
  http://host            http://host:80     an explicit scheme without a port means that scheme's port
  https://host           https://host:443
  scheme://host:port     as given
  [::1], [::1]:port, ::1 IPv6, bracketed in the URL
  host:port/prefix       the path is kept (an Ollama behind a proxy), without a trailing slash

One difference from Ollama's client: 0.0.0.0 and :: (the server's "listen on every interface", the usual
OLLAMA_HOST of a machine serving Ollama to others) become the loopback address, which is where a client on
that machine reaches it; connecting to 0.0.0.0 itself works on Linux and macOS but not on Windows.
"""
from __future__ import annotations

import ipaddress
import os
from typing import Optional
from urllib.parse import urlsplit

from .errors import ConfigurationError

DEFAULT_PORT = 11434
DEFAULT_HOST = f"http://localhost:{DEFAULT_PORT}"
SCHEME_PORTS = {"http": 80, "https": 443}


def parse_ollama_host(value: Optional[str]) -> str:
    """OLLAMA_HOST (or a configured base URL) in any of the forms above, as a base URL with its port."""
    text = (value or "").strip()
    scheme, sep, rest = text.partition("://")
    if sep:
        scheme = scheme.lower()
        if scheme not in SCHEME_PORTS:
            raise ConfigurationError(f"Ollama host {value!r}: the scheme must be http or https")
        port = SCHEME_PORTS[scheme]
    else:
        scheme, rest, port = "http", text, DEFAULT_PORT
    hostport, _, path = rest.partition("/")
    path = path.strip("/")
    if hostport.count(":") > 1 and not hostport.startswith("["):
        hostport = f"[{hostport}]"  # a bare IPv6 address: Ollama reads "::1" as a host, not host:port
    try:
        split = urlsplit(f"{scheme}://{hostport}")
        host, given_port = split.hostname, split.port
    except ValueError as exc:  # a bad port or an unclosed IPv6 bracket
        raise ConfigurationError(f"Ollama host {value!r} is not host[:port] or a URL: {exc}") from None
    host = host or "localhost"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_unspecified:
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    if address is not None:
        host = f"[{address}]" if address.version == 6 else str(address)
    url = f"{scheme}://{host}:{given_port or port}"
    return f"{url}/{path}" if path else url


def ollama_base_url(configured: Optional[str]) -> str:
    """The configured base URL (`ollama_base_url`), else $OLLAMA_HOST, else http://localhost:11434."""
    return parse_ollama_host(configured or os.environ.get("OLLAMA_HOST"))
