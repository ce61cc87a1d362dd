"""Memory and AsyncMemory: thin drivers over the one pipeline (see pipeline.py)."""
from __future__ import annotations

from typing import Any, Optional, Union

from . import pipeline, registry
from .config import MemoryConfig
from .drivers import Runtime, run_async, run_sync
from .errors import ConfigurationError

Messages = Union[str, dict[str, Any], list[dict[str, Any]]]


def _build(config: MemoryConfig) -> tuple[Runtime, pipeline.Settings]:
    embedder = registry.create("embedder", config.embedder.provider, config.embedder.config)
    store_config = dict(config.vector_store.config)
    if config.vector_store.provider == "sqlite":
        store_config["path"] = str(config.database_path())
        store_config.pop("db_path", None)
    store = registry.create("vector_store", config.vector_store.provider, store_config)
    store.ensure_space(embedder.model_id, embedder.dimension)
    llm = None
    if config.llm is not None:
        llm = registry.create("llm", config.llm.provider, config.llm.config)
    settings = pipeline.Settings(max_message_chars=config.max_message_chars, llm_configured=llm is not None,
                                 embedding_model=embedder.model_id, dimension=embedder.dimension)
    return Runtime(embedder, store, llm), settings


class _Base:
    def __init__(self, config: Optional[Union[MemoryConfig, dict[str, Any]]] = None):
        if isinstance(config, dict):
            config = MemoryConfig.from_mem0(config)
        elif config is None:
            config = MemoryConfig()
        elif not isinstance(config, MemoryConfig):
            raise ConfigurationError("config must be a MemoryConfig or a dict")
        self.config = config
        self._runtime, self._settings = _build(config)

    @classmethod
    def from_config(cls, config: Union[MemoryConfig, dict[str, Any]]):
        """Build from a MemoryConfig or mem0's config dict (`{"llm": {...}, "embedder": {...}, ...}`)."""
        return cls(config)

    def close(self) -> None:
        self._runtime.store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Memory(_Base):
    """Long-term memory on the configured stores. Safe to share between threads."""

    def _run(self, op: pipeline.Op) -> Any:
        return run_sync(self._runtime, op)

    def add(self, messages: Messages, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
            run_id: Optional[str] = None, metadata: Optional[dict[str, Any]] = None, infer: bool = True,
            timestamp: Any = None) -> dict[str, Any]:
        """Remember `messages` in the scope given by user_id / agent_id / run_id (at least one)."""
        return self._run(pipeline.add(self._settings, messages, user_id=user_id, agent_id=agent_id,
                                      run_id=run_id, metadata=metadata, infer=infer, timestamp=timestamp))

    def search(self, query: str, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
               run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, limit: int = 10,
               threshold: Optional[float] = None) -> dict[str, Any]:
        """Hybrid search within a scope; results carry `score` in [0, 1], best first."""
        return self._run(pipeline.search(self._settings, query, user_id=user_id, agent_id=agent_id,
                                         run_id=run_id, filters=filters, limit=limit, threshold=threshold))

    def get(self, memory_id: str) -> Optional[dict[str, Any]]:
        return self._run(pipeline.get(self._settings, memory_id))

    def get_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, limit: int = 100,
                offset: int = 0) -> dict[str, Any]:
        return self._run(pipeline.get_all(self._settings, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                          filters=filters, limit=limit, offset=offset))

    def update(self, memory_id: str, text: Optional[str] = None,
               metadata: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return self._run(pipeline.update(self._settings, memory_id, text, metadata))

    def delete(self, memory_id: str) -> dict[str, Any]:
        return self._run(pipeline.delete(self._settings, memory_id))

    def delete_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                   run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return self._run(pipeline.delete_all(self._settings, user_id=user_id, agent_id=agent_id, run_id=run_id,
                                             filters=filters))

    def history(self, memory_id: str) -> list[dict[str, Any]]:
        return self._run(pipeline.history(self._settings, memory_id))

    def messages(self, message_ids: list[str]) -> list[dict[str, Any]]:
        """The logged messages behind a memory's `source_message_ids`."""
        return self._run(pipeline.messages(self._settings, message_ids))

    def reset(self) -> None:
        """Delete every memory, message and history row."""
        return self._run(pipeline.reset(self._settings))


class AsyncMemory(_Base):
    """The asyncio flavour of Memory: same pipeline, awaited."""

    async def _run(self, op: pipeline.Op) -> Any:
        return await run_async(self._runtime, op)

    async def add(self, messages: Messages, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                  run_id: Optional[str] = None, metadata: Optional[dict[str, Any]] = None, infer: bool = True,
                  timestamp: Any = None) -> dict[str, Any]:
        return await self._run(pipeline.add(self._settings, messages, user_id=user_id, agent_id=agent_id,
                                            run_id=run_id, metadata=metadata, infer=infer, timestamp=timestamp))

    async def search(self, query: str, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                     run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, limit: int = 10,
                     threshold: Optional[float] = None) -> dict[str, Any]:
        return await self._run(pipeline.search(self._settings, query, user_id=user_id, agent_id=agent_id,
                                               run_id=run_id, filters=filters, limit=limit, threshold=threshold))

    async def get(self, memory_id: str) -> Optional[dict[str, Any]]:
        return await self._run(pipeline.get(self._settings, memory_id))

    async def get_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                      run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None, limit: int = 100,
                      offset: int = 0) -> dict[str, Any]:
        return await self._run(pipeline.get_all(self._settings, user_id=user_id, agent_id=agent_id,
                                                run_id=run_id, filters=filters, limit=limit, offset=offset))

    async def update(self, memory_id: str, text: Optional[str] = None,
                     metadata: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return await self._run(pipeline.update(self._settings, memory_id, text, metadata))

    async def delete(self, memory_id: str) -> dict[str, Any]:
        return await self._run(pipeline.delete(self._settings, memory_id))

    async def delete_all(self, *, user_id: Optional[str] = None, agent_id: Optional[str] = None,
                         run_id: Optional[str] = None, filters: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        return await self._run(pipeline.delete_all(self._settings, user_id=user_id, agent_id=agent_id,
                                                   run_id=run_id, filters=filters))

    async def history(self, memory_id: str) -> list[dict[str, Any]]:
        return await self._run(pipeline.history(self._settings, memory_id))

    async def messages(self, message_ids: list[str]) -> list[dict[str, Any]]:
        return await self._run(pipeline.messages(self._settings, message_ids))

    async def reset(self) -> None:
        return await self._run(pipeline.reset(self._settings))
