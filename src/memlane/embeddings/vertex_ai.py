"""Vertex AI text embeddings through the REST `:predict` method:

  POST https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/{location}/publishers/google/
       models/{model}:predict   {"instances": [{"content": ..., "task_type": ...}], "parameters": {...}}
  -> {"predictions": [{"embeddings": {"values": [...], "statistics": {...}}}]}

Config keys (mem0's names): `model` (default gemini-embedding-001, mem0's), `embedding_dims` (sent as
outputDimensionality), `vertex_credentials_json` (a service-account key file, else GOOGLE_APPLICATION_CREDENTIALS;
needs the google-auth package), `memory_add_embedding_type` / `memory_update_embedding_type` /
`memory_search_embedding_type` (task types, default RETRIEVAL_DOCUMENT / RETRIEVAL_DOCUMENT / RETRIEVAL_QUERY);
plus `access_token` (else GOOGLE_ACCESS_TOKEN, e.g. from `gcloud auth print-access-token`: used as it is, so it
expires in about an hour), `project_id` (else the key file's, else GOOGLE_CLOUD_PROJECT), `location` (else
GOOGLE_CLOUD_LOCATION, else us-central1), `base_url` (instead of the regional endpoint), `auto_truncate`,
`batch_size`, `max_concurrency`, `timeout`, `max_retries`, `extra_headers`.

gemini-embedding-001 takes one text per request; the text-embedding-* models up to 250.
"""
from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any, Callable, Optional
from urllib.parse import quote

from ..errors import ConfigurationError
from ..http import HTTPCall, HTTPResult
from ..provider_config import MEM0_EMBEDDER_KEYS, ProviderConfig
from .base import Purpose
from .remote import RemoteEmbedder

DEFAULT_MODEL = "gemini-embedding-001"
DEFAULT_LOCATION = "us-central1"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
KNOWN_DIMENSIONS = {"gemini-embedding-001": 3072, "text-embedding-005": 768, "text-embedding-004": 768,
                    "text-multilingual-embedding-002": 768, "text-embedding-large-exp-03-07": 3072}
DEFAULT_TASKS = {"add": "RETRIEVAL_DOCUMENT", "update": "RETRIEVAL_DOCUMENT", "search": "RETRIEVAL_QUERY"}


class ServiceAccountToken:
    """Access tokens from a service-account key file, refreshed before they expire (google-auth)."""

    def __init__(self, path: str):
        try:
            from google.auth.transport.requests import Request
            from google.oauth2 import service_account
        except ImportError as exc:
            raise ConfigurationError(
                "vertex_ai embedder: a service-account key file needs the google-auth package "
                "(pip install google-auth); or pass an access token as config access_token / GOOGLE_ACCESS_TOKEN"
            ) from exc
        try:
            self._credentials = service_account.Credentials.from_service_account_file(path, scopes=[SCOPE])
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"vertex_ai embedder: cannot read the key file {path!r}: {exc}") from exc
        self._request = Request
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            if not self._credentials.valid:
                self._credentials.refresh(self._request())
            return str(self._credentials.token)


def project_of(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8") as f:
            value = json.load(f).get("project_id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class VertexAIEmbedder(RemoteEmbedder):
    name = "vertex_ai"
    max_batch = 250
    max_batch_chars = 60_000  # 20k tokens a request

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "embedder", ignored=MEM0_EMBEDDER_KEYS)
        super().__init__(cfg)
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        if self.model.startswith("gemini-embedding"):
            self.max_batch = 1
        self.tasks = {purpose: cfg.first(f"memory_{purpose}_embedding_type", default=task)
                      for purpose, task in DEFAULT_TASKS.items()}
        self.embedding_dims = cfg.positive_int("embedding_dims")
        native = KNOWN_DIMENSIONS.get(self.model)
        if self.embedding_dims and native and self.embedding_dims > native:
            raise ConfigurationError(f"vertex_ai embedder: {self.model} gives at most {native} dimensions, not "
                                     f"embedding_dims={self.embedding_dims}")
        self._dimension = self.embedding_dims or native
        self.auto_truncate = cfg.take("auto_truncate")
        self.extra_headers = cfg.mapping("extra_headers")
        token = cfg.first("access_token", env=("GOOGLE_ACCESS_TOKEN",))
        key_file = cfg.first("vertex_credentials_json", env=("GOOGLE_APPLICATION_CREDENTIALS",))
        project = cfg.first("project_id", "project")
        self.location = str(cfg.first("location", env=("GOOGLE_CLOUD_LOCATION",), default=DEFAULT_LOCATION))
        base_url = cfg.first("base_url")
        cfg.done()
        self._token: Callable[[], str]
        if token:
            self._token = lambda: str(token)
        elif key_file:
            self._token = ServiceAccountToken(str(key_file))
            project = project or project_of(str(key_file))
        else:
            raise ConfigurationError(
                "vertex_ai embedder: no credentials; set config access_token or GOOGLE_ACCESS_TOKEN (a bearer "
                "token, e.g. gcloud auth print-access-token), or vertex_credentials_json / "
                "GOOGLE_APPLICATION_CREDENTIALS (a service-account key file, with google-auth installed)")
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ConfigurationError("vertex_ai embedder: no project; set config project_id or GOOGLE_CLOUD_PROJECT")
        self.project = str(project)
        host = ("https://aiplatform.googleapis.com" if self.location == "global"
                else f"https://{self.location}-aiplatform.googleapis.com")
        self.base_url = str(base_url or host).rstrip("/")

    # ---------------------------------------------------------------- pure

    def url(self) -> str:
        return (f"{self.base_url}/v1/projects/{quote(self.project, safe='')}/locations/"
                f"{quote(self.location, safe='')}/publishers/google/models/{quote(self.model, safe='')}:predict")

    def body(self, texts: list[str], purpose: Purpose) -> dict[str, Any]:
        task = self.tasks.get(purpose)
        instances = [{"content": t, **({"task_type": task} if task else {})} for t in texts]
        parameters: dict[str, Any] = {}
        if self.embedding_dims:
            parameters["outputDimensionality"] = self.embedding_dims
        if self.auto_truncate is not None:
            parameters["autoTruncate"] = bool(self.auto_truncate)
        return {"instances": instances, **({"parameters": parameters} if parameters else {})}

    def build(self, texts: list[str], purpose: Purpose) -> HTTPCall:
        headers = {"content-type": "application/json", "authorization": f"Bearer {self._token()}",
                   **self.extra_headers}
        return HTTPCall("POST", self.url(), headers, self.body(texts, purpose))

    def parse(self, result: HTTPResult, count: int) -> list[Any]:
        payload = self._json(result)
        predictions = payload.get("predictions") if isinstance(payload, dict) else None
        if not isinstance(predictions, list):
            raise self._shape_error("no 'predictions' list")
        try:
            return [p["embeddings"]["values"] for p in predictions]
        except (KeyError, TypeError) as exc:
            raise self._shape_error(f"bad prediction: {exc!r}") from exc
