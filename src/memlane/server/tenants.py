"""One store per tenant: the tenant boundary is physical. On the embedded store each tenant has its own
SQLite file ($MEMLANE_HOME/tenants/<tenant>.db); on PostgreSQL its own schema (collection_name
<base>_<tenant>). A request's key selects its tenant's Memory; nothing else is reachable from it."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

from ..config import MemoryConfig
from ..errors import ConfigurationError
from ..memory import Memory
from .keys import check_tenant

EMBEDDED = "sqlite"
POSTGRES = "pgvector"


def tenant_config(base: MemoryConfig, home: Path, tenant: str) -> MemoryConfig:
    check_tenant(tenant)
    config = base.model_copy(deep=True)
    store = dict(config.vector_store.config)
    if config.vector_store.provider == EMBEDDED:
        store.pop("db_path", None)
        store["path"] = str(home / "tenants" / f"{tenant}.db")
        config.history_db_path = None
    elif config.vector_store.provider == POSTGRES:
        store["collection_name"] = f"{store.get('collection_name') or 'memlane'}_{tenant}"
    else:
        raise ConfigurationError(f"memlane serve keeps one store per tenant, which it can do on the "
                                 f"{EMBEDDED!r} and {POSTGRES!r} stores, not on {config.vector_store.provider!r}")
    config.vector_store = config.vector_store.model_copy(update={"config": store})
    return config


class Tenants:
    """The open Memory of each tenant, opened on first use and kept until close()."""

    def __init__(self, base: MemoryConfig, home: Path):
        self.base = base
        self.home = home
        self._open: dict[str, Memory] = {}
        self._lock = threading.Lock()
        if base.vector_store.provider == EMBEDDED:
            (home / "tenants").mkdir(parents=True, exist_ok=True)
        tenant_config(base, home, "probe")  # an unsupported store fails at start, not on the first request

    def get(self, tenant: str) -> Memory:
        memory = self._open.get(tenant)
        if memory is not None:
            return memory
        with self._lock:
            memory = self._open.get(tenant)
            if memory is None:
                memory = self._open[tenant] = Memory(tenant_config(self.base, self.home, tenant))
            return memory

    def opened(self) -> list[str]:
        return sorted(self._open)

    def peek(self, tenant: str) -> Optional[Memory]:
        return self._open.get(tenant)

    def close(self) -> None:
        with self._lock:
            for memory in self._open.values():
                memory.close()
            self._open.clear()
