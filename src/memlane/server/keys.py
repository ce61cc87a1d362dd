"""API keys: stored hashed (SHA-256 of a 256-bit random secret) in the server's own SQLite file,
$MEMLANE_HOME/keys.db. A key is bound to a tenant and optionally to a set of user_ids; admin keys manage
keys. The secret is shown once, when the key is created, and never stored or logged."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..errors import NotFoundError, ValidationError

PREFIX = "mlk_"
TENANT = re.compile(r"[a-z][a-z0-9_]{0,39}")
SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    user_ids TEXT,
    created_at TEXT NOT NULL,
    revoked_at TEXT
)"""


def check_tenant(name: str) -> str:
    """Tenant names name a file and a PostgreSQL schema: lowercase letters, digits and _, 1-40 long."""
    if not isinstance(name, str) or not TENANT.fullmatch(name):  # match() would let "a\n" through
        raise ValidationError(f"tenant {name!r} must be 1-40 lowercase letters, digits or _, starting with a letter")
    return name


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class ApiKey:
    id: str
    tenant: str
    admin: bool = False
    user_ids: Optional[frozenset[str]] = None  # None: every user of the tenant
    created_at: str = ""
    revoked_at: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "tenant": self.tenant, "admin": self.admin,
                "user_ids": None if self.user_ids is None else sorted(self.user_ids),
                "created_at": self.created_at, "revoked_at": self.revoked_at}


def _row(row: tuple[Any, ...]) -> ApiKey:
    key_id, tenant, admin, user_ids, created, revoked = row
    return ApiKey(key_id, tenant, bool(admin), None if user_ids is None else frozenset(json.loads(user_ids)),
                  created, revoked)


class KeyStore:
    """The key table. Safe to share between threads and processes (WAL, one short transaction a call)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def create(self, tenant: str, admin: bool = False,
               user_ids: Optional[list[str]] = None) -> tuple[str, ApiKey]:
        """A new key: (the secret, to show once; its record)."""
        check_tenant(tenant)
        if user_ids is not None and (not isinstance(user_ids, list) or not user_ids
                                     or not all(isinstance(u, str) and u for u in user_ids)):
            raise ValidationError("user_ids must be a non-empty list of non-empty strings")
        key_id = uuid.uuid4().hex[:16]
        secret = PREFIX + secrets.token_urlsafe(32)
        record = ApiKey(key_id, tenant, admin, None if user_ids is None else frozenset(user_ids), _now())
        self._conn().execute(
            "INSERT INTO api_keys (id, hash, tenant, admin, user_ids, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (key_id, digest(secret), tenant, int(admin),
             None if user_ids is None else json.dumps(sorted(set(user_ids))), record.created_at))
        return secret, record

    def verify(self, secret: str) -> Optional[ApiKey]:
        """The live key whose secret this is, or None."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        wanted = digest(secret)
        row = self._conn().execute("SELECT id, tenant, admin, user_ids, created_at, revoked_at, hash FROM api_keys "
                                   "WHERE hash = ?", (wanted,)).fetchone()
        if row is None or not hmac.compare_digest(row[6], wanted) or row[5] is not None:
            return None
        return _row(row[:6])

    def list(self, tenant: Optional[str] = None) -> list[ApiKey]:
        sql = "SELECT id, tenant, admin, user_ids, created_at, revoked_at FROM api_keys"
        args: tuple[Any, ...] = ()
        if tenant is not None:
            sql, args = sql + " WHERE tenant = ?", (tenant,)
        return [_row(r) for r in self._conn().execute(sql + " ORDER BY created_at, id", args).fetchall()]

    def revoke(self, key_id: str, tenant: Optional[str] = None) -> ApiKey:
        conn = self._conn()
        row = conn.execute("SELECT id, tenant, admin, user_ids, created_at, revoked_at FROM api_keys WHERE id = ?",
                           (key_id,)).fetchone()
        if row is None or (tenant is not None and row[1] != tenant):
            raise NotFoundError(f"key {key_id} not found")
        if row[5] is None:
            conn.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (_now(), key_id))
        return _row(conn.execute("SELECT id, tenant, admin, user_ids, created_at, revoked_at FROM api_keys "
                                 "WHERE id = ?", (key_id,)).fetchone())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
