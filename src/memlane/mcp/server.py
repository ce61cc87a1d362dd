"""The MCP server: memlane's API as Model Context Protocol tools and resources.

build_server() registers the tools on an `mcp.server.MCPServer` (the official SDK, 2.3 or later); the
stdio transport (`memlane mcp`) and the streamable-HTTP app (`memlane serve --mcp`, mounted at /mcp) are
in transports.py. The SDK is an optional dependency: without it, building a server raises a
ConfigurationError naming `memlane[mcp]`.

Every tool call runs the Memory call in a worker thread (the SDK runs synchronous tools there). A memlane
error comes back as an MCP tool error (`isError: true`) whose text is the error's message; anything else is
reported by the SDK as "Error executing tool <name>", its traceback going to the server's log only.

Scopes: each tool takes user_id / agent_id / run_id. When none is given, the default user is used
(`default_user_id`, else $MEMLANE_MCP_USER), so an assistant need not pass one. Tools that take a memory id
check it against the scope in effect (the ids given, or the default user): a memory of another scope is
reported as not found, the same as an unknown id.

Tenants (HTTP): `memory_for_request(request)` returns the request's Memory, or a tenant object with
`.memory` and `.user_ids` (the REST server's Principal, or Tenant below): when user_ids is not None, the
calls reach only the scopes of those users (a call must name one of them, or have it as the default user),
and a memory of another user is not found.
"""
# No `from __future__ import annotations`: the SDK reads the tools' annotations, and the ones naming SDK
# types (Context) are imported inside build_server, so they are evaluated when the tools are defined.
import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Optional, Union

from pydantic import Field

from ..errors import MemlaneError, NotFoundError, ValidationError, missing_extra

if TYPE_CHECKING:
    from mcp.server import MCPServer
    from starlette.requests import Request

    from ..memory import Memory

# The variable naming the default user when build_server is not given one.
USER_ENV = "MEMLANE_MCP_USER"
SCOPE_KEYS = ("user_id", "agent_id", "run_id")
INSTRUCTIONS = (
    "Long-term memory. Search it (search_memories) before answering questions about the user, and store "
    "durable facts, preferences and decisions the user shares (add_memory). Memories are scoped by user_id, "
    "agent_id and run_id; when none is given the server's default user is used.")

MemorySource = Union["Memory", Callable[[], "Memory"]]
RequestMemory = Callable[["Request"], Any]  # a Memory, or a tenant: .memory and .user_ids (see Tenant)
# Where http_app's authenticate hook leaves its result for the tools: request.scope["state"][TENANT_KEY].
TENANT_KEY = "memlane_mcp_tenant"


@dataclass(frozen=True)
class Tenant:
    """A Memory and the users a caller may reach in it (None: every user)."""

    memory: "Memory"
    user_ids: Optional[frozenset[str]] = None


def as_tenant(value: Any) -> Tenant:
    """A Memory as an unrestricted Tenant; anything with .memory and .user_ids as itself."""
    if hasattr(value, "memory") and hasattr(value, "user_ids"):
        users = value.user_ids
        return Tenant(value.memory, None if users is None else frozenset(users))
    return Tenant(value)


UserId = Annotated[Optional[str], Field(
    description="The user the memories belong to. Omit to use the server's default user.")]
AgentId = Annotated[Optional[str], Field(description="The agent the memories belong to (optional).")]
RunId = Annotated[Optional[str], Field(description="The run or conversation the memories belong to (optional).")]
MemoryId = Annotated[str, Field(description="The memory's full id, as add_memory, search_memories and "
                                            "list_memories return it.")]
Filters = Annotated[Optional[dict[str, Any]], Field(
    description='Metadata filters, e.g. {"category": "food"}, or with operators: {"score": {"gte": 3}}, '
                '{"AND": [...]}, {"OR": [...]}.')]


def _require_sdk() -> None:
    try:
        import mcp.server  # noqa: F401
    except ImportError:
        raise missing_extra("mcp", "mcp") from None


