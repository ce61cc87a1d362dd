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

from ..azure import resolve
from ..provider_config import ProviderConfig
from .openai import OpenAIEmbedder


class AzureOpenAIEmbedder(OpenAIEmbedder):
    name = "azure_openai"

    def _configure(self, config: ProviderConfig) -> None:
        self.azure = resolve(config, prefix="EMBEDDING",
                             deployment_env=("EMBEDDING_AZURE_DEPLOYMENT",),
                             endpoint_env=("EMBEDDING_AZURE_ENDPOINT", "AZURE_OPENAI_ENDPOINT"),
                             key_hint="EMBEDDING_AZURE_OPENAI_API_KEY (or AZURE_OPENAI_API_KEY)")
        self.model = self.azure.model
        self.base_url = self.azure.base_url
        self.api_key = self.azure.api_key
        self._configure_common(config)

    def url(self) -> str:
        return self.azure.url("embeddings")

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", **self.azure.default_headers, **self.azure.auth_headers(),
                **self.extra_headers}
