"""Provider registry: maps (kind, name) to a factory, so new providers never touch the core.

Built-in providers are named by import path and imported on first use, so an optional dependency
that is not installed only matters to someone who asks for that provider.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, Optional

from .errors import ConfigurationError

# vector_engine: an external vector index (Qdrant, Chroma) beside the embedded store, named as vector_store's
# provider (vector_engines/: the store keeps everything else and feeds the engine through its outbox).
KINDS = ("llm", "embedder", "vector_store", "vector_engine", "graph_store", "reranker")

Factory = Callable[[dict[str, Any]], Any]

_BUILTIN: dict[str, dict[str, str]] = {
    "embedder": {
        "local": "memlane.embeddings.local:LocalEmbedder",
        "openai": "memlane.embeddings.openai:OpenAIEmbedder",
        "azure_openai": "memlane.embeddings.azure_openai:AzureOpenAIEmbedder",
        "ollama": "memlane.embeddings.ollama:OllamaEmbedder",
        "huggingface": "memlane.embeddings.huggingface:HuggingFaceEmbedder",
        "gemini": "memlane.embeddings.gemini:GeminiEmbedder",
        "aws_bedrock": "memlane.embeddings.aws_bedrock:BedrockEmbedder",
        "together": "memlane.embeddings.together:TogetherEmbedder",
        "lmstudio": "memlane.embeddings.lmstudio:LMStudioEmbedder",
        "vertex_ai": "memlane.embeddings.vertex_ai:VertexAIEmbedder",
        "vertexai": "memlane.embeddings.vertex_ai:VertexAIEmbedder",  # mem0's name
        "fastembed": "memlane.embeddings.fastembed:FastEmbedEmbedder",
    },
    "vector_store": {
        "sqlite": "memlane.stores.sqlite:SQLiteStore",
        "pgvector": "memlane.stores.postgres:PostgresStore",
    },
    "vector_engine": {
        "qdrant": "memlane.vector_engines.qdrant:QdrantEngine",
        "chroma": "memlane.vector_engines.chroma:ChromaEngine",
        "lancedb": "memlane.vector_engines.lancedb:LanceDBEngine",
        "milvus": "memlane.vector_engines.milvus:MilvusEngine",
        "faiss": "memlane.vector_engines.faiss:FaissEngine",
        "redis": "memlane.vector_engines.redis:RedisEngine",
        "valkey": "memlane.vector_engines.redis:RedisEngine",
        "pinecone": "memlane.vector_engines.pinecone:PineconeEngine",
        "weaviate": "memlane.vector_engines.weaviate:WeaviateEngine",
        "elasticsearch": "memlane.vector_engines.elasticsearch:ElasticsearchEngine",
        "opensearch": "memlane.vector_engines.elasticsearch:OpenSearchEngine",
        "azure_ai_search": "memlane.vector_engines.azure_ai_search:AzureAISearchEngine",
        "mongodb": "memlane.vector_engines.mongodb:MongoDBEngine",
        "langchain": "memlane.vector_engines.langchain:LangChainEngine",
    },
    "llm": {
        "openai": "memlane.llms.openai:OpenAILLM",
        "vllm": "memlane.llms.openai:VLLMLLM",
        "lmstudio": "memlane.llms.openai:LMStudioLLM",
        "groq": "memlane.llms.openai:GroqLLM",
        "together": "memlane.llms.openai:TogetherLLM",
        "deepseek": "memlane.llms.openai:DeepSeekLLM",
        "xai": "memlane.llms.openai:XAILLM",
        "openrouter": "memlane.llms.openai:OpenRouterLLM",
        "azure_openai": "memlane.llms.azure_openai:AzureOpenAILLM",
        "anthropic": "memlane.llms.anthropic:AnthropicLLM",
        "gemini": "memlane.llms.gemini:GeminiLLM",
        "ollama": "memlane.llms.ollama:OllamaLLM",
        "llamacpp": "memlane.llms.llamacpp:LlamaCppLLM",
        "litellm": "memlane.llms.litellm:LiteLLM",
        "aws_bedrock": "memlane.llms.aws_bedrock:BedrockLLM",
    },
    "graph_store": {
        "falkordb": "memlane.graphs.falkordb:FalkorDBGraph",
        "neo4j": "memlane.graphs.neo4j:Neo4jGraph",
        "memgraph": "memlane.graphs.neo4j:Neo4jGraph",  # Bolt and Cypher, as Neo4j (not tested here)
    },
    "reranker": {
        "maxsim": "memlane.rerankers.maxsim:MaxSimReranker",
        "cohere": "memlane.rerankers.cohere:CohereReranker",
        "jina": "memlane.rerankers.cohere:JinaReranker",
        "voyage": "memlane.rerankers.cohere:VoyageReranker",
        "tei": "memlane.rerankers.cohere:TEIReranker",
        "llm": "memlane.rerankers.llm:LLMReranker",
        "llm_reranker": "memlane.rerankers.llm:LLMReranker",  # mem0's name
        "cross_encoder": "memlane.rerankers.cross_encoder:CrossEncoderReranker",
        "sentence_transformer": "memlane.rerankers.cross_encoder:CrossEncoderReranker",  # mem0's name
    },
}
_registered: dict[str, dict[str, Factory | str]] = {kind: {} for kind in KINDS}


def register_provider(kind: str, name: str, factory: Factory | str) -> None:
    """Register `factory` (a callable taking the provider's config dict, or "module:attr") as `name`."""
    if kind not in KINDS:
        raise ConfigurationError(f"unknown provider kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not name or not isinstance(name, str):
        raise ConfigurationError("a provider name must be a non-empty string")
    _registered[kind][name] = factory


def available(kind: str) -> list[str]:
    return sorted(set(_BUILTIN.get(kind, {})) | set(_registered.get(kind, {})))


def _resolve(target: str) -> Factory:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)  # ConfigurationError for missing extras is raised inside
    return getattr(module, attr)


def factory(kind: str, name: str) -> Optional[Factory]:
    """The factory (usually a class) registered as `name`, imported; None when there is none."""
    found: Factory | str | None = _registered.get(kind, {}).get(name) or _BUILTIN.get(kind, {}).get(name)
    return _resolve(found) if isinstance(found, str) else found


def create(kind: str, name: str, config: dict[str, Any] | None = None) -> Any:
    """Instantiate provider `name` of `kind` with its config dict."""
    if kind not in KINDS:
        raise ConfigurationError(f"unknown provider kind {kind!r}")
    factory: Factory | str | None = _registered[kind].get(name) or _BUILTIN.get(kind, {}).get(name)
    if factory is None:
        raise ConfigurationError(
            f"unknown {kind} provider {name!r}; available: {', '.join(available(kind)) or 'none'}"
            " (register your own with memlane.register_provider)"
        )
    if isinstance(factory, str):
        factory = _resolve(factory)
    return factory(dict(config or {}))
