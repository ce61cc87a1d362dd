"""Hosted rerank APIs that share one shape, a query and its documents in, one relevance per index out:

  cohere   POST {base}/v2/rerank  {model, query, documents, top_n}   -> {results: [{index, relevance_score}]}
  jina     POST {base}/v1/rerank  {model, query, documents, top_n}   -> {results: [{index, relevance_score}]}
  voyage   POST {base}/v1/rerank  {query, documents, model, top_k}   -> {data: [{index, relevance_score}]}
  tei      POST {base}/rerank     {query, texts, raw_scores}         -> [{index, score}]
           (Hugging Face text-embeddings-inference serving a cross-encoder)

Config keys (mem0's names where mem0 has them): `model`, `api_key` (else COHERE_API_KEY / JINA_API_KEY /
VOYAGE_API_KEY; TEI needs none unless the server was started with one), `top_k` (only the best top_k are
asked for; the others get relevance 0), `base_url` (else the service's own; TEI has no default),
`extra_headers`; `timeout`, `max_retries`, `retry_base_delay`, `retry_max_delay` (memlane.http: 429 and 5xx
are retried with backoff). Cohere's mem0 keys `return_documents` and `max_chunks_per_doc` are accepted and
not used (memlane only reads the scores; v2 takes `max_tokens_per_doc`, sent when set). Voyage also takes
`truncation`; TEI `raw_scores` (default false: the server's own sigmoid) and `truncate`.

Relevance scores come back in [0, 1] (Cohere, Jina and Voyage give them so; TEI's raw logits go through a
sigmoid), in the documents' order, whatever order the service ranks them in.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Optional

from ..errors import ConfigurationError, ProviderError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..provider_config import ProviderConfig

# mem0 cohere keys with no meaning here (accepted, not used).
IGNORED_KEYS = ("return_documents", "max_chunks_per_doc")


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class CohereReranker(HTTPProvider):
    """Cohere's rerank API (v2); the subclasses change the endpoint, body and response field names."""

    name = "cohere"
    default_base_url: Optional[str] = "https://api.cohere.com"
    path = "/v2/rerank"
    default_model: Optional[str] = "rerank-v3.5"
    key_env: tuple[str, ...] = ("COHERE_API_KEY", "CO_API_KEY")
    key_required = True
    results_field = "results"  # where the list of {index, score} is, in the response
    score_field = "relevance_score"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "reranker", ignored=IGNORED_KEYS)
        super().__init__(RetryPolicy.from_config(cfg))
        self.model: Optional[str] = cfg.first("model", default=self.default_model)
        self.api_key: Optional[str] = cfg.first("api_key", env=self.key_env)
        if self.key_required and not self.api_key:
            raise ConfigurationError(f"{self.name} reranker: no API key; set {self.key_env[0]} or config api_key")
        base_url = cfg.first("base_url", default=self.default_base_url)
        if not base_url:
            raise ConfigurationError(f"{self.name} reranker: base_url is required (the server's address)")
        self.base_url = str(base_url).rstrip("/")
        self.top_k = cfg.positive_int("top_k")
        self.extra_headers = cfg.mapping("extra_headers")
        self._configure(cfg)
        cfg.done()

    def _configure(self, config: ProviderConfig) -> None:
        """The service's own keys (subclasses override)."""
        self.max_tokens_per_doc = config.positive_int("max_tokens_per_doc")

    # ---------------------------------------------------------------- pure

    def url(self) -> str:
        return self.base_url + self.path

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        return {**headers, **self.extra_headers}

    def wanted(self, count: int) -> int:
        return min(self.top_k, count) if self.top_k else count

    def body(self, query: str, documents: list[str]) -> Any:
        body: dict[str, Any] = {"model": self.model, "query": query, "documents": documents,
                                "top_n": self.wanted(len(documents))}
        if self.max_tokens_per_doc:
            body["max_tokens_per_doc"] = self.max_tokens_per_doc
        return body

    def build(self, query: str, documents: list[str]) -> HTTPCall:
        return HTTPCall("POST", self.url(), self.headers(), self.body(query, documents))

    def rows(self, payload: Any) -> Any:
        return payload.get(self.results_field) if isinstance(payload, dict) else None

    def relevance(self, score: float) -> float:
        return score

    def parse(self, result: HTTPResult, count: int) -> list[float]:
        """One relevance in [0, 1] per document, in the documents' order; those the service did not return
        (beyond top_k) get 0."""
        try:
            payload = result.json()
        except ValueError as exc:
            raise self._shape_error(f"not JSON: {result.body[:200]!r}") from exc
        rows = self.rows(payload)
        if not isinstance(rows, list):
            raise self._shape_error(f"no {self.results_field!r} list")
        scores: list[Optional[float]] = [None] * count
        for row in rows:
            try:
                index, score = row["index"], float(row[self.score_field])
            except (KeyError, TypeError, ValueError) as exc:
                raise self._shape_error(f"bad row {row!r}") from exc
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
                raise self._shape_error(f"index {index!r} is not one of the {count} documents")
            if scores[index] is not None:
                raise self._shape_error(f"index {index} returned twice")
            if not math.isfinite(score):
                raise self._shape_error(f"score {score!r} for index {index}")
            scores[index] = min(1.0, max(0.0, self.relevance(score)))
        returned = sum(s is not None for s in scores)
        if returned < self.wanted(count):
            raise self._shape_error(f"{returned} scores for {self.wanted(count)} documents asked for")
        return [0.0 if s is None else s for s in scores]

    def _shape_error(self, detail: str) -> ProviderError:
        return ProviderError(f"{self.name}: unexpected rerank response ({detail})", provider=self.name)

    # ---------------------------------------------------------------- I/O

    def rerank(self, query: str, documents: list[str]) -> list[float]:
        if not documents:
            return []
        return self.call(self.build(query, documents), lambda r: self.parse(r, len(documents)))

    async def arerank(self, query: str, documents: list[str]) -> list[float]:
        if not documents:
            return []
        return await self.acall(self.build(query, documents), lambda r: self.parse(r, len(documents)))


