"""memlane's own API under /api: one route per Memory method, the same arguments (as JSON) and results."""
from __future__ import annotations

from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ..errors import NotFoundError
from .service import Forbidden, Principal

Obj = dict[str, Any]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scope(_Body):
    user_id: Optional[str] = None
    agent_id: Optional[str] = None
    run_id: Optional[str] = None

    def scope(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "agent_id": self.agent_id, "run_id": self.run_id}


class AddBody(Scope):
    messages: Any = Field(description="a string, a message {role, content}, or a list of messages")
    metadata: Optional[Obj] = None
    infer: StrictBool = True
    timestamp: Any = None
    memory_type: Optional[str] = None
    prompt: Optional[str] = None
    background: StrictBool = False
    expiration_date: Any = None


class SearchBody(Scope):
    query: str
    filters: Optional[Obj] = None
    limit: Optional[int] = None
    threshold: Optional[float] = None
    rerank: Optional[StrictBool] = None
    top_k: Optional[int] = None
    show_expired: StrictBool = False
    as_of: Any = None


class ListBody(Scope):
    filters: Optional[Obj] = None
    limit: Optional[int] = None
    offset: int = 0
    top_k: Optional[int] = None
    show_expired: StrictBool = False
    as_of: Any = None


class UpdateBody(_Body):
    text: Optional[str] = None
    data: Optional[str] = None
    metadata: Optional[Obj] = None
    expiration_date: Any = Field(default=None, description="null clears the date; leave it out to keep it")
    replace_metadata: StrictBool = False


class DeleteAllBody(Scope):
    filters: Optional[Obj] = None


class BatchBody(_Body):
    memories: list[Obj]


class MessagesBody(_Body):
    message_ids: list[str]


class LogBody(Scope):
    limit: int = 100
    offset: int = 0


class RelationsBody(Scope):
    filters: Optional[Obj] = None
    as_of: Any = None


class KeyBody(_Body):
    tenant: Optional[str] = Field(default=None, description="the admin key's own tenant when left out")
    admin: StrictBool = False
    user_ids: Optional[list[str]] = None


