"""The routes mem0's platform client (mem0ai's MemoryClient / AsyncMemoryClient) calls, with the shapes it
sends and expects, so an application moves to a self-hosted memlane by changing `host`."""
from __future__ import annotations

import ast
import json
from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict

from ..errors import NotFoundError, ValidationError
from .service import Principal

Obj = dict[str, Any]
MAX_FILTER_CHARS = 10_000


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")  # mem0's client sends platform keys memlane has no use for


class AddBody(_Lenient):
    messages: Any
    user_id: Optional[str] = None
    agent_id: Optional[str] = None
    run_id: Optional[str] = None
    metadata: Optional[Obj] = None
    infer: bool = True
    timestamp: Any = None
    expiration_date: Any = None
    prompt: Optional[str] = None
    custom_instructions: Optional[str] = None
    async_mode: bool = False


class SearchBody(_Lenient):
    query: str
    filters: Optional[Obj] = None
    top_k: Optional[int] = None
    limit: Optional[int] = None
    threshold: Optional[float] = None
    rerank: Optional[bool] = None


class ListBody(_Lenient):
    filters: Optional[Obj] = None


class UpdateBody(_Lenient):
    text: Optional[str] = None
    metadata: Optional[Obj] = None
    expiration_date: Any = None


class BatchBody(_Lenient):
    memories: list[Obj]


def parse_filters(text: Optional[str]) -> Optional[Obj]:
    """mem0's client sends delete_all's filters as a Python repr in the query string ({'user_id': 'alice'});
    JSON is taken too. Read as a literal (ast.literal_eval: no names, no calls), never evaluated."""
    if text is None or text == "":
        return None
    if len(text) > MAX_FILTER_CHARS:
        raise ValidationError(f"filters over {MAX_FILTER_CHARS} characters")
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
            raise ValidationError(f"filters is neither JSON nor a Python dict literal: {exc}") from None
    if not isinstance(value, dict):
        raise ValidationError("filters must be an object")
    return value


def router(principal: Callable[..., Any], state: Any) -> APIRouter:
    from .app import ERRORS
    r = APIRouter(tags=["mem0 platform"], responses=ERRORS)
    P = Depends(principal)

    @r.get("/v1/ping/", summary="mem0: ping (the client's constructor checks the key with it)")
    def ping(p: Principal = P) -> Obj:
        return {"status": "ok", "org_id": p.tenant, "project_id": p.tenant, "user_email": None}

    @r.post("/v3/memories/add/", summary="mem0: add")
    def add(body: AddBody, p: Principal = P) -> Obj:
        p.check_scope(body.user_id)
        prompt = body.prompt or body.custom_instructions
        result = p.memory.add(body.messages, user_id=body.user_id, agent_id=body.agent_id, run_id=body.run_id,
                              metadata=body.metadata, infer=body.infer, timestamp=body.timestamp,
                              expiration_date=body.expiration_date, prompt=prompt, background=body.async_mode)
        if body.async_mode:
            state.metrics.job_submitted()
            return {"status": "PENDING", "event_id": result["job_id"], "message": "queued"}
        state.metrics.llm_usage(result)
        return result

    @r.post("/v3/memories/search/", summary="mem0: search")
    def search(body: SearchBody, p: Principal = P) -> Obj:
        p.check_scope(None, body.filters)
        return p.memory.search(body.query, filters=body.filters, top_k=body.top_k, limit=body.limit,
                               threshold=body.threshold, rerank=body.rerank)

    @r.post("/v3/memories/", summary="mem0: get_all, paginated")
    def get_all(request: Request, body: ListBody, page: int = Query(1, ge=1, le=1_000_000),
                page_size: int = Query(100, ge=1, le=1000), p: Principal = P) -> Obj:
        p.check_scope(None, body.filters)
        result = p.memory.get_all(filters=body.filters, limit=page_size, offset=(page - 1) * page_size)
        total = result["total"]

        def link(n: int) -> str:
            return str(request.url.include_query_params(page=n, page_size=page_size))
        return {**result, "count": total, "next": link(page + 1) if page * page_size < total else None,
                "previous": link(page - 1) if page > 1 else None}

    @r.get("/v1/memories/{memory_id}/", summary="mem0: get")
    def get(memory_id: str, p: Principal = P) -> Obj:
        item = p.get(memory_id)
        if item is None:
            raise NotFoundError(f"memory {memory_id} not found")
        return item

    @r.put("/v1/memories/{memory_id}/", summary="mem0: update")
    def update(memory_id: str, body: UpdateBody, p: Principal = P) -> Obj:
        changes: dict[str, Any] = {"text": body.text, "metadata": body.metadata}
        if "expiration_date" in body.model_fields_set:
            changes["expiration_date"] = body.expiration_date
        return p.update(memory_id, **changes)

    @r.delete("/v1/memories/{memory_id}/", summary="mem0: delete")
    def delete(memory_id: str, p: Principal = P) -> Obj:
        return p.delete(memory_id)

    @r.get("/v1/memories/{memory_id}/history/", summary="mem0: history")
    def history(memory_id: str, p: Principal = P) -> list[Obj]:
        return p.history(memory_id)

    @r.delete("/v1/memories/", summary="mem0: delete_all (filters as JSON or a Python dict literal)")
    def delete_all(user_id: Optional[str] = None, agent_id: Optional[str] = None, run_id: Optional[str] = None,
                   filters: Optional[str] = None, p: Principal = P) -> Obj:
        parsed = parse_filters(filters)
        p.check_scope(user_id, parsed)
        return p.memory.delete_all(user_id=user_id, agent_id=agent_id, run_id=run_id, filters=parsed)

    @r.get("/v1/entities/", summary="mem0: users")
    def users(p: Principal = P) -> Obj:
        return p.users()

    @r.delete("/v2/entities/{entity_type}/{name}/", summary="mem0: delete_users, one entity")
    def delete_entity(entity_type: str, name: str, p: Principal = P) -> Obj:
        field = {"user": "user_id", "agent": "agent_id", "run": "run_id"}.get(entity_type)
        if field is None:
            raise ValidationError(f"entity type {entity_type!r}: memlane has user, agent and run")
        scope: dict[str, Optional[str]] = {"user_id": None, "agent_id": None, "run_id": None, field: name}
        return p.delete_users(scope["user_id"], scope["agent_id"], scope["run_id"])

    @r.put("/v1/batch/", summary="mem0: batch_update")
    def batch_update(body: BatchBody, p: Principal = P) -> Obj:
        p.batch(body.memories)
        return p.memory.batch_update(body.memories)

    @r.delete("/v1/batch/", summary="mem0: batch_delete (a JSON body)")
    def batch_delete(body: BatchBody, p: Principal = P) -> Obj:
        p.batch(body.memories)
        return p.memory.batch_delete(body.memories)

    return r
