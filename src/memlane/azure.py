"""Azure OpenAI deployments, shared by the LLM and the embedder: mem0's `azure_kwargs` (falling back to
environment variables) resolved to a deployment URL and its auth headers. Pure."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional
from urllib.parse import quote

from .errors import ConfigurationError

DEFAULT_API_VERSION = "2024-10-21"
AZURE_KEYS = ("api_key", "azure_deployment", "azure_endpoint", "api_version", "azure_ad_token",
              "default_headers", "http_client_proxies")


def env(*names: str) -> Optional[str]:
    """The first of these environment variables that is set (and not empty)."""
    for name in names:
        if os.environ.get(name):
            return os.environ[name]
    return None


@dataclass
class AzureDeployment:
    deployment: str
    model: str
    base_url: str
    api_version: str
    api_key: Optional[str]
    ad_token: Optional[str]
    default_headers: dict[str, str] = field(default_factory=dict)

    def url(self, operation: str) -> str:
        return (f"{self.base_url}/openai/deployments/{quote(self.deployment, safe='')}/{operation}"
                f"?api-version={quote(self.api_version, safe='')}")

    def auth_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"api-key": self.api_key}
        return {"authorization": f"Bearer {self.ad_token}"}


def resolve(config: dict[str, Any], *, what: str, prefix: str, deployment_env: tuple[str, ...],
            endpoint_env: tuple[str, ...], key_hint: str) -> AzureDeployment:
    """Pop `azure_kwargs`, `model` and `api_key` from `config`. `prefix` is mem0's env prefix (LLM or
    EMBEDDING: LLM_AZURE_ENDPOINT, EMBEDDING_AZURE_API_VERSION, ...)."""
    azure = dict(config.pop("azure_kwargs", None) or {})
    unknown = set(azure) - set(AZURE_KEYS)
    if unknown:
        raise ConfigurationError(f"unknown {what} azure_kwargs keys: {', '.join(sorted(unknown))}")
    model = config.pop("model", None)
    deployment = azure.get("azure_deployment") or env(*deployment_env) or model
    if not deployment:
        raise ConfigurationError(f"{what}: no deployment; set azure_kwargs.azure_deployment (or "
                                 f"{deployment_env[-1]}) or model")
    endpoint = azure.get("azure_endpoint") or env(*endpoint_env)
    if not endpoint:
        raise ConfigurationError(f"{what}: no endpoint; set azure_kwargs.azure_endpoint or {endpoint_env[-1]} "
                                 "(https://<resource>.openai.azure.com)")
    api_version = azure.get("api_version") or env(f"{prefix}_AZURE_API_VERSION", "OPENAI_API_VERSION")
    api_key = (azure.get("api_key") or config.pop("api_key", None)
               or env(f"{prefix}_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"))
    ad_token = azure.get("azure_ad_token") or env("AZURE_OPENAI_AD_TOKEN")
    if not api_key and not ad_token:
        raise ConfigurationError(f"{what}: no API key; set azure_kwargs.api_key or {key_hint} "
                                 "(or azure_kwargs.azure_ad_token)")
    return AzureDeployment(deployment=deployment, model=model or deployment, base_url=endpoint.rstrip("/"),
                           api_version=api_version or DEFAULT_API_VERSION, api_key=api_key, ad_token=ad_token,
                           default_headers=dict(azure.get("default_headers") or {}))
