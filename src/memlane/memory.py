"""Memory and AsyncMemory: thin drivers over the one pipeline (see pipeline/)."""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Optional, TypeVar, Union

from . import inputs, pipeline, pooling, registry, reindex
from .interop import export as interop_export, format as interop_format, importer as interop_import
from .interop import mem0 as interop_mem0
from .graphs.outbox import OutboxGraphStore
from .vector_engines import OutboxVectorStore
from .config import MemoryConfig, ProviderConfig
from .drivers import Runtime, callers, run_async, run_sync, safe
from .errors import ConfigurationError, ValidationError
from .jobs import NoQueue, Worker
from .progress import ProgressBar
from .rerankers.base import UsesLLM
from .settings import Op, Settings

Messages = Union[str, dict[str, Any], list[dict[str, Any]]]
B = TypeVar("B", bound="_Base")
Progress = reindex.Progress


def _progress(progress: Union[bool, Progress, None], label: str = "reindex") -> Optional[Progress]:
    if progress is True:
        return ProgressBar(label)
    if progress is None or progress is False:
        return None
    if not callable(progress):
        raise ValidationError(f"progress must be True, False, None or a callable (done, total), "
                              f"got {type(progress).__name__}")
    return callers(progress)  # what it raises is the caller's, handed back as it is


def _build(config: MemoryConfig, check_space: bool = True) -> tuple[Runtime, Settings]:
    embedder = registry.create("embedder", config.embedder.provider, config.embedder.config)
    vectors = config.vector_engine
    store = registry.create("vector_store", config.relational_provider, config.store_config())
    try:
        if vectors is not None:  # vectors searched in an external engine, fed through the store's outbox
            store = OutboxVectorStore(store, registry.create("vector_engine", vectors["provider"], vectors["config"]))
        engine = config.graph_engine
        if engine is not None:  # the graph in an external engine, fed through the store's outbox
            store = OutboxGraphStore(store, registry.create("graph_store", engine["provider"], engine["config"]))
        return _finish(config, embedder, store, check_space)
    except BaseException:
        store.close()  # a Memory that fails to build must not leave the database open
        raise


def _finish(config: MemoryConfig, embedder: Any, store: Any,
            check_space: bool = True) -> tuple[Runtime, Settings]:
    pooled = config.retrieval.pooling_for(config.embedder.provider)
    # How vectors are made is part of their space: pooled and whole-text vectors must not share a store.
    space = embedder.model_id + (pooling.POOLED_SUFFIX if pooled else "")
    if check_space:  # skipped only to re-embed the store into this space (Memory.reindexed)
        store.ensure_space(space, embedder.dimension)
    llm_config = config.llm if config.llm is not None else detect_llm()
    llm = None
    if llm_config is not None and llm_config.provider != "none":
        llm = registry.create("llm", llm_config.provider, llm_config.config)
    reranker = None
    if config.reranker is not None:
        reranker = registry.create("reranker", config.reranker.provider, config.reranker.config)
        if isinstance(reranker, UsesLLM):  # the llm reranker scores with this Memory's LLM
            reranker.use_llm(llm)
    settings = Settings.from_config(config, embedding_model=space, dimension=embedder.dimension,
                                    sentence_pooling=pooled, llm_configured=llm is not None,
                                    reranker_configured=reranker is not None)
    weights = settings.weights
    if weights.dense + weights.keyword + weights.actor <= 0:
        raise ConfigurationError("retrieval weights must not all be zero")
    return Runtime(embedder, store, llm, reranker), settings


# Checked in this order when no llm is configured; set MEMLANE_LLM=none (or llm provider "none") to opt out.
AUTODETECT = (("OPENAI_API_KEY", "openai"), ("ANTHROPIC_API_KEY", "anthropic"), ("GEMINI_API_KEY", "gemini"),
              ("OLLAMA_HOST", "ollama"))


def detect_llm() -> Optional[ProviderConfig]:
    """The LLM implied by the environment: the first of AUTODETECT whose variable is set."""
    if os.environ.get("MEMLANE_LLM", "").lower() == "none":
        return None
    for variable, provider in AUTODETECT:
        if os.environ.get(variable):
            return ProviderConfig(provider=provider)
    return None


