"""What every HTTP embedder shares: batching under the provider's limits, the dimension (configured, known
from a table, or found by one probe call at first use), checking what comes back, and normalising it.

A provider subclass implements two pure methods: `build(texts, purpose) -> HTTPCall` for one batch and
`parse(result, count) -> list of vectors`; the I/O goes through `HTTPProvider.call` / `acall` (memlane.http),
so retries (429 with Retry-After, 5xx, timeouts) are bounded and the same for every provider.
"""
from __future__ import annotations

import asyncio
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from ..errors import ProviderError, ValidationError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..provider_config import ProviderConfig
from .base import Purpose, normalise

PROBE_TEXT = "dimension probe"


def check_texts(texts: Any) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise ValidationError("embed() takes a list of strings")
    for text in texts:
        if not isinstance(text, str):
            raise ValidationError(f"embed() takes a list of strings, got an item of type {type(text).__name__}")
    return list(texts)


class RemoteEmbedder(HTTPProvider):
    """Base of the HTTP embedders. Subclasses set `name`, `max_batch` (texts per request), optionally
    `max_batch_chars` (characters per request), and implement `build` and `parse`."""

    name = "remote"
    max_batch = 100
    max_batch_chars: Optional[int] = None
    # Requests in flight at once in aembed (one request per batch).
    max_concurrency = 4

    def __init__(self, config: ProviderConfig):
        """Takes the keys every HTTP embedder shares; the subclass takes its own and calls config.done()."""
        super().__init__(RetryPolicy.from_config(config))
        batch = config.positive_int("batch_size")
        if batch is not None:
            self.max_batch = min(batch, type(self).max_batch)
        concurrency = config.positive_int("max_concurrency")
        if concurrency is not None:
            self.max_concurrency = concurrency
        self.model: str = ""
        self._dimension: Optional[int] = None

    # ---------------------------------------------------------------- dimension

    @property
    def model_id(self) -> str:
        return f"{self.name}:{self.model}"

    @property
    def dimension(self) -> int:
        """From config `embedding_dims`, else the model table, else one probe call (made once, here)."""
        if self._dimension is None:
            self.embed([PROBE_TEXT], "search")
        assert self._dimension is not None
        return self._dimension

    # ---------------------------------------------------------------- pure, per provider

    def build(self, texts: list[str], purpose: Purpose) -> HTTPCall:
        raise NotImplementedError

    def parse(self, result: HTTPResult, count: int) -> list[Any]:
        raise NotImplementedError

    # ---------------------------------------------------------------- pure, shared

    def batches(self, texts: Sequence[str]) -> Iterator[list[str]]:
        batch: list[str] = []
        chars = 0
        for text in texts:
            if batch and (len(batch) >= self.max_batch or
                          (self.max_batch_chars and chars + len(text) > self.max_batch_chars)):
                yield batch
                batch, chars = [], 0
            batch.append(text)
            chars += len(text)
        if batch:
            yield batch

    def _json(self, result: HTTPResult) -> Any:
        try:
            return result.json()
        except ValueError as exc:
            raise ProviderError(f"{self.name}: the response is not JSON: {result.body[:200]!r}",
                                provider=self.name, status=result.status) from exc

    def _shape_error(self, detail: str) -> ProviderError:
        return ProviderError(f"{self.name}: unexpected embedding response ({detail})", provider=self.name)

    def _check(self, vectors: Any, count: int) -> np.ndarray:
        """The batch's vectors as a float32 array, checked against the count and the expected dimension."""
        if not isinstance(vectors, list) or len(vectors) != count:
            got = len(vectors) if isinstance(vectors, list) else type(vectors).__name__
            raise self._shape_error(f"{got} vectors for {count} texts")
        try:
            array = np.asarray(vectors, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            lengths = sorted({len(v) if isinstance(v, list) else -1 for v in vectors})
            raise self._shape_error(f"vectors of lengths {lengths}") from exc
        if array.ndim != 2 or array.shape[1] == 0:
            raise self._shape_error(f"array of shape {array.shape}")
        expected = self._dimension
        if expected is not None and array.shape[1] != expected:
            raise ProviderError(
                f"{self.name}: model {self.model!r} returned {array.shape[1]}-dimensional vectors, expected "
                f"{expected} (embedding_dims or the model's known size); set embedding_dims to the "
                "model's real output size", provider=self.name)
        if not np.isfinite(array).all():
            raise self._shape_error("non-finite values")
        if expected is None:
            self._dimension = int(array.shape[1])
        return array

    def _finish(self, parts: list[np.ndarray], total: int) -> np.ndarray:
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        assert out.shape[0] == total
        return normalise(out)

    # ---------------------------------------------------------------- I/O

    def _embed_batch(self, batch: list[str], purpose: Purpose) -> np.ndarray:
        return self._check(self.call(self.build(batch, purpose), lambda r: self.parse(r, len(batch))),
                           len(batch))

    async def _aembed_batch(self, batch: list[str], purpose: Purpose) -> np.ndarray:
        vectors = await self.acall(self.build(batch, purpose), lambda r: self.parse(r, len(batch)))
        return self._check(vectors, len(batch))

    def embed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        """(len(texts), dimension) float32, rows of unit length, in the order given."""
        texts = check_texts(texts)
        return self._finish([self._embed_batch(b, purpose) for b in self.batches(texts)], len(texts))

    async def aembed(self, texts: list[str], purpose: Purpose = "add") -> np.ndarray:
        texts = check_texts(texts)
        batches = list(self.batches(texts))
        if not batches:
            if self._dimension is None:
                await self._aembed_batch([PROBE_TEXT], "search")
            return self._finish([], 0)
        if self._dimension is None:  # the first batch fixes the dimension the others are checked against
            first = [await self._aembed_batch(batches[0], purpose)]
            batches = batches[1:]
        else:
            first = []
        gate = asyncio.Semaphore(self.max_concurrency)

        async def one(batch: list[str]) -> np.ndarray:
            async with gate:
                return await self._aembed_batch(batch, purpose)

        rest = await asyncio.gather(*(one(b) for b in batches))
        return self._finish(first + list(rest), len(texts))

