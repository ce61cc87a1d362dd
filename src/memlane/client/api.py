"""MemoryClient and AsyncMemoryClient: Memory's methods, arguments and results, over HTTP. The method
bodies are written once (_Methods); `_do` sends the generator with blocking or awaited I/O."""
from __future__ import annotations

import asyncio
import weakref
from datetime import date, datetime
from typing import Any, Optional

import httpx

from ..errors import ValidationError
from ..http import RetryPolicy, deadline_client, send_async, send_sync
from ..inputs import UNSET
from .core import Core, Op

Messages = Any


def _when(value: Any) -> Any:
    """Dates and datetimes travel as ISO 8601 text (which Memory takes as well)."""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def _scope(user_id: Optional[str], agent_id: Optional[str], run_id: Optional[str]) -> dict[str, Any]:
    return {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}


class _Methods:
    _core: Core

    def _do(self, op: Op) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def add(self, messages: Messages, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
            run_id: Optional[str] = None, metadata: Optional[dict[str, Any]] = None, infer: bool = True,
            timestamp: Any = None, memory_type: Optional[str] = None, prompt: Optional[str] = None,
            background: bool = False, expiration_date: Any = None) -> Any:
        return self._do(self._core.request("POST", "/api/memories", json={
            "messages": messages, **_scope(user_id, agent_id, run_id), "metadata": metadata, "infer": infer,
            "timestamp": _when(timestamp), "memory_type": memory_type, "prompt": prompt, "background": background,
            "expiration_date": _when(expiration_date)}))

    def search(self, query: str, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
               run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, limit: Optional[int] = None,
               threshold: Optional[float] = None, rerank: Optional[bool] = None, top_k: Optional[int] = None,
               show_expired: bool = False, as_of: Any = None) -> Any:
        return self._do(self._core.request("POST", "/api/memories/search", json={
            "query": query, **_scope(user_id, agent_id, run_id), "filters": filters, "limit": limit,
            "threshold": threshold, "rerank": rerank, "top_k": top_k, "show_expired": show_expired,
            "as_of": _when(as_of)}))

    def get(self, memory_id: str) -> Any:
        """The memory with this id (None when there is none, or it is not this key's)."""
        _check_id(memory_id)
        return self._do(self._core.request("GET", "/api/memories/{}", memory_id, not_found=lambda: None))

    def get_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None,
                limit: Optional[int] = None, offset: int = 0, top_k: Optional[int] = None,
                show_expired: bool = False, as_of: Any = None) -> Any:
        return self._do(self._core.request("POST", "/api/memories/list", json={
            **_scope(user_id, agent_id, run_id), "filters": filters, "limit": limit, "offset": offset,
            "top_k": top_k, "show_expired": show_expired, "as_of": _when(as_of)}))

    def update(self, memory_id: str, text: Optional[str] = None, metadata: Optional[dict[str, Any]] = None,
               expiration_date: Any = UNSET, data: Optional[str] = None, *,
               replace_metadata: bool = False) -> Any:
        _check_id(memory_id)
        body: dict[str, Any] = {"text": text, "metadata": metadata, "data": data,
                                "replace_metadata": replace_metadata}
        if expiration_date is not UNSET:
            body["expiration_date"] = _when(expiration_date)
        return self._do(self._core.request("PATCH", "/api/memories/{}", memory_id, json=body))

    def batch_update(self, memories: list[dict[str, Any]]) -> Any:
        return self._do(self._core.request("PUT", "/api/batch", json={"memories": memories}))

    def delete(self, memory_id: str) -> Any:
        _check_id(memory_id)
        return self._do(self._core.request("DELETE", "/api/memories/{}", memory_id))

    def batch_delete(self, memories: list[dict[str, Any]]) -> Any:
        return self._do(self._core.request("POST", "/api/batch/delete", json={"memories": memories}))

    def users(self) -> Any:
        return self._do(self._core.request("GET", "/api/users"))

    def delete_users(self, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                     run_id: Optional[str] = None) -> Any:
        return self._do(self._core.request("POST", "/api/users/delete", json=_scope(user_id, agent_id, run_id)))

    def delete_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                   run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None) -> Any:
        return self._do(self._core.request("POST", "/api/memories/delete_all",
                                           json={**_scope(user_id, agent_id, run_id), "filters": filters}))

    def history(self, memory_id: str) -> Any:
        _check_id(memory_id)
        return self._do(self._core.request("GET", "/api/memories/{}/history", memory_id))

    def messages(self, message_ids: list[str]) -> Any:
        return self._do(self._core.request("POST", "/api/messages", json={"message_ids": message_ids}))

    def message_log(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                    run_id: Optional[str] = None, limit: int = 100, offset: int = 0) -> Any:
        return self._do(self._core.request("POST", "/api/messages/log", json={
            **_scope(user_id, agent_id, run_id), "limit": limit, "offset": offset}))

    def reset(self) -> Any:
        """Delete every memory, message and history row of this key's tenant (an admin key)."""
        return self._do(self._reset())

    def _reset(self) -> Op:
        yield from self._core.request("POST", "/api/reset")
        return None

    def relations(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                  run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, as_of: Any = None) -> Any:
        return self._do(self._core.request("POST", "/api/relations", json={
            **_scope(user_id, agent_id, run_id), "filters": filters, "as_of": _when(as_of)}))

    def export(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
               run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None) -> Any:
        return self._do(self._core.request("POST", "/api/export", json={
            **_scope(user_id, agent_id, run_id), "filters": filters}))

    def job(self, job_id: str) -> Any:
        _check_id(job_id, "job_id")
        return self._do(self._core.request("GET", "/api/jobs/{}", job_id))

    def wait(self, job_id: str, timeout: Optional[float] = None) -> Any:
        _check_id(job_id, "job_id")
        return self._do(self._core.wait(job_id, timeout))

    def retry_job(self, job_id: str) -> Any:
        _check_id(job_id, "job_id")
        return self._do(self._core.request("POST", "/api/jobs/{}/retry", job_id))

    def create_key(self, tenant: Optional[str] = None, *, admin: bool = False,
                   user_ids: Optional[list[str]] = None) -> Any:
        return self._do(self._core.request("POST", "/api/keys", json={"tenant": tenant, "admin": admin,
                                                                       "user_ids": user_ids}))

    def list_keys(self) -> Any:
        return self._do(self._core.request("GET", "/api/keys"))

    def revoke_key(self, key_id: str) -> Any:
        _check_id(key_id, "key_id")
        return self._do(self._core.request("DELETE", "/api/keys/{}", key_id))