def _settled(job: dict[str, Any], deadline: Optional[float]) -> bool:
    """wait() returns when the job is done or failed, or when its deadline (monotonic) has passed."""
    return job["status"] in ("done", "failed") or (deadline is not None and time.monotonic() > deadline)


def _deadline(timeout: Optional[float]) -> Optional[float]:
    return None if timeout is None else time.monotonic() + timeout


class _Base:
    def __init__(self, config: Optional[Union[MemoryConfig, dict[str, Any]]] = None, *,
                 _reindexing: bool = False):
        if isinstance(config, dict):
            config = MemoryConfig.from_mem0(config)
        elif config is None:
            config = MemoryConfig()
        elif not isinstance(config, MemoryConfig):
            raise ConfigurationError("config must be a MemoryConfig or a dict")
        self.config = config
        self._runtime, self._settings = _build(config, check_space=not _reindexing)
        # The store keeps the ingestion queue, so it can mark a job done with the job's own write.
        try:
            make_queue = getattr(self._runtime.store, "job_queue", None)
            self._queue = NoQueue() if make_queue is None else make_queue(
                max_attempts=config.job_max_attempts, base_delay=config.job_retry_base_delay,
                lease_seconds=config.job_lease_seconds)
        except BaseException:
            self._runtime.store.close()
            raise
        self._worker = Worker(self._queue, self._run_job)
        if not _reindexing:  # after a reindex (reindexed()), not before it
            self._resume_jobs()

    def _resume_jobs(self) -> None:
        """Run what a previous process left in the queue (crash or exit mid-job)."""
        if self._queue.pending():
            self._worker.start()

    def _run_job(self, payload: dict[str, Any], job: tuple[str, str]) -> Any:
        request = pipeline.AddRequest.from_payload(payload)
        request.job = job  # its final write marks the job done, in the same transaction
        return run_sync(self._runtime, pipeline.execute_add(self._settings, request))

    def _enqueue(self, messages: Any, **kwargs: Any) -> dict[str, Any]:
        request = pipeline.prepare_add(self._settings, messages, **kwargs)  # bad input fails here, not later
        job_id = self._queue.enqueue(request.to_payload())
        self._worker.start()
        return {"job_id": job_id, "status": "queued"}


    def pending_jobs(self) -> int:
        """How many background adds are queued or running in this store's queue."""
        return self._queue.pending()

    def engine_status(self, repair: bool = False) -> Optional[dict[str, Any]]:
        """The external vector engine against the store, None without one: how many memories the store holds,
        vectors the engine holds, outbox entries still waiting, and whether they agree. repair=True mends
        drift first: the engine is emptied and loaded again from the store (through the outbox)."""
        store = self._runtime.store
        while not isinstance(store, OutboxVectorStore):
            store = getattr(store, "_store", None)
            if store is None:
                return None
        resynced = store.resync() if repair and not store.in_step() else None
        status = store.status()
        return {**status, "resynced": resynced} if repair else status

    @property
    def llm_configured(self) -> bool:
        """Whether an LLM is configured, so that add(infer=True) extracts facts (else it stores verbatim)."""
        return self._settings.llm_configured

    @classmethod
    def from_config(cls: type[B], config: Union[MemoryConfig, dict[str, Any]]) -> B:
        """Build from a MemoryConfig or mem0's config dict (`{"llm": {...}, "embedder": {...}, ...}`)."""
        return cls(config)

    def close(self) -> None:
        """Stop the background worker (a job it is running finishes or is resumed later) and close files."""
        self._worker.stop()
        self._queue.close()
        self._runtime.store.close()

    def __enter__(self: B) -> B:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Memory(_Base):
    """Long-term memory on the configured stores. Safe to share between threads."""

    def _run(self, op: Op) -> Any:
        return run_sync(self._runtime, op)

    @safe
    def add(self, messages: Messages, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
            run_id: Optional[str] = None, metadata: Optional[dict[str, Any]] = None, infer: bool = True,
            timestamp: Any = None, memory_type: Optional[str] = None, prompt: Optional[str] = None,
            background: bool = False, expiration_date: Any = None) -> dict[str, Any]:
        """Remember `messages` in the scope given by user_id / agent_id / run_id (at least one).

        With an LLM configured and infer=True, facts are extracted and reconciled (ADD / UPDATE / DELETE /
        NONE) with one LLM call; otherwise each message is stored verbatim. A message's content may be a
        string or OpenAI-style parts (text and image_url): the text parts are its text, and the parts are
        kept whole in the message log; an LLM with vision (llm config enable_vision) describes the images.
        `timestamp` is when the conversation happened; `prompt` extends the extraction instructions for this
        call; memory_type="procedural_memory" (with agent_id) summarises an agent's run into one memory.
        `expiration_date` (YYYY-MM-DD, or a date): once that day has passed (UTC), search and get_all leave
        the memories it writes out unless show_expired=True. background=True persists the work and returns
        {"job_id", "status"} at once (see job()/wait())."""
        if inputs.flag(background, "background"):
            return self._enqueue(messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata,
                                 infer=infer, timestamp=timestamp, memory_type=memory_type, prompt=prompt,
                                 expiration_date=expiration_date)
        return self._run(pipeline.add(self._settings, messages, user_id=user_id, agent_id=agent_id,
                                      run_id=run_id, metadata=metadata, infer=infer, timestamp=timestamp,
                                      memory_type=memory_type, prompt=prompt, expiration_date=expiration_date))

    def search(self, query: str, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
               run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, limit: Optional[int] = None,
               threshold: Optional[float] = None, rerank: Optional[bool] = None, top_k: Optional[int] = None,
               show_expired: bool = False, as_of: Any = None) -> dict[str, Any]:
        """Hybrid search within a scope; results carry `score` in [0, 1], best first. The scope is the
        user_id / agent_id / run_id arguments or an equality (or `in` list, or an OR of them) in `filters`.
        `limit` (10 by default; `top_k`, mem0 2.x's name, is the same setting) bounds the results;
        `threshold` drops results scoring below it. With a reranker configured the best candidates are
        reranked unless rerank=False; rerank=True without one searches without reranking (as mem0 does; a
        debug log says so). Expired memories are left out unless show_expired=True. With graph memory on,
        "relations" holds the relations near the query's entities: current ones, or those that held at
        `as_of` (a time in any form add()'s timestamp takes)."""
        return self._run(pipeline.search(self._settings, query, user_id=user_id, agent_id=agent_id,
                                         run_id=run_id, filters=filters, limit=limit, threshold=threshold,
                                         rerank=rerank, top_k=top_k, show_expired=show_expired,
                                         as_of=as_of))

    def get(self, memory_id: str) -> Optional[dict[str, Any]]:
        """The memory with this id, expired or not (None when there is none)."""
        return self._run(pipeline.get(self._settings, memory_id))

    def get_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None,
                limit: Optional[int] = None, offset: int = 0, top_k: Optional[int] = None,
                show_expired: bool = False, as_of: Any = None) -> dict[str, Any]:
        """A page of the scope's memories, oldest first, and their `total`: `limit` (100 by default; `top_k`
        is the same setting) from `offset`. Expired memories are left out unless show_expired=True. With
        graph memory on, also the scope's "relations" (current ones, or those that held at `as_of`)."""
        return self._run(pipeline.get_all(self._settings, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                          filters=filters, limit=limit, offset=offset, top_k=top_k,
                                          show_expired=show_expired, as_of=as_of))

    def update(self, memory_id: str, text: Optional[str] = None, metadata: Optional[dict[str, Any]] = None,
               expiration_date: Any = inputs.UNSET, data: Optional[str] = None, *,
               replace_metadata: bool = False) -> dict[str, Any]:
        """Change a memory's text (`data` is mem0 1.x's name for it), metadata and/or expiration_date (the
        parameters in mem0's order).

        `metadata` is merged into the memory's metadata, as mem0 does: its keys are set, a key given as
        None is removed, the others are kept. replace_metadata=True stores `metadata` instead, as given
        (metadata={} with it empties the metadata). expiration_date=None clears the date. An unknown id is a
        NotFoundError (also a ValueError, as mem0 raises)."""
        return self._run(pipeline.update(self._settings, memory_id, text, metadata, data=data,
                                          expiration_date=expiration_date, replace_metadata=replace_metadata))

    def batch_update(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        """Update up to 1,000 memories in one transaction: [{"memory_id": ..., "text"?: ..., "metadata"?:
        ..., "expiration_date"?: ...}, ...], each as update() does (metadata merged). All or nothing: an
        unknown id is a NotFoundError and changes none."""
        return self._run(pipeline.batch_update(self._settings, memories))

    def delete(self, memory_id: str) -> dict[str, Any]:
        """Delete one memory; an unknown id is a NotFoundError (also a ValueError, as mem0 raises)."""
        return self._run(pipeline.delete(self._settings, memory_id))

    def batch_delete(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        """Delete up to 1,000 memories in one transaction: [{"memory_id": ...}, ...]. All or nothing: an
        unknown id is a NotFoundError and deletes none."""
        return self._run(pipeline.batch_delete(self._settings, memories))

    def users(self) -> dict[str, Any]:
        """Every user, agent and run that memories are scoped to, as mem0's entity listing: {"results":
        [{"type": "user" | "agent" | "run", "name", "id" (the same), "total_memories", "created_at",
        "updated_at"}, ...], "total"}. total_memories counts every memory holding the id (episodic and
        expired ones too): what delete_users() would delete."""
        return self._run(pipeline.users(self._settings))

    def delete_users(self, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                     run_id: Optional[str] = None) -> dict[str, Any]:
        """Delete every memory of the named user, agent and/or run, in one transaction (an entity with no
        memories is a NotFoundError). With no argument it deletes the memories of EVERY entity, as mem0's
        delete_users() does. History rows are written as delete_all writes them; the message log is kept
        (reset() clears everything)."""
        return self._run(pipeline.delete_users(self._settings, user_id=user_id, agent_id=agent_id, run_id=run_id))

    def delete_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                   run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return self._run(pipeline.delete_all(self._settings, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                             filters=filters))

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        return self._run(pipeline.history(self._settings, memory_id))

    def messages(self, message_ids: list[str]) -> list[dict[str, Any]]:
        """The logged messages behind a memory's `source_message_ids`."""
        return self._run(pipeline.messages(self._settings, message_ids))

    def message_log(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                    run_id: Optional[str] = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        """Every message passed to add() in a scope, oldest first (kept even when an add failed)."""
        return self._run(pipeline.message_log(self._settings, user_id=user_id, agent_id=agent_id,
                                              run_id=run_id, limit=limit, offset=offset))

    def reset(self) -> None:
        """Delete every memory, message and history row."""
        return self._run(pipeline.reset(self._settings))

    def reindex(self, *, batch_size: int = 256, progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        """Embed every memory again as add() does now (after upgrading memlane or changing retrieval
        settings), one transaction per batch; an interrupted run resumes where it stopped. progress=True
        draws a bar on stderr; a callable gets (done, total) after each batch."""
        return self._run(reindex.reindex(self._settings, batch_size, _progress(progress)))

    @classmethod
    def reindexed(cls, config: Optional[Union[MemoryConfig, dict[str, Any]]] = None, *, batch_size: int = 256,
                  progress: Union[bool, Progress, None] = None) -> "Memory":
        """Open a store whose vectors were made by another embedder (or another way), re-embed all of it
        with this config's embedder, record the new space, and return the ready Memory. Run it while no
        other process uses the store; until it finishes the file refuses to open normally."""
        memory = cls(config, _reindexing=True)
        try:
            memory.reindex(batch_size=batch_size, progress=progress)
        except BaseException:
            memory.close()
            raise
        memory._resume_jobs()
        return memory

    def export(self, path: Union[str, os.PathLike[str]], *, batch_size: int = 500,
               progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        """Write every message, memory (with its vector), history row and graph entity and relation (ended
        ones too) to `path` (docs/export-format.md; gzip when it ends in .gz), streaming. Returns the counts
        per kind. progress=True draws a bar on stderr; a callable gets (done, total)."""
        return self._run(interop_export.export(self._settings, path, inputs.limit(batch_size, "batch_size"),
                                               _progress(progress, "export")))

    @safe
    def import_file(self, path: Union[str, os.PathLike[str]], *, skip_existing: bool = False,
                    batch_size: int = 500, progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        """Import an export file (Memory.export) into this store, ids and timestamps as they are, one
        transaction per batch; vectors are copied, or made again when the file's embedding space is not this
        Memory's. An id the store already holds is a ConflictError before anything is written, unless
        skip_existing=True (those records are left as the store has them). Returns the counts written."""
        head, source = interop_format.file_source(path)
        return self._run(interop_import.import_records(
            self._settings, source, interop_format.space_of(head), batch=inputs.limit(batch_size, "batch_size"),
            skip_existing=inputs.flag(skip_existing, "skip_existing"), progress=_progress(progress, "import")))

    @safe
    def import_mem0(self, *, qdrant_path: Optional[str] = None, collection: Optional[str] = None,
                    history_db: Optional[str] = None, pgvector: Optional[str] = None, skip_existing: bool = False,
                    batch_size: int = 256, progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        """Bring a mem0 installation's memories (text, scope ids, metadata, hash, timestamps) and history over,
        embedded with this Memory's embedder. Read from mem0's embedded Qdrant folder (`qdrant_path`, mem0's
        default /tmp/qdrant; needs the mem0-import extra) or, with `pgvector` (a connection string), its
        PostgreSQL table; `collection` is mem0's collection_name ("mem0"); `history_db` its history database
        ($MEM0_DIR/history.db, else ~/.mem0/history.db). Existing ids as for import_file."""
        source = interop_mem0.source(qdrant_path=qdrant_path, collection=collection, history_db=history_db,
                                     pgvector=pgvector)
        return self._run(interop_import.import_records(
            self._settings, source, None, batch=inputs.limit(batch_size, "batch_size"),
            skip_existing=inputs.flag(skip_existing, "skip_existing"), progress=_progress(progress, "import")))

    @safe
    def job(self, job_id: str) -> dict[str, Any]:
        """A background add's state: status queued | running | done | failed, attempts, last_error, result."""
        return self._queue.get(inputs.job_id(job_id))

    @safe
    def wait(self, job_id: str, timeout: Optional[float] = None) -> dict[str, Any]:
        """Block until the job is done or failed (or the timeout passes); returns its state."""
        job_id, deadline = inputs.job_id(job_id), _deadline(inputs.wait_timeout(timeout))
        while not _settled(job := self._queue.get(job_id), deadline):
            time.sleep(0.05)
        return job

    @safe
    def retry_job(self, job_id: str) -> dict[str, Any]:
        """Queue a failed job again."""
        job_id = inputs.job_id(job_id)
        self._queue.retry(job_id)
        self._worker.start()
        return self._queue.get(job_id)


class AsyncMemory(_Base):
    """The asyncio flavour of Memory: same pipeline, awaited."""

    async def _run(self, op: Op) -> Any:
        return await run_async(self._runtime, op)

    @safe
    async def add(self, messages: Messages, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                  run_id: Optional[str] = None, metadata: Optional[dict[str, Any]] = None, infer: bool = True,
                  timestamp: Any = None, memory_type: Optional[str] = None, prompt: Optional[str] = None,
                  background: bool = False, expiration_date: Any = None) -> dict[str, Any]:
        if inputs.flag(background, "background"):
            return await asyncio.to_thread(self._enqueue, messages, user_id=user_id, agent_id=agent_id,
                                           run_id=run_id, metadata=metadata, infer=infer, timestamp=timestamp,
                                           memory_type=memory_type, prompt=prompt,
                                           expiration_date=expiration_date)
        return await self._run(pipeline.add(self._settings, messages, user_id=user_id, agent_id=agent_id,
                                            run_id=run_id, metadata=metadata, infer=infer, timestamp=timestamp,
                                            memory_type=memory_type, prompt=prompt,
                                            expiration_date=expiration_date))

    async def search(self, query: str, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                     run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None,
                     limit: Optional[int] = None, threshold: Optional[float] = None,
                     rerank: Optional[bool] = None, top_k: Optional[int] = None,
                     show_expired: bool = False, as_of: Any = None) -> dict[str, Any]:
        return await self._run(pipeline.search(self._settings, query, user_id=user_id, agent_id=agent_id,
                                               run_id=run_id, filters=filters, limit=limit, threshold=threshold,
                                               rerank=rerank, top_k=top_k, show_expired=show_expired,
                                               as_of=as_of))

    async def get(self, memory_id: str) -> Optional[dict[str, Any]]:
        return await self._run(pipeline.get(self._settings, memory_id))

    async def get_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                      run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None,
                      limit: Optional[int] = None, offset: int = 0, top_k: Optional[int] = None,
                      show_expired: bool = False, as_of: Any = None) -> dict[str, Any]:
        return await self._run(pipeline.get_all(self._settings, user_id=user_id, agent_id=agent_id,
                                                run_id=run_id, filters=filters, limit=limit, offset=offset,
                                                top_k=top_k, show_expired=show_expired, as_of=as_of))

    async def update(self, memory_id: str, text: Optional[str] = None,
                     metadata: Optional[dict[str, Any]] = None, expiration_date: Any = inputs.UNSET,
                     data: Optional[str] = None, *, replace_metadata: bool = False) -> dict[str, Any]:
        return await self._run(pipeline.update(self._settings, memory_id, text, metadata, data=data,
                                                expiration_date=expiration_date,
                                                replace_metadata=replace_metadata))

    async def batch_update(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._run(pipeline.batch_update(self._settings, memories))

    async def delete(self, memory_id: str) -> dict[str, Any]:
        return await self._run(pipeline.delete(self._settings, memory_id))

    async def batch_delete(self, memories: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._run(pipeline.batch_delete(self._settings, memories))

    async def users(self) -> dict[str, Any]:
        return await self._run(pipeline.users(self._settings))

    async def delete_users(self, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                           run_id: Optional[str] = None) -> dict[str, Any]:
        return await self._run(pipeline.delete_users(self._settings, user_id=user_id, agent_id=agent_id,
                                                      run_id=run_id))

    async def delete_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                         run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return await self._run(pipeline.delete_all(self._settings, user_id=user_id, agent_id=agent_id,
                                                   run_id=run_id, filters=filters))

    async def history(self, memory_id: str) -> list[dict[str, Any]]:
        return await self._run(pipeline.history(self._settings, memory_id))

    async def messages(self, message_ids: list[str]) -> list[dict[str, Any]]:
        return await self._run(pipeline.messages(self._settings, message_ids))

    async def message_log(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                          run_id: Optional[str] = None, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return await self._run(pipeline.message_log(self._settings, user_id=user_id, agent_id=agent_id,
                                                    run_id=run_id, limit=limit, offset=offset))

    async def reset(self) -> None:
        return await self._run(pipeline.reset(self._settings))

    async def reindex(self, *, batch_size: int = 256,
                      progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        return await self._run(reindex.reindex(self._settings, batch_size, _progress(progress)))

    @classmethod
    async def reindexed(cls, config: Optional[Union[MemoryConfig, dict[str, Any]]] = None, *,
                        batch_size: int = 256, progress: Union[bool, Progress, None] = None) -> "AsyncMemory":
        memory = await asyncio.to_thread(cls, config, _reindexing=True)
        try:
            await memory.reindex(batch_size=batch_size, progress=progress)
        except BaseException:
            memory.close()
            raise
        memory._resume_jobs()
        return memory

    async def export(self, path: Union[str, os.PathLike[str]], *, batch_size: int = 500,
                     progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        """Memory.export in a thread (it reads and writes a file)."""
        op = interop_export.export(self._settings, path, inputs.limit(batch_size, "batch_size"),
                                   _progress(progress, "export"))
        return await asyncio.to_thread(run_sync, self._runtime, op)

    @safe
    async def import_file(self, path: Union[str, os.PathLike[str]], *, skip_existing: bool = False,
                          batch_size: int = 500, progress: Union[bool, Progress, None] = None) -> dict[str, Any]:
        """Memory.import_file in a thread."""
        head, source = await asyncio.to_thread(interop_format.file_source, path)
        op = interop_import.import_records(
            self._settings, source, interop_format.space_of(head), batch=inputs.limit(batch_size, "batch_size"),
            skip_existing=inputs.flag(skip_existing, "skip_existing"), progress=_progress(progress, "import"))
        return await asyncio.to_thread(run_sync, self._runtime, op)

    @safe
    async def job(self, job_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self._queue.get, inputs.job_id(job_id))

    @safe
    async def wait(self, job_id: str, timeout: Optional[float] = None) -> dict[str, Any]:
        job_id, deadline = inputs.job_id(job_id), _deadline(inputs.wait_timeout(timeout))
        while not _settled(job := await asyncio.to_thread(self._queue.get, job_id), deadline):
            await asyncio.sleep(0.05)
        return job

    @safe
    async def retry_job(self, job_id: str) -> dict[str, Any]:
        job_id = inputs.job_id(job_id)
        await asyncio.to_thread(self._queue.retry, job_id)
        self._worker.start()
        return await asyncio.to_thread(self._queue.get, job_id)