class JinaReranker(CohereReranker):
    name = "jina"
    default_base_url = "https://api.jina.ai"
    path = "/v1/rerank"
    default_model = "jina-reranker-v2-base-multilingual"
    key_env = ("JINA_API_KEY",)

    def _configure(self, config: ProviderConfig) -> None:
        pass

    def body(self, query: str, documents: list[str]) -> Any:
        return {"model": self.model, "query": query, "documents": documents,
                "top_n": self.wanted(len(documents)), "return_documents": False}


class VoyageReranker(CohereReranker):
    name = "voyage"
    default_base_url = "https://api.voyageai.com"
    path = "/v1/rerank"
    default_model = "rerank-2.5"
    key_env = ("VOYAGE_API_KEY",)
    results_field = "data"

    def _configure(self, config: ProviderConfig) -> None:
        self.truncation = config.take("truncation")

    def body(self, query: str, documents: list[str]) -> Any:
        body: dict[str, Any] = {"query": query, "documents": documents, "model": self.model,
                                "top_k": self.wanted(len(documents))}
        if self.truncation is not None:
            body["truncation"] = bool(self.truncation)
        return body


class TEIReranker(CohereReranker):
    """A text-embeddings-inference server's /rerank (a cross-encoder it serves; `model` is not sent)."""

    name = "tei"
    default_base_url = None
    path = "/rerank"
    default_model = None
    key_env = ("TEI_API_KEY",)
    key_required = False
    score_field = "score"

    def _configure(self, config: ProviderConfig) -> None:
        self.raw_scores = bool(config.take("raw_scores", False))
        self.truncate = config.take("truncate")

    def body(self, query: str, documents: list[str]) -> Any:
        body: dict[str, Any] = {"query": query, "texts": documents, "raw_scores": self.raw_scores}
        if self.truncate is not None:
            body["truncate"] = bool(self.truncate)
        return body

    def rows(self, payload: Any) -> Any:
        return payload

    def wanted(self, count: int) -> int:
        return count  # TEI scores every text; top_k is applied here

    def relevance(self, score: float) -> float:
        return sigmoid(score) if self.raw_scores else score

    def parse(self, result: HTTPResult, count: int) -> list[float]:
        scores = super().parse(result, count)
        if self.top_k and self.top_k < count:
            keep = set(sorted(range(count), key=lambda i: -scores[i])[:self.top_k])
            scores = [s if i in keep else 0.0 for i, s in enumerate(scores)]
        return scores
