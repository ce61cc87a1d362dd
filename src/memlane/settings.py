"""What the pipeline reads, fixed when a Memory is built, and the type of its operations. A leaf module:
the pipeline, reindex and vectors all import it, so it imports none of them (only FusionWeights, itself a
leaf, and errors). The defaults live in the config (config.py) alone; Settings has none of its own."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generator, Optional

from .errors import ConfigurationError
from .scoring import FusionWeights

if TYPE_CHECKING:
    from .config import MemoryConfig

# A pipeline operation: a generator that yields effects (effects.py) and returns the public result.
Op = Generator[Any, Any, Any]


@dataclass(frozen=True)
class Settings:
    max_message_chars: int
    llm_configured: bool
    weights: FusionWeights
    # How many candidates each retriever contributes before fusion: max(min_candidates, factor * limit).
    candidate_factor: int
    min_candidates: int
    embedding_model: str
    dimension: int
    custom_instructions: Optional[str]
    # With an LLM, also keep each turn as an episodic memory (searchable with filters={"memory_type":
    # "episodic_memory"}); its vector is computed anyway to find related memories, so it costs no embedding.
    keep_episodic: bool
    # How many existing memories each new message brings into the reconciliation prompt, and in all.
    related_per_message: int
    max_related: int
    # Contextual indexing of conversation turns: a turn's vector takes this share of the previous turn's
    # embedding, and the previous turn is keyword-indexed beside it.
    context_weight: float
    # Embed memories sentence by sentence (speaker-prefixed) and average; see pooling.py.
    sentence_pooling: bool
    # search() reranks by default when a reranker is configured; see rerankers/base.py.
    reranker_configured: bool
    rerank_pool: int
    rerank_weight: float
    # The LLM sees images (mem0's llm config enable_vision): add() has it describe each image part, and the
    # description joins the message's text; without it images stay in the message log only.
    vision: bool
    # Graph memory (graph.py): asked for in the config (graph_store); reading it needs nothing more.
    graph_requested: bool

    @property
    def graph(self) -> bool:
        """Whether adds extract and write the graph: it is asked for and an LLM is there to extract it."""
        return self.graph_requested and self.llm_configured

    @classmethod
    def from_config(cls, config: MemoryConfig, *, embedding_model: str, dimension: int, sentence_pooling: bool,
                    llm_configured: bool, reranker_configured: bool) -> "Settings":
        """The config's values, plus what only the built providers know (the embedding space, whether an
        LLM and a reranker are there)."""
        r = config.retrieval
        instructions = "\n".join(p for p in (config.custom_instructions, config.custom_fact_extraction_prompt)
                                 if p)
        return cls(max_message_chars=config.max_message_chars, llm_configured=llm_configured,
                   weights=FusionWeights(dense=r.dense_weight, keyword=r.keyword_weight, actor=r.actor_weight,
                                         date=r.date_weight, bm25_half=r.bm25_half),
                   candidate_factor=r.candidate_factor, min_candidates=r.min_candidates,
                   embedding_model=embedding_model, dimension=dimension,
                   custom_instructions=instructions or None, keep_episodic=config.keep_episodic,
                   related_per_message=config.related_per_message, max_related=config.max_related,
                   context_weight=r.context_weight, sentence_pooling=sentence_pooling,
                   reranker_configured=reranker_configured, rerank_pool=r.rerank_pool,
                   rerank_weight=r.rerank_weight, vision=llm_configured and vision_enabled(config),
                   graph_requested=graph_requested(config))


def graph_requested(config: MemoryConfig) -> bool:
    """Whether the config asks for graph memory; it lives in the store's own database (the SQLite file or
    the PostgreSQL schema), so it needs one of those stores."""
    if config.graph_store is None:
        return False
    if config.graph_engine is not None:  # an external engine, fed through the store's outbox
        return True
    if config.vector_store.provider not in ("sqlite", "pgvector") and config.vector_engine is None:
        # the stores that keep graph tables (an external vector engine sits beside the embedded file)
        raise ConfigurationError("graph_store 'sqlite' keeps the graph in the store's own database: it needs "
                                 f"vector_store 'sqlite' or 'pgvector', not {config.vector_store.provider!r}")
    return True


# Built-in LLM providers whose request formats memlane does not yet translate OpenAI-style image parts to
# (the OpenAI-compatible ones and litellm send them as they are).
NO_VISION_PROVIDERS = ("anthropic", "gemini", "ollama", "aws_bedrock")


def vision_enabled(config: MemoryConfig) -> bool:
    """Whether the configured LLM is to describe images (llm config enable_vision, mem0's key). A provider
    that cannot be sent image parts is a ConfigurationError here, not a failed add() later."""
    llm = config.llm
    if llm is None or llm.config.get("enable_vision") is not True:
        return False
    if llm.provider in NO_VISION_PROVIDERS:
        raise ConfigurationError(f"enable_vision: memlane cannot send images to the {llm.provider} LLM "
                                 "provider yet (OpenAI-compatible providers and litellm can)")
    return True
