"""Azure OpenAI embeddings: OpenAI's protocol at
{azure_endpoint}/openai/deployments/{azure_deployment}/embeddings?api-version=..., with an `api-key` header.

Config keys (mem0's names): `model` (the model behind the deployment, used for its known dimension and the
`dimensions` parameter; defaults to the deployment name), `embedding_dims`, `model_kwargs`, and `azure_kwargs`:
`api_key` (else EMBEDDING_AZURE_OPENAI_API_KEY / AZURE_OPENAI_API_KEY), `azure_deployment`
(else EMBEDDING_AZURE_DEPLOYMENT, else `model`), `azure_endpoint` (else EMBEDDING_AZURE_ENDPOINT /
AZURE_OPENAI_ENDPOINT), `api_version` (else EMBEDDING_AZURE_API_VERSION / OPENAI_API_VERSION, else
2024-10-21), `azure_ad_token` (sent as a bearer token instead of api-key), `default_headers`.
"""
from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from ..errors import ConfigurationError
from .openai import OpenAIEmbedder

DEFAULT_API_VERSION = "2024-10-21"
AZURE_KEYS = ("api_key", "azure_deployment", "azure_endpoint", "api_version", "azure_ad_token",
              "default_headers", "http_client_proxies")


def _env(*names: str) -> str | None:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


class AzureOpenAIEmbedder(OpenAIEmbedder):
    name = "azure_openai"

    def _configure(self, config: dict[str, Any]) -> None:
        azure = dict(config.pop("azure_kwargs", None) or {})
        unknown = set(azure) - set(AZURE_KEYS)
        if unknown:
            raise ConfigurationError(f"unknown azure_kwargs keys: {', '.join(sorted(unknown))}")
        model = config.pop("model", None)
        self.deployment = (azure.get("azure_deployment") or _env("EMBEDDING_AZURE_DEPLOYMENT") or model)
        if not self.deployment:
            raise ConfigurationError("azure_openai embedder: no deployment; set azure_kwargs.azure_deployment "
                                     "(or EMBEDDING_AZURE_DEPLOYMENT) or model")
        self.model = model or self.deployment
        endpoint = azure.get("azure_endpoint") or _env("EMBEDDING_AZURE_ENDPOINT", "AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ConfigurationError("azure_openai embedder: no endpoint; set azure_kwargs.azure_endpoint "
                                     "or EMBEDDING_AZURE_ENDPOINT")
        self.base_url = endpoint.rstrip("/")
        self.api_version = (azure.get("api_version") or _env("EMBEDDING_AZURE_API_VERSION", "OPENAI_API_VERSION")
                            or DEFAULT_API_VERSION)
        self.ad_token = azure.get("azure_ad_token") or _env("AZURE_OPENAI_AD_TOKEN")
        self.api_key = (azure.get("api_key") or config.pop("api_key", None)
                        or _env("EMBEDDING_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"))
        if not self.api_key and not self.ad_token:
            raise ConfigurationError("azure_openai embedder: no API key; set azure_kwargs.api_key or "
                                     "EMBEDDING_AZURE_OPENAI_API_KEY (or AZURE_OPENAI_API_KEY)")
        self.default_headers = dict(azure.get("default_headers") or {})
        self._configure_common(config)

    def url(self) -> str:
        return (f"{self.base_url}/openai/deployments/{quote(self.deployment, safe='')}/embeddings"
                f"?api-version={quote(self.api_version, safe='')}")

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.default_headers}
        if self.api_key:
            headers["api-key"] = self.api_key
        else:
            headers["authorization"] = f"Bearer {self.ad_token}"
        headers.update(self.extra_headers)
        return headers