def _check_id(value: Any, what: str = "memory_id") -> None:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} must be a non-empty string, got {type(value).__name__}")


class MemoryClient(_Methods):
    """Memory's API on a memlane server (`memlane serve`): MemoryClient(host, api_key). Thread-safe."""

    def __init__(self, host: str = "http://127.0.0.1:8000", api_key: Optional[str] = None, *,
                 timeout: float = 60.0, max_retries: int = 3, retry_base_delay: float = 0.5,
                 retry_max_delay: float = 20.0):
        self.policy = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay,
                                  timeout=timeout)
        self._core = Core(host, api_key, self.policy)
        self._client: Optional[httpx.Client] = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = deadline_client(self.policy.timeout)
        return self._client

    def _do(self, op: Op) -> Any:
        return send_sync(op, self.client, self.policy.timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> "MemoryClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncMemoryClient(_Methods):
    """AsyncMemory's API on a memlane server: every method is awaited."""

    def __init__(self, host: str = "http://127.0.0.1:8000", api_key: Optional[str] = None, *,
                 timeout: float = 60.0, max_retries: int = 3, retry_base_delay: float = 0.5,
                 retry_max_delay: float = 20.0):
        self.policy = RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay, max_delay=retry_max_delay,
                                  timeout=timeout)
        self._core = Core(host, api_key, self.policy)
        self._clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]" = (
            weakref.WeakKeyDictionary())

    def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()  # an AsyncClient's connections belong to one loop
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient(timeout=self.policy.timeout)
        return client

    def _do(self, op: Op) -> Any:
        return send_async(op, self._aclient(), self.policy.timeout)

    async def aclose(self) -> None:
        for client in list(self._clients.values()):
            await client.aclose()
        self._clients.clear()

    def close(self) -> None:
        """Drop the connections (use aclose() inside a running loop to close them cleanly)."""
        self._clients.clear()

    async def __aenter__(self) -> "AsyncMemoryClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