def _default_user(default_user_id: Optional[str]) -> Optional[str]:
    return default_user_id if default_user_id is not None else (os.environ.get(USER_ENV) or None)


def build_server(memory_for: Optional[MemorySource] = None, *, default_user_id: Optional[str] = None,
                 memory_for_request: Optional[RequestMemory] = None, name: str = "memlane",
                 http_only: bool = False) -> "MCPServer":
    """An MCPServer exposing memlane's API as tools, and each scope's memories as a resource.

    `memory_for` is the Memory the tools act on, or a callable returning it (called on each tool call).
    `memory_for_request`, for the HTTP transport: called with the Starlette request that carried the tool
    call, it returns that tenant's Memory, or a tenant object (.memory, .user_ids; see Tenant); it takes
    precedence over `memory_for` when the call came over HTTP. Over HTTP, the tenant http_app's
    `authenticate` hook left in the request comes next. `http_only`: no `memory_for` is needed (http_app
    with `authenticate` only). `default_user_id` (else $MEMLANE_MCP_USER) is the user_id used when a call
    names no scope."""
    _require_sdk()
    from mcp.server import MCPServer
    from mcp.server.mcpserver import Context
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError
    from mcp.types import ToolAnnotations

    from .. import __version__

    if memory_for is None and memory_for_request is None and not http_only:
        raise ValidationError("build_server needs a Memory (or a callable returning one), or memory_for_request")
    default_user = _default_user(default_user_id)
    instructions = INSTRUCTIONS + (f" The default user is {default_user!r}." if default_user else "")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        server: MCPServer = MCPServer(name, instructions=instructions, version=__version__, log_level="WARNING")
    finally:  # the SDK configures the root logger (logging.basicConfig); that is the application's to do
        root.handlers[:], root.level = handlers, level

    def tenant(ctx: Optional[Context]) -> Tenant:
        request = ctx.request_context.request if ctx is not None else None
        if request is not None:
            if memory_for_request is not None:
                return as_tenant(memory_for_request(request))
            state = request.scope.get("state") or {}
            if TENANT_KEY in state:
                return as_tenant(state[TENANT_KEY])
        if memory_for is None:
            raise ValidationError("this MCP server answers over HTTP only")
        return Tenant(memory_for() if callable(memory_for) else memory_for)

    def scope(t: Tenant, user_id: Optional[str], agent_id: Optional[str], run_id: Optional[str]) -> dict[str, Any]:
        """The scope of a call: the ids given, else the default user; checked against the tenant's users."""
        if user_id is None and agent_id is None and run_id is None:
            user_id = default_user
        if t.user_ids is not None and (user_id is None or user_id not in t.user_ids):
            raise ValidationError("this key may only reach the scopes of its user_ids: give user_id (one of them)")
        return {"user_id": user_id, "agent_id": agent_id, "run_id": run_id}

    def in_scope(t: Tenant, memory_id: str, ids: dict[str, Any]) -> dict[str, Any]:
        """The memory, or NotFoundError when there is none or it belongs to another scope than `ids`."""
        item = t.memory.get(memory_id)
        if item is None or any(value is not None and item.get(key) != value for key, value in ids.items()):
            raise NotFoundError(f"memory {memory_id} not found" + (f" for {_describe(ids)}" if any(
                ids.values()) else ""))
        return item

    def call(ctx: Optional[Context], fn: Callable[[Tenant], Any]) -> Any:
        try:
            return fn(tenant(ctx))
        except MemlaneError as exc:
            raise ToolError(str(exc)) from None

    readonly = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    writes = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)
    destructive = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

    @server.tool(annotations=writes)
    def add_memory(
        text: Annotated[str, Field(description="What to remember: a fact, preference or message, in words.")],
        ctx: Context,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
        role: Annotated[Literal["user", "assistant"], Field(
            description="Who said it: the user (default) or the assistant.")] = "user",
        metadata: Annotated[Optional[dict[str, Any]], Field(
            description='Metadata to keep with the memory, e.g. {"category": "food"}.')] = None,
        infer: Annotated[Optional[bool], Field(
            description="Extract facts with the server's LLM (true) or store the text verbatim (false). "
                        "Default: extract when the server has an LLM, else verbatim.")] = None,
    ) -> dict[str, Any]:
        """Remember something: store a fact, preference or message for a user (or agent, or run).

        With an LLM configured on the server, facts are extracted from the text and reconciled with what is
        already stored (added, updated or deleted); otherwise the text is stored as it is. Returns the
        memories written, with their ids and events (ADD, UPDATE, DELETE)."""
        def run(t: Tenant) -> dict[str, Any]:
            extract = infer if infer is not None else _has_llm(t.memory)
            return t.memory.add({"role": role, "content": text}, **scope(t, user_id, agent_id, run_id),
                                metadata=metadata, infer=extract)
        return call(ctx, run)

    @server.tool(annotations=readonly)
    def search_memories(
        query: Annotated[str, Field(description="What to look for, in natural language.")],
        ctx: Context,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many results.")] = 10,
        threshold: Annotated[Optional[float], Field(
            ge=0, le=1, description="Leave out results scoring below this (scores are in [0, 1]).")] = None,
        filters: Filters = None,
    ) -> dict[str, Any]:
        """Search the memories of a user (or agent, or run) by meaning and keywords, best first.

        Returns {"results": [{"id", "memory", "score", ...}]} (and "relations" with graph memory on)."""
        return call(ctx, lambda t: t.memory.search(query, **scope(t, user_id, agent_id, run_id), limit=limit,
                                                   threshold=threshold, filters=filters))

    @server.tool(annotations=readonly)
    def list_memories(
        ctx: Context,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many memories.")] = 100,
        offset: Annotated[int, Field(ge=0, description="Skip this many (for the next page).")] = 0,
        filters: Filters = None,
    ) -> dict[str, Any]:
        """List the memories of a user (or agent, or run), oldest first, with their ids.

        Returns {"results": [...], "total": N}: one page of `limit` from `offset`."""
        return call(ctx, lambda t: t.memory.get_all(**scope(t, user_id, agent_id, run_id), limit=limit,
                                                    offset=offset, filters=filters))

    @server.tool(annotations=readonly)
    def get_memory(memory_id: MemoryId, ctx: Context, user_id: UserId = None, agent_id: AgentId = None,
                   run_id: RunId = None) -> dict[str, Any]:
        """Get one memory by its id: its text, scope, metadata and times."""
        return call(ctx, lambda t: in_scope(t, memory_id, scope(t, user_id, agent_id, run_id)))

    @server.tool(annotations=writes)
    def update_memory(
        memory_id: MemoryId, ctx: Context,
        text: Annotated[Optional[str], Field(description="The memory's new text (omit to keep it).")] = None,
        metadata: Annotated[Optional[dict[str, Any]], Field(
            description="Merged into the memory's metadata; a key set to null is removed.")] = None,
        user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
    ) -> dict[str, Any]:
        """Change a memory's text and/or metadata (the change is kept in its history)."""
        def run(t: Tenant) -> dict[str, Any]:
            if text is None and metadata is None:
                raise ValidationError("update_memory needs a new text or metadata")
            in_scope(t, memory_id, scope(t, user_id, agent_id, run_id))
            return t.memory.update(memory_id, text, metadata)
        return call(ctx, run)

    @server.tool(annotations=destructive)
    def delete_memory(memory_id: MemoryId, ctx: Context, user_id: UserId = None, agent_id: AgentId = None,
                      run_id: RunId = None) -> dict[str, Any]:
        """Delete one memory by its id (its history is kept)."""
        def run(t: Tenant) -> dict[str, Any]:
            in_scope(t, memory_id, scope(t, user_id, agent_id, run_id))
            return t.memory.delete(memory_id)
        return call(ctx, run)

    @server.tool(annotations=destructive)
    def delete_all_memories(ctx: Context, user_id: UserId = None, agent_id: AgentId = None,
                            run_id: RunId = None) -> dict[str, Any]:
        """Delete every memory of a user (or agent, or run). This cannot be undone."""
        return call(ctx, lambda t: t.memory.delete_all(**scope(t, user_id, agent_id, run_id)))

    @server.tool(annotations=readonly)
    def memory_history(memory_id: MemoryId, ctx: Context, user_id: UserId = None, agent_id: AgentId = None,
                       run_id: RunId = None) -> dict[str, Any]:
        """Every change of a memory, oldest first: {"results": [{"event", "old_memory", "new_memory",
        "created_at", ...}]}. A deleted memory's history is only shown when no scope is in effect."""
        def run(t: Tenant) -> dict[str, Any]:
            ids = scope(t, user_id, agent_id, run_id)
            if any(ids.values()):
                in_scope(t, memory_id, ids)
            entries = t.memory.history(memory_id)
            if not entries:
                raise NotFoundError(f"memory {memory_id} not found")
            return {"results": entries}
        return call(ctx, run)

    @server.tool(annotations=readonly)
    def list_relations(
        ctx: Context, user_id: UserId = None, agent_id: AgentId = None, run_id: RunId = None,
        as_of: Annotated[Optional[str], Field(
            description="A time (ISO 8601): the relations that held then instead of now.")] = None,
    ) -> dict[str, Any]:
        """The relations (source, relationship, destination) graph memory recorded for a user (or agent, or
        run). Needs graph memory configured on the server (graph_store, and an LLM)."""
        def run(t: Tenant) -> dict[str, Any]:
            if not t.memory.config.graph_enabled:
                raise ValidationError("graph memory is not configured on this server: set graph_store in its "
                                      "config (and an LLM) to record relations")
            result = t.memory.get_all(**scope(t, user_id, agent_id, run_id), limit=1, as_of=as_of)
            return {"relations": result.get("relations", [])}
        return call(ctx, run)

    def resource(key: str, value: str, ctx: Optional[Context]) -> str:
        try:
            t = tenant(ctx)
            if t.user_ids is not None and (key != "user_id" or value not in t.user_ids):
                raise NotFoundError(f"no such resource for this key: {key[:-3]} {value}")
            ids: dict[str, Any] = {key: value}
            return json.dumps(t.memory.get_all(**ids), ensure_ascii=False)
        except MemlaneError as exc:
            raise ResourceError(str(exc)) from None

    @server.resource("memlane://users/{user_id}/memories", name="user_memories", mime_type="application/json",
                     description="Every memory of a user, as list_memories returns them (JSON).")
    def user_memories(user_id: str, ctx: Context) -> str:
        return resource("user_id", user_id, ctx)

    @server.resource("memlane://agents/{agent_id}/memories", name="agent_memories", mime_type="application/json",
                     description="Every memory of an agent (JSON).")
    def agent_memories(agent_id: str, ctx: Context) -> str:
        return resource("agent_id", agent_id, ctx)

    @server.resource("memlane://runs/{run_id}/memories", name="run_memories", mime_type="application/json",
                     description="Every memory of a run (JSON).")
    def run_memories(run_id: str, ctx: Context) -> str:
        return resource("run_id", run_id, ctx)

    if default_user is not None and memory_for is not None:
        @server.resource("memlane://memories", name="memories", mime_type="application/json",
                         description=f"Every memory of the default user ({default_user}), as JSON.")
        def default_memories() -> str:
            return resource("user_id", default_user, None)

    return server


def _has_llm(memory: "Memory") -> bool:
    """Whether add() can extract facts (else the MCP default is infer=False: verbatim, without a warning)."""
    return memory.llm_configured


def _describe(ids: dict[str, Any]) -> str:
    return ", ".join(f"{key[:-3]} {value}" for key, value in ids.items() if value is not None)
