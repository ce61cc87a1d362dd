"""Azure OpenAI chat completions: OpenAI's protocol (memlane.llms.openai builds and parses the bodies) at
{azure_endpoint}/openai/deployments/{azure_deployment}/chat/completions?api-version=..., authenticated by an
`api-key` header (or a Microsoft Entra token as a bearer token).

Config keys (mem0's names): `model` (the model behind the deployment; defaults to the deployment name, and
decides whether reasoning-model parameters are sent unless `is_reasoning_model` says so), `temperature`,
`max_tokens`, `top_p`, `reasoning_effort`, `is_reasoning_model`, `structured_output` (default json_schema,
which needs api-version 2024-08-01-preview or later), `extra_headers`, `timeout`, `max_retries`,
`retry_base_delay`, `retry_max_delay`, and `azure_kwargs`:
  `api_key`         else config `api_key`, else LLM_AZURE_OPENAI_API_KEY, else AZURE_OPENAI_API_KEY
  `azure_deployment` else LLM_AZURE_DEPLOYMENT, else AZURE_OPENAI_DEPLOYMENT, else `model`
  `azure_endpoint`  else LLM_AZURE_ENDPOINT, else AZURE_OPENAI_ENDPOINT
  `api_version`     else LLM_AZURE_API_VERSION, else OPENAI_API_VERSION, else 2024-10-21
  `azure_ad_token`  else AZURE_OPENAI_AD_TOKEN; sent as `authorization: Bearer` when there is no api key
  `default_headers` extra headers on every request
"""
from __future__ import annotations

from ..azure import resolve
from ..provider_config import ProviderConfig
from .openai import OpenAILLM


class AzureOpenAILLM(OpenAILLM):
    preset = "azure_openai"

    def _configure_endpoint(self, config: ProviderConfig) -> None:
        self.azure = resolve(config, prefix="LLM",
                             deployment_env=("LLM_AZURE_DEPLOYMENT", "AZURE_OPENAI_DEPLOYMENT"),
                             endpoint_env=("LLM_AZURE_ENDPOINT", "AZURE_OPENAI_ENDPOINT"),
                             key_hint="AZURE_OPENAI_API_KEY")
        self.model = self.azure.model
        self.base_url = self.azure.base_url
        self.api_key = self.azure.api_key
        self.default_structured = "json_schema"

    # ---------------------------------------------------------------- pure (build/parse: OpenAILLM's)

    def url(self) -> str:
        return self.azure.url("chat/completions")

    def headers(self) -> dict[str, str]:
        return {"content-type": "application/json", **self.azure.default_headers, **self.extra_headers,
                **self.azure.auth_headers()}
