"""Configuration models. `MemoryConfig.from_mem0` accepts mem0's config dict shape unchanged."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from . import registry
from .errors import ConfigurationError
from .scoring import FusionWeights

# The one mem0 config `version` whose behaviour memlane implements.
SUPPORTED_VERSION = "v1.1"
# The default vector store: one embedded database file, which database_path() finds.
EMBEDDED_STORE = "sqlite"
# Graph memory's one provider for now: tables in the embedded file. mem0's connection keys are accepted.
GRAPH_STORE = "sqlite"
GRAPH_STORE_KEYS = frozenset({"url", "username", "password", "database"})


def default_home() -> Path:
    """Where the embedded store lives: $MEMLANE_HOME, else ~/.memlane."""
    return Path(os.environ.get("MEMLANE_HOME") or Path.home() / ".memlane")


class ProviderConfig(BaseModel):
    """One pluggable part: `{"provider": name, "config": {...provider keys...}}` (mem0's shape)."""

    model_config = ConfigDict(extra="forbid")
    provider: str
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("config", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value


class RetrievalConfig(BaseModel):
    """How search scores and what add() indexes. The defaults are the best settings of the LOCOMO ablation
    (docs/benchmarks.md, bench/ablation.py); a score is always in [0, 1] whatever the weights."""

    model_config = ConfigDict(extra="forbid")
    dense_weight: float = Field(default=FusionWeights.dense, ge=0)
    keyword_weight: float = Field(default=FusionWeights.keyword, ge=0)
    # share for memories said by the person the query names
    actor_weight: float = Field(default=FusionWeights.actor, ge=0)
    # share for memories whose event time is a day the query names (half within a named month)
    date_weight: float = Field(default=FusionWeights.date, ge=0)
    # BM25 value that maps to a keyword score of 0.5
    bm25_half: float = Field(default=FusionWeights.bm25_half, gt=0)
    # share of a turn's vector taken from the previous turn's; 0 turns contextual indexing off
    context_weight: float = Field(default=0.25, ge=0, le=1)
    # embed each sentence of a memory (prefixed with the speaker's name) and average (memlane/pooling.py).
    # None = on for the packaged local embedder, where it was measured (docs/benchmarks.md), off for the others.
    # A store records which way its vectors were made; opening it the other way is an error.
    sentence_pooling: Optional[bool] = None
    # candidates each retriever contributes before fusion: max(min_candidates, candidate_factor * limit)
    min_candidates: int = Field(default=50, ge=1)
    candidate_factor: int = Field(default=4, ge=1)
    # With a reranker: how many of the best fused candidates it rescores (at least `limit`), and the weight
    # of its relevance against the fused score (see rerankers/base.py).
    rerank_pool: int = Field(default=30, ge=1)
    rerank_weight: float = Field(default=0.5, ge=0)

    def pooling_for(self, embedder_provider: str) -> bool:
        """Whether memories are sentence-pooled with this embedder."""
        if self.sentence_pooling is not None:
            return self.sentence_pooling
        return embedder_provider == "local"


class MemoryConfig(BaseModel):
    """Everything a Memory is built from. Defaults give the embedded store: one SQLite file, local embedder."""

    model_config = ConfigDict(extra="forbid")
    embedder: ProviderConfig = Field(default_factory=lambda: ProviderConfig(provider="local"))
    vector_store: ProviderConfig = Field(default_factory=lambda: ProviderConfig(provider=EMBEDDED_STORE))
    llm: Optional[ProviderConfig] = None
    reranker: Optional[ProviderConfig] = None
    # mem0 keeps history in its own SQLite file; here it is the one embedded database file.
    history_db_path: Optional[str] = None
    # With an external vector engine as vector_store: where memories, history, the message log, graph and
    # jobs live (the embedded file by default, or {"provider": "pgvector", "config": {...}}).
    relational_store: Optional[ProviderConfig] = None
    custom_instructions: Optional[str] = None
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    # With an LLM, keep each turn as an episodic memory beside the extracted facts.
    keep_episodic: bool = True
    # With an LLM: how many related memories each new message brings into the reconciliation prompt, and
    # how many in all.
    related_per_message: int = Field(default=5, ge=0)
    max_related: int = Field(default=20, ge=0)
    # Guards against pasting a whole document as one "message"; raise it if you mean to.
    max_message_chars: int = Field(default=100_000, gt=0)
    # Background adds: transient failures are retried with exponential backoff from this delay (seconds),
    # up to this many attempts; then the job is marked failed (retry_job() queues it again).
    job_max_attempts: int = Field(default=10, ge=1)
    job_retry_base_delay: float = Field(default=1.0, ge=0)
    # A running job's lease, renewed every third of it; a worker that stops renewing loses the job when it
    # expires (at once when it was a process on this host that has exited).
    job_lease_seconds: float = Field(default=60.0, gt=0)
    # mem0's name for extra extraction instructions (joined to custom_instructions).
    custom_fact_extraction_prompt: Optional[str] = None
    # mem0 keys that name what memlane does not implement: a config setting them is refused, not quietly run
    # without them. `version` is kept because pasted mem0 configs carry "v1.1", the API memlane follows.
    version: Optional[str] = SUPPORTED_VERSION
    graph_store: Optional[dict[str, Any]] = None
    custom_update_memory_prompt: Optional[str] = None

    @field_validator("graph_store", mode="before")
    @classmethod
    def _graph_store(cls, value: Any) -> Any:
        """Graph memory: {"provider": "sqlite"} keeps it in the store's own tables (mem0's connection keys
        accepted in "config"); "falkordb", "neo4j" (or "memgraph") name an external engine, whose own
        provider reads "config"."""
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("provider"), str):
            raise ConfigurationError('graph_store must be {"provider": "sqlite", "config": {...}}')
        unknown = set(value) - {"provider", "config"}
        if unknown:
            raise ConfigurationError(f"unknown graph_store keys: {', '.join(sorted(unknown))}")
        provider = value["provider"]
        engines = registry.available("graph_store")
        if provider != GRAPH_STORE and provider not in engines:
            raise ConfigurationError(f"graph_store provider {provider!r} is not supported: use {GRAPH_STORE!r} "
                                     f"(the graph in the store) or one of {', '.join(engines)}")
        config = value.get("config") or {}
        if not isinstance(config, dict) or (provider == GRAPH_STORE and set(config) - GRAPH_STORE_KEYS):
            raise ConfigurationError(f"graph_store config takes only {', '.join(sorted(GRAPH_STORE_KEYS))}")
        return {"provider": provider, "config": dict(config)}

    @property
    def graph_engine(self) -> Optional[dict[str, Any]]:
        """The external graph engine's {"provider", "config"}; None when the graph is off or in the store."""
        if self.graph_store is None or self.graph_store["provider"] == GRAPH_STORE:
            return None
        return self.graph_store

    @field_validator("custom_update_memory_prompt", mode="before")
    @classmethod
    def _not_supported(cls, value: Any, info: ValidationInfo) -> Any:
        if value is not None:
            raise ConfigurationError(f"{info.field_name} is not supported yet: remove it from the config "
                                     "(memlane would otherwise run without it)")
        return value

    @field_validator("version", mode="before")
    @classmethod
    def _known_version(cls, value: Any) -> Any:
        if value is not None and value != SUPPORTED_VERSION:
            raise ConfigurationError(f"version {value!r} is not supported: memlane implements mem0's "
                                     f"{SUPPORTED_VERSION!r} API only (set version to {SUPPORTED_VERSION!r} or "
                                     "leave it out)")
        return value

    @classmethod
    def from_mem0(cls, data: dict[str, Any]) -> "MemoryConfig":
        """Build from mem0's config dict; unknown top-level keys are an error, not ignored."""
        if not isinstance(data, dict):
            raise ConfigurationError("config must be a dict")
        try:
            return cls.model_validate(data)
        except ConfigurationError:
            raise
        except Exception as exc:  # pydantic's message is precise; re-type it
            raise ConfigurationError(f"invalid config: {exc}") from exc

    @property
    def graph_enabled(self) -> bool:
        """Whether graph memory is asked for (it also needs an LLM, and the embedded store)."""
        return self.graph_store is not None

    @property
    def vector_engine(self) -> Optional[dict[str, Any]]:
        """The external vector engine's {"provider", "config"} (vector_store's provider names one of
        registry's vector_engine kind, and is not a vector_store itself); None when the store searches its own
        vectors. An engine that can run embedded (its class names the key of its local folder or file in
        LOCAL_KEY) and is given no location gets one beside the database file."""
        provider = self.vector_store.provider
        if provider in registry.available("vector_store") or provider not in registry.available("vector_engine"):
            return None
        config = dict(self.vector_store.config)
        local = getattr(registry.factory("vector_engine", provider), "LOCAL_KEY", None)
        if local and not any(config.get(key) for key in ("path", "url", "uri", "host", "client", local)):
            db = self.database_path()
            config[local] = str(db.with_name(f"{db.stem}-{provider}"))
        return {"provider": provider, "config": config}

    @model_validator(mode="after")
    def _relational_store_needs_an_engine(self) -> "MemoryConfig":
        rel = self.relational_store
        if rel is not None:
            if self.vector_engine is None:
                raise ConfigurationError(
                    f"relational_store is for an external vector engine as vector_store; {self.vector_store.provider!r}"
                    " keeps everything itself (leave relational_store out)")
            if rel.provider not in registry.available("vector_store"):
                raise ConfigurationError(f"relational_store provider {rel.provider!r} is not a store "
                                         f"(known: {', '.join(sorted(registry.available('vector_store')))})")
        return self

    @property
    def relational_provider(self) -> str:
        """The store that keeps memories, history, the message log, graph and jobs."""
        if self.vector_engine is not None:
            return self.relational_store.provider if self.relational_store is not None else EMBEDDED_STORE
        return self.vector_store.provider

    def database_path(self) -> Path:
        """The embedded database file: the path of vector_store (or of a relational_store) when it is the
        embedded store, else history_db_path, else $MEMLANE_HOME/memlane.db."""
        for store in (self.vector_store, self.relational_store):
            if store is not None and store.provider == EMBEDDED_STORE:
                path = store.config.get("path") or store.config.get("db_path")
                if path:
                    return Path(path)
        if self.history_db_path:
            return Path(self.history_db_path)
        return default_home() / "memlane.db"

    def store_config(self) -> dict[str, Any]:
        """What the vector store is built from: its own config, with the embedded store's file resolved
        (mem0's history_db_path and $MEMLANE_HOME choose it as well, and the store sees only its dict)."""
        if self.vector_engine is not None:  # the relational store keeps all but the engine's index
            dims = self.vector_store.config.get("embedding_model_dims")
            rel = self.relational_store
            if rel is not None and rel.provider != EMBEDDED_STORE:
                return {**({"embedding_model_dims": dims} if dims else {}), **rel.config}
            return {"path": str(self.database_path()), **({"embedding_model_dims": dims} if dims else {})}
        config = dict(self.vector_store.config)
        if self.vector_store.provider == EMBEDDED_STORE:
            config.pop("db_path", None)
            config["path"] = str(self.database_path())
        return config