def _optional(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def router(principal: Callable[..., Any], state: Any) -> APIRouter:
    from .app import ERRORS
    r = APIRouter(prefix="/api", tags=["memories"], responses=ERRORS)
    P = Depends(principal)

    @r.post("/memories", summary="add")
    def add(body: AddBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id)
        result = p.memory.add(body.messages, **body.scope(), metadata=body.metadata, infer=body.infer,
                              timestamp=body.timestamp, memory_type=body.memory_type, prompt=body.prompt,
                              background=body.background, expiration_date=body.expiration_date)
        if body.background:
            state.metrics.job_submitted()
        state.metrics.llm_usage(result)
        return result

    @r.get("/jobs/{job_id}", summary="job: a background add's state")
    def job(job_id: str, p: Principal = P) -> Obj:
        return p.job(job_id)

    @r.post("/jobs/{job_id}/retry", summary="retry a failed job")
    def retry_job(job_id: str, p: Principal = P) -> Obj:
        return p.memory.retry_job(job_id)

    @r.post("/memories/search", summary="search")
    def search(body: SearchBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id, body.filters)
        return p.memory.search(body.query, **body.scope(), filters=body.filters, limit=body.limit,
                               threshold=body.threshold, rerank=body.rerank, top_k=body.top_k,
                               show_expired=body.show_expired, as_of=body.as_of)

    @r.post("/memories/list", summary="get_all: a page of a scope's memories")
    def get_all(body: ListBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id, body.filters)
        return p.memory.get_all(**body.scope(), filters=body.filters, limit=body.limit, offset=body.offset,
                                top_k=body.top_k, show_expired=body.show_expired, as_of=body.as_of)

    @r.get("/memories", summary="list: a page of a scope's memories (query parameters)")
    def list_memories(user_id: Optional[str] = None, agent_id: Optional[str] = None, run_id: Optional[str] = None,
                      limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                      p: Principal = P) -> Obj:
        p.check_scope(user_id)
        return p.memory.get_all(user_id=user_id, agent_id=agent_id, run_id=run_id, limit=limit, offset=offset)

    @r.get("/memories/{memory_id}", summary="get")
    def get(memory_id: str, p: Principal = P) -> Obj:
        item = p.get(memory_id)
        if item is None:
            raise NotFoundError(f"memory {memory_id} not found")
        return item

    @r.patch("/memories/{memory_id}", summary="update")
    def update(memory_id: str, body: UpdateBody, p: Principal = P) -> Obj:
        changes: dict[str, Any] = {"text": body.text, "metadata": body.metadata, "data": body.data,
                                   "replace_metadata": body.replace_metadata}
        if "expiration_date" in body.model_fields_set:
            changes["expiration_date"] = body.expiration_date
        return p.update(memory_id, **changes)

    @r.delete("/memories/{memory_id}", summary="delete")
    def delete(memory_id: str, p: Principal = P) -> Obj:
        return p.delete(memory_id)

    @r.get("/memories/{memory_id}/history", summary="history")
    def history(memory_id: str, p: Principal = P) -> list[Obj]:
        return p.history(memory_id)

    @r.post("/memories/delete_all", summary="delete_all: every memory of a scope")
    def delete_all(body: DeleteAllBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id, body.filters)
        return p.memory.delete_all(**body.scope(), filters=body.filters)

    @r.put("/batch", summary="batch_update")
    def batch_update(body: BatchBody, p: Principal = P) -> Obj:
        p.batch(body.memories)
        return p.memory.batch_update(body.memories)

    @r.post("/batch/delete", summary="batch_delete")
    def batch_delete(body: BatchBody, p: Principal = P) -> Obj:
        p.batch(body.memories)
        return p.memory.batch_delete(body.memories)

    @r.get("/users", summary="users: every scope, with counts")
    def users(p: Principal = P) -> Obj:
        return p.users()

    @r.post("/users/delete", summary="delete_users")
    def delete_users(body: Scope, p: Principal = P) -> Obj:
        return p.delete_users(body.user_id, body.agent_id, body.run_id)

    @r.post("/relations", summary="relations: a scope's graph (empty when graph memory is off)")
    def relations(body: RelationsBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id, body.filters)
        result = p.memory.get_all(**body.scope(), filters=body.filters, limit=1, as_of=body.as_of)
        return {"relations": result.get("relations", [])}

    @r.post("/export", summary="export: every memory of a scope (and its relations)")
    def export(body: RelationsBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id, body.filters)
        rows: list[Obj] = []
        result: Obj = {}
        while True:
            result = p.memory.get_all(**body.scope(), filters=body.filters, limit=1000, offset=len(rows),
                                      show_expired=True, as_of=body.as_of)
            rows += result["results"]
            if not result["results"] or len(rows) >= result["total"]:
                break
        return {"results": rows, "total": len(rows), "relations": result.get("relations", [])}

    @r.post("/messages", summary="messages: the logged messages behind source_message_ids")
    def messages(body: MessagesBody, p: Principal = P) -> list[Obj]:
        p.check_unrestricted("reading the message log")
        return p.memory.messages(body.message_ids)

    @r.post("/messages/log", summary="message_log: a scope's logged messages")
    def message_log(body: LogBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id)
        return p.memory.message_log(**body.scope(), limit=body.limit, offset=body.offset)

    @r.post("/reset", summary="reset: delete every memory, message and history row of the tenant")
    def reset(p: Principal = P) -> Obj:
        p.check_unrestricted("reset")
        if not p.admin:
            raise Forbidden("reset needs an admin key")
        p.memory.reset()
        return {"message": "reset"}

    @r.post("/keys", summary="create a key (admin): the secret is in the answer, once", tags=["keys"])
    def create_key(body: KeyBody, p: Principal = P) -> Obj:
        _admin(p, body.tenant)
        secret, record = state.keys.create(body.tenant or p.tenant, body.admin, body.user_ids)
        return {**record.public(), "key": secret}

    @r.get("/keys", summary="list the tenant's keys (admin)", tags=["keys"])
    def list_keys(p: Principal = P) -> Obj:
        _admin(p, None)
        return {"results": [k.public() for k in state.keys.list(p.tenant)]}

    @r.delete("/keys/{key_id}", summary="revoke a key (admin)", tags=["keys"])
    def revoke_key(key_id: str, p: Principal = P) -> Obj:
        _admin(p, None)
        return state.keys.revoke(key_id, tenant=p.tenant).public()

    return r


def _admin(p: Principal, tenant: Optional[str]) -> None:
    """Admin keys manage the keys of their own tenant (other tenants' keys: the CLI)."""
    if not p.admin:
        raise Forbidden("managing keys needs an admin key")
    if tenant is not None and tenant != p.tenant:
        raise Forbidden("an admin key manages the keys of its own tenant only")
