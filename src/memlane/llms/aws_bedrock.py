"""Amazon Bedrock through the Converse API: POST {endpoint}/model/{modelId}/converse, signed with AWS SigV4
(memlane.aws_sigv4, hashlib/hmac only; no boto3 needed). The exact bytes sent are the bytes signed.

System messages go to `system`; the others become user/assistant turns (consecutive turns of one role are
merged, as Converse wants them alternating). A schema becomes a tool the model is forced to use
(toolConfig.toolChoice {"tool": {"name": ...}}): the toolUse block's `input` is LLMResponse.data and its
JSON text the content. Forcing a tool works with Anthropic Claude, Amazon Nova and Mistral Large models; for
others set structured_output "none" (the schema is then only described by the prompt).

Config keys (mem0's names): `model` (a model or inference-profile id or ARN; default
global.anthropic.claude-haiku-4-5-20251001-v1:0), `aws_region` (else AWS_REGION / AWS_DEFAULT_REGION, else
us-west-2), `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` (else the AWS_* environment
variables), `aws_profile` (else AWS_PROFILE; needs botocore), `api_key` (a Bedrock API key, sent as a bearer
token instead of signing; else AWS_BEARER_TOKEN_BEDROCK when no access keys are given), `temperature`
(default 0), `max_tokens` (default 2000), `top_p` (sent only when set), `top_k` and `model_kwargs` (sent as
additionalModelRequestFields), `endpoint_url` (else AWS_ENDPOINT_URL_BEDROCK_RUNTIME / AWS_ENDPOINT_URL),
`structured_output` ("tool" | "none"), `timeout`, `max_retries`, `retry_base_delay`, `retry_max_delay`.
Without keys in the config or environment, botocore's credential chain (profiles, SSO, instance roles) is
used when botocore is installed.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import quote

from ..aws_sigv4 import Credentials, bedrock_region_endpoint, botocore_credentials, sign
from ..errors import ConfigurationError, LLMError
from ..http import HTTPCall, HTTPProvider, HTTPResult, RetryPolicy
from ..provider_config import MEM0_LLM_KEYS, ProviderConfig
from .base import LLMRequest, LLMResponse

DEFAULT_MODEL = "global.anthropic.claude-haiku-4-5-20251001-v1:0"
SERVICE = "bedrock"
STRUCTURED_MODES = ("tool", "none")


class BedrockLLM(HTTPProvider):
    name = "aws_bedrock"

    def __init__(self, config: Mapping[str, Any] | None = None):
        cfg = ProviderConfig(config, self.name, "llm", ignored=MEM0_LLM_KEYS + ("reasoning_effort",))
        super().__init__(RetryPolicy.from_config(cfg))
        self.model = cfg.first("model", default=DEFAULT_MODEL)
        self.region, self.endpoint = bedrock_region_endpoint(cfg, "endpoint_url")
        self.temperature = cfg.take("temperature", 0.0)
        self.max_tokens = cfg.take("max_tokens", 2000)
        self.top_p = cfg.take("top_p")
        self.additional = cfg.mapping("model_kwargs")
        top_k = cfg.take("top_k")
        if top_k is not None:
            self.additional.setdefault("top_k", top_k)
        self.structured = cfg.choice("structured_output", STRUCTURED_MODES, "tool")
        self.bearer: Optional[str] = None
        self._credentials: Optional[Callable[[], Credentials]] = None
        self._configure_auth(cfg)
        cfg.done()
        self.clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)

    def _configure_auth(self, config: ProviderConfig) -> None:
        access, secret = config.take("aws_access_key_id"), config.take("aws_secret_access_key")
        token = config.take("aws_session_token")
        api_key = config.take("api_key")
        profile = config.take("aws_profile")
        if access or secret:
            if not (access and secret):
                raise ConfigurationError("aws_bedrock: set both aws_access_key_id and aws_secret_access_key")
            self._credentials = lambda: (access, secret, token)
            return
        if api_key:
            self.bearer = api_key
            return
        if not profile:
            access, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
            if access and secret:
                token = os.environ.get("AWS_SESSION_TOKEN")
                self._credentials = lambda: (access, secret, token)
                return
            if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):
                self.bearer = os.environ["AWS_BEARER_TOKEN_BEDROCK"]
                return
        self._credentials = botocore_credentials(profile or os.environ.get("AWS_PROFILE"), "aws_bedrock")
        if self._credentials is None:
            raise ConfigurationError(
                "aws_bedrock: no AWS credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                "AWS_SESSION_TOKEN for temporary credentials), or AWS_BEARER_TOKEN_BEDROCK, or config "
                "aws_access_key_id / aws_secret_access_key")

    # ---------------------------------------------------------------- pure (given the clock)

    def url(self) -> str:
        return f"{self.endpoint}/model/{quote(self.model, safe='')}/converse"

    def body(self, request: LLMRequest) -> dict[str, Any]:
        system = [{"text": m["content"]} for m in request.messages if m.get("role") == "system"]
        messages: list[dict[str, Any]] = []
        for m in request.messages:
            if m.get("role") == "system":
                continue
            role = "assistant" if m.get("role") == "assistant" else "user"
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"].append({"text": m["content"]})
            else:
                messages.append({"role": role, "content": [{"text": m["content"]}]})
        inference: dict[str, Any] = {}
        max_tokens = request.max_tokens or self.max_tokens
        if max_tokens:
            inference["maxTokens"] = max_tokens
        temperature = request.temperature if request.temperature is not None else self.temperature
        if temperature is not None:
            inference["temperature"] = temperature
        if self.top_p is not None:
            inference["topP"] = self.top_p
        body: dict[str, Any] = {"messages": messages, "inferenceConfig": inference}
        if system:
            body["system"] = system
        if request.schema is not None and self.structured == "tool":
            body["toolConfig"] = {
                "tools": [{"toolSpec": {"name": request.schema_name, "description": "Record the answer.",
                                        "inputSchema": {"json": request.schema}}}],
                "toolChoice": {"tool": {"name": request.schema_name}}}
        if self.additional:
            body["additionalModelRequestFields"] = self.additional
        return body

    def build(self, request: LLMRequest) -> HTTPCall:
        url = self.url()
        payload = json.dumps(self.body(request), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.bearer:
            headers["authorization"] = f"Bearer {self.bearer}"
        else:
            assert self._credentials is not None
            access, secret, token = self._credentials()
            headers = sign("POST", url, headers, payload, access, secret, token, self.region, SERVICE, self.clock())
        return HTTPCall("POST", url, headers, content=payload)

    def parse(self, result: HTTPResult) -> LLMResponse:
        try:
            payload = result.json()
            blocks = payload["output"]["message"]["content"]
            if not isinstance(blocks, list):
                raise TypeError("content is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            raise LLMError(f"aws_bedrock: unexpected response shape: {exc!r}", raw_output=result.body[:2000],
                           provider=self.name) from exc
        if payload.get("stopReason") in ("guardrail_intervened", "content_filtered"):
            raise LLMError(f"aws_bedrock: the answer was blocked ({payload['stopReason']})", raw_output=payload,
                           provider=self.name)
        data: Optional[Any] = None
        texts = []
        for block in blocks:
            if not isinstance(block, dict):
                continue
            if "toolUse" in block and data is None:
                data = (block["toolUse"] or {}).get("input")
            elif "text" in block:
                texts.append(block["text"] or "")
        content = json.dumps(data, ensure_ascii=False) if data is not None else "".join(texts)
        usage = payload.get("usage") or {}
        prompt = sum(int(usage.get(key) or 0) for key in ("inputTokens", "cacheReadInputTokens",
                                                            "cacheWriteInputTokens"))
        return LLMResponse(content=content, data=data, prompt_tokens=prompt,
                           completion_tokens=int(usage.get("outputTokens") or 0), model=self.model, raw=payload)

    # ---------------------------------------------------------------- I/O

    def generate(self, request: LLMRequest) -> LLMResponse:
        return self.call(self.build(request), self.parse)

    async def agenerate(self, request: LLMRequest) -> LLMResponse:
        return await self.acall(self.build(request), self.parse)
