"""Azure OpenAI chat completions: OpenAI's protocol (mnema.llms.openai builds and parses the bodies) at
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

import os
from typing import Any, Optional
from urllib.parse import quote

from ..errors import ConfigurationError
from .openai import OpenAILLM

DEFAULT_API_VERSION = "2024-10-21"
AZURE_KEYS = ("api_key", "azure_deployment", "azure_endpoint", "api_version", "azure_ad_token",
              "default_headers", "http_client_proxies")


def _env(*names: str) -> Optional[str]:
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


class AzureOpenAILLM(OpenAILLM):
    preset = "azure_openai"

    def _configure_endpoint(self, config: dict[str, Any]) -> None:
        azure = dict(config.pop("azure_kwargs", None) or {})
        unknown = set(azure) - set(AZURE_KEYS)
        if unknown:
            raise ConfigurationError(f"unknown azure_openai azure_kwargs keys: {', '.join(sorted(unknown))}")
        model = config.pop("model", None)
        self.deployment = (azure.get("azure_deployment") or _env("LLM_AZURE_DEPLOYMENT", "AZURE_OPENAI_DEPLOYMENT")
                           or model)
        if not self.deployment:
            raise ConfigurationError("azure_openai: no deployment; set azure_kwargs.azure_deployment (or "
                                     "AZURE_OPENAI_DEPLOYMENT) or model")
        self.model = model or self.deployment
        endpoint = azure.get("azure_endpoint") or _env("LLM_AZURE_ENDPOINT", "AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ConfigurationError("azure_openai: no endpoint; set azure_kwargs.azure_endpoint or "
                                     "AZURE_OPENAI_ENDPOINT (https://<resource>.openai.azure.com)")
        self.base_url = endpoint.rstrip("/")
        self.api_version = (azure.get("api_version") or _env("LLM_AZURE_API_VERSION", "OPENAI_API_VERSION")
                            or DEFAULT_API_VERSION)
        self.api_key = (azure.get("api_key") or config.pop("api_key", None)
                        or _env("LLM_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"))
        self.ad_token = azure.get("azure_ad_token") or _env("AZURE_OPENAI_AD_TOKEN")
        if not self.api_key and not self.ad_token:
            raise ConfigurationError("azure_openai: no API key; set AZURE_OPENAI_API_KEY or "
                                     "azure_kwargs.api_key (or azure_kwargs.azure_ad_token)")
        self.default_headers = dict(azure.get("default_headers") or {})
        self.default_structured = "json_schema"

    # ---------------------------------------------------------------- pure (build/parse: OpenAILLM's)

    def url(self) -> str:
        return (f"{self.base_url}/openai/deployments/{quote(self.deployment, safe='')}/chat/completions"
                f"?api-version={quote(self.api_version, safe='')}")

    def headers(self) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.default_headers, **self.extra_headers}
        if self.api_key:
            headers["api-key"] = self.api_key
        else:
            headers["authorization"] = f"Bearer {self.ad_token}"
        return headers
