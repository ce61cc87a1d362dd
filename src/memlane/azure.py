"""Azure OpenAI deployments, shared by the LLM and the embedder: mem0's `azure_kwargs` (falling back to
environment variables) resolved to a deployment URL and its auth headers. Pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote

from .errors import ConfigurationError
from .provider_config import ProviderConfig

DEFAULT_API_VERSION = "2024-10-21"


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


def resolve(config: ProviderConfig, *, prefix: str, deployment_env: tuple[str, ...],
            endpoint_env: tuple[str, ...], key_hint: str) -> AzureDeployment:
    """Take `azure_kwargs`, `model` and `api_key` from `config`. `prefix` is mem0's env prefix (LLM or
    EMBEDDING: LLM_AZURE_ENDPOINT, EMBEDDING_AZURE_API_VERSION, ...)."""
    what = config.label
    azure = config.nested("azure_kwargs", ignored=("http_client_proxies",))
    model = config.take("model")
    deployment = azure.first("azure_deployment", env=deployment_env, default=model)
    endpoint = azure.first("azure_endpoint", env=endpoint_env)
    api_version = azure.first("api_version", env=(f"{prefix}_AZURE_API_VERSION", "OPENAI_API_VERSION"),
                              default=DEFAULT_API_VERSION)
    given_key = config.first("api_key", env=(f"{prefix}_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"))
    api_key = azure.first("api_key") or given_key  # config api_key is taken either way: both is not unknown
    ad_token = azure.first("azure_ad_token", env=("AZURE_OPENAI_AD_TOKEN",))
    default_headers = azure.mapping("default_headers")
    azure.done()
    if not deployment:
        raise ConfigurationError(f"{what}: no deployment; set azure_kwargs.azure_deployment (or "
                                 f"{deployment_env[-1]}) or model")
    if not endpoint:
        raise ConfigurationError(f"{what}: no endpoint; set azure_kwargs.azure_endpoint or {endpoint_env[-1]} "
                                 "(https://<resource>.openai.azure.com)")
    if not api_key and not ad_token:
        raise ConfigurationError(f"{what}: no API key; set azure_kwargs.api_key or {key_hint} "
                                 "(or azure_kwargs.azure_ad_token)")
    return AzureDeployment(deployment=deployment, model=model or deployment, base_url=endpoint.rstrip("/"),
                           api_version=api_version, api_key=api_key, ad_token=ad_token,
                           default_headers=default_headers)
