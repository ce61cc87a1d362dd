"""`memlane serve` (the REST server) and `memlane keys` (its API keys). The server's extra
(pip install 'memlane[server]') is imported only when `serve` runs."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Optional

from .config import default_home
from .errors import ConfigurationError, missing_extra

SERVE_HELP = "run the REST server (memlane's API, mem0's platform routes, /docs, /metrics)"
KEYS_HELP = "create, list and revoke the REST server's API keys ($MEMLANE_HOME/keys.db)"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def configure_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (safe on the embedded file and "
                                                          "on PostgreSQL)")
    p.add_argument("--no-auth", action="store_true",
                   help="trust every request, with no API key (127.0.0.1 only; for local development)")
    p.add_argument("--rate-limit", type=float, default=50.0,
                   help="requests a second per key in each process, bursts of twice that (0: off)")
    p.add_argument("--max-body-bytes", type=int, default=1_048_576)
    p.add_argument("--mcp", action="store_true", help="also serve MCP (streamable HTTP) at /mcp with the same "
                                                      "keys (needs memlane[mcp])")
    p.add_argument("--cors-origin", action="append", default=[], help="an origin browsers may call from "
                                                                     "(repeat; none by default)")


def configure_keys(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="make a key; it is printed once")
    create.add_argument("--tenant", required=True, help="the app the key belongs to (its own store)")
    create.add_argument("--admin", action="store_true", help="the key may manage its tenant's keys")
    create.add_argument("--user", action="append", dest="user_ids", help="bind the key to this user_id "
                                                                         "(repeat); default: every user")
    create.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    lst = sub.add_parser("list", help="every key (never the secrets)")
    lst.add_argument("--tenant")
    lst.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    revoke = sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.add_argument("--json", action="store_true", default=argparse.SUPPRESS)


def _config(args: argparse.Namespace) -> Optional[dict[str, Any]]:
    path = getattr(args, "config", None)
    if not path:
        return None
    try:
        value = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"--config {path}: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigurationError(f"--config {path}: not a JSON object")
    return value


def _no_db(args: argparse.Namespace) -> None:
    if getattr(args, "db", None):
        raise ConfigurationError("--db does not apply: the server keeps keys.db and one store per tenant "
                                 "(tenants/<tenant>.db) under $MEMLANE_HOME")


def run_keys(args: argparse.Namespace) -> int:
    from .server.keys import KeyStore
    _no_db(args)
    store = KeyStore(default_home() / "keys.db")
    try:
        if args.keys_command == "create":
            secret, record = store.create(args.tenant, args.admin, args.user_ids)
            if args.json:
                print(json.dumps({**record.public(), "key": secret}, indent=2))
            else:
                print(secret)
                print(f"key {record.id} for tenant {record.tenant}{' (admin)' if record.admin else ''}: "
                      "store it now, it is not shown again", file=sys.stderr)
        elif args.keys_command == "list":
            rows = [k.public() for k in store.list(args.tenant)]
            if args.json:
                print(json.dumps(rows, indent=2))
            else:
                for k in rows:
                    users = ",".join(k["user_ids"]) if k["user_ids"] else "*"
                    state = f"revoked {k['revoked_at']}" if k["revoked_at"] else "live"
                    print(f"{k['id']}  {k['tenant']:<20} {'admin' if k['admin'] else 'user ':<5}  users={users}  "
                          f"{k['created_at']}  {state}")
        else:
            record = store.revoke(args.key_id)
            print(json.dumps(record.public(), indent=2) if args.json else f"revoked {record.id}")
    finally:
        store.close()
    return 0


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from .server.app import SETTINGS_ENV, ServerSettings, create_app
    except ImportError:
        raise missing_extra("fastapi and uvicorn", "server") from None
    _no_db(args)
    if args.no_auth and args.host not in LOOPBACK:
        raise ConfigurationError("--no-auth is only allowed with --host 127.0.0.1")
    if args.workers < 1:
        raise ConfigurationError("--workers must be at least 1")
    settings = ServerSettings(home=str(default_home()), config=_config(args), no_auth=args.no_auth, host=args.host,
                              rate_limit=args.rate_limit, max_body_bytes=args.max_body_bytes,
                              cors_origins=list(args.cors_origin), mcp=args.mcp)
    if args.no_auth:
        print("!" * 78 + "\nmemlane serve --no-auth: NO API KEYS. Anything that can reach "
              f"{args.host}:{args.port} reads and deletes every memory.\n" + "!" * 78, file=sys.stderr)
    print(f"memlane serve: http://{args.host}:{args.port} (docs at /docs), data in {settings.home_path()}",
          file=sys.stderr)
    if args.workers == 1:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning")
    else:
        os.environ[SETTINGS_ENV] = settings.to_env()
        uvicorn.run("memlane.server.app:factory", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level="warning")
    return 0
