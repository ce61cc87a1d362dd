"""Every LLM provider against a real local server speaking its protocol (tests/fakeservers.py): what the client
sends (model, auth, schema and system-message placement, reasoning-model parameters), what comes back
(content, data, token counts), retries (429 + Retry-After, 5xx, timeouts, 401), and the async path."""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from datetime import datetime, timezone

import pytest

from fakeservers import AWS_ACCESS_KEY, AWS_SECRET_KEY, Answer, FakeServer, Received, Reply
from fakeservers import fake_server  # noqa: F401  (the fixture, found by pytest under this name)
from memlane.errors import ConfigurationError, LLMError, ProviderError
from memlane.llms.base import LLMRequest
from memlane.llms.openai import PRESETS, OpenAILLM
from memlane.registry import create

HAS_LITELLM = importlib.util.find_spec("litellm") is not None
needs_litellm = pytest.mark.skipif(not HAS_LITELLM, reason="litellm is not installed (pip install 'memlane[litellm]')")

SCHEMA = {"type": "object",
          "properties": {"facts": {"type": "array", "items": {"type": "string"}},
                         "id": {"type": ["integer", "null"]}},
          "required": ["facts", "id"], "additionalProperties": False}
DATA = {"facts": ["Likes tea"], "id": None}
SYSTEM = "You extract facts."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "I like tea."},
            {"role": "assistant", "content": "Noted."}, {"role": "user", "content": "And green tea most."}]
FAST = {"retry_base_delay": 0.001, "retry_max_delay": 0.05, "max_retries": 2, "timeout": 5}
PROVIDERS = ["openai", "azure_openai", "anthropic", "gemini", "ollama", "aws_bedrock",
             pytest.param("litellm", marks=needs_litellm)]
ENV = ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_DEPLOYMENT", "OPENAI_API_VERSION",
       "AZURE_OPENAI_AD_TOKEN", "LLM_AZURE_OPENAI_API_KEY", "LLM_AZURE_DEPLOYMENT", "LLM_AZURE_ENDPOINT",
       "LLM_AZURE_API_VERSION", "ANTHROPIC_BASE_URL", "GOOGLE_API_KEY", "GEMINI_BASE_URL", "OLLAMA_API_KEY",
       "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION",
       "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
       *(p["key_env"] for p in PRESETS.values()), *(p["url_env"] for p in PRESETS.values() if p.get("url_env")))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    # botocore (installed with litellm) must find no credentials of the machine running the tests.
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch from GitHub at import


def request(schema=SCHEMA, **kwargs) -> LLMRequest:
    return LLMRequest(messages=[dict(m) for m in MESSAGES], schema=schema, schema_name="record_facts", **kwargs)


def config_for(name: str, server: FakeServer, **extra) -> dict:
    configs = {
        "openai": {"api_key": "sk-test", "openai_base_url": f"{server.url}/v1"},
        "azure_openai": {"model": "gpt-4.1-mini", "azure_kwargs": {
            "api_key": "az-key", "azure_endpoint": server.url, "azure_deployment": "mem-dep",
            "api_version": "2024-10-21"}},
        "anthropic": {"api_key": "sk-ant-test", "anthropic_base_url": server.url},
        "gemini": {"api_key": "g-key", "gemini_base_url": server.url, "model": "gemini-2.5-flash"},
        "ollama": {"ollama_base_url": server.url, "model": "qwen3:4b"},
        "aws_bedrock": {"aws_access_key_id": AWS_ACCESS_KEY, "aws_secret_access_key": AWS_SECRET_KEY,
                        "aws_region": "us-east-1", "endpoint_url": server.url,
                        "model": "anthropic.claude-3-5-haiku-20241022-v1:0"},
        "litellm": {"model": "openai/fake-model", "api_key": "sk-lite", "api_base": f"{server.url}/v1"},
    }
    return {**configs[name], **FAST, **extra}


def make(name: str, server: FakeServer, **extra):
    return create("llm", name, config_for(name, server, **extra))


# ============================================================================ OpenAI and its presets


def test_openai_sends_model_key_and_strict_json_schema(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=120, completion_tokens=9))
    llm = make("openai", fake_server, model="gpt-4.1-mini")
    response = llm.generate(request())
    sent = fake_server.last()
    assert (sent.protocol, sent.path) == ("openai", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-test"
    body = sent.json
    assert body["model"] == "gpt-4.1-mini"
    assert body["messages"] == MESSAGES  # the system message stays a message
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "record_facts", "schema": SCHEMA, "strict": True}}
    assert body["temperature"] == 0.0 and body["max_tokens"] == 2000 and "max_completion_tokens" not in body
    assert json.loads(response.content) == DATA and response.data is None
    assert (response.prompt_tokens, response.completion_tokens, response.model) == (120, 9, "gpt-4.1-mini")


def test_openai_tool_mode_returns_the_arguments_as_data(fake_server):
    fake_server.script(Answer(data=DATA))
    response = make("openai", fake_server, structured_output="tool").generate(request())
    body = fake_server.last().json
    assert body["tools"][0]["function"]["parameters"] == SCHEMA
    assert body["tool_choice"] == {"type": "function", "function": {"name": "record_facts"}}
    assert "response_format" not in body
    assert response.data == DATA and json.loads(response.content) == DATA


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "gpt-5", "gpt-5-nano", "openai/o3"])
def test_openai_reasoning_models_get_max_completion_tokens_and_no_temperature(fake_server, model):
    llm = make("openai", fake_server, model=model, reasoning_effort="low", max_tokens=512, top_p=0.5)
    response = llm.generate(request(temperature=0.3))  # the server rejects a temperature for these models
    body = fake_server.last().json
    assert body["max_completion_tokens"] == 512 and body["reasoning_effort"] == "low"
    assert not {"max_tokens", "temperature", "top_p"} & set(body)
    assert response.content == "ok"


def test_the_fake_openai_server_rejects_what_openai_rejects(fake_server):
    # The checks the assertions above rely on are real: a reasoning model given max_tokens is refused.
    llm = make("openai", fake_server, model="o3", is_reasoning_model=False)
    with pytest.raises(ProviderError) as info:
        llm.generate(request())
    assert info.value.status == 400 and "max_completion_tokens" in str(info.value)
    loose = {"type": "object", "properties": {"a": {"type": "string"}}}
    with pytest.raises(ProviderError, match="additionalProperties"):
        make("openai", fake_server).generate(request(schema=loose))


def test_openai_is_reasoning_model_overrides_the_name(fake_server):
    make("openai", fake_server, model="my-finetune", is_reasoning_model=True).generate(request())
    body = fake_server.last().json
    assert "max_completion_tokens" in body and "temperature" not in body


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_reads_its_key_and_base_url(fake_server, monkeypatch, preset):
    spec = PRESETS[preset]
    monkeypatch.setenv(spec["key_env"], f"key-for-{preset}")
    # Without a base URL configured, the preset's own is used (checked without I/O).
    assert create("llm", preset, {}).url() == f"{spec['base_url']}/chat/completions"
    config = {**FAST, "model": "some-model"}
    if spec["url_keys"]:
        config[spec["url_keys"][0]] = f"{fake_server.url}/v1"
    else:
        config["base_url"] = f"{fake_server.url}/v1"
    fake_server.script(Answer(data=DATA))
    response = create("llm", preset, config).generate(request())
    sent = fake_server.last()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer key-for-{preset}"
    assert sent.json["model"] == "some-model"
    expected = {"json_schema": "json_schema", "json_object": "json_object"}[spec["structured"]]
    assert sent.json["response_format"]["type"] == expected
    assert json.loads(response.content) == DATA
    if spec.get("url_env"):  # the base URL environment variable works too
        monkeypatch.setenv(spec["url_env"], f"{fake_server.url}/env/v1")
        create("llm", preset, {**FAST}).generate(request(schema=None))
        assert fake_server.last().path == "/env/v1/chat/completions"


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_without_a_key(monkeypatch, preset):
    spec = PRESETS[preset]
    if spec.get("key_optional"):
        llm = create("llm", preset, {"model": "m"})
        assert "authorization" not in llm.headers()
    else:
        with pytest.raises(ConfigurationError, match=spec["key_env"]):
            create("llm", preset, {})


# ============================================================================ Azure OpenAI


def test_azure_uses_the_deployment_url_and_api_key_header(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=50, completion_tokens=5))
    response = make("azure_openai", fake_server).generate(request())
    sent = fake_server.last()
    assert sent.protocol == "azure"
    assert sent.path == "/openai/deployments/mem-dep/chat/completions"
    assert sent.query == {"api-version": "2024-10-21"}
    assert sent.headers["api-key"] == "az-key" and "authorization" not in sent.headers
    assert sent.json["response_format"]["json_schema"]["schema"] == SCHEMA
    assert sent.json["model"] == "gpt-4.1-mini"
    assert json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens) == (50, 5)


def test_azure_reuses_openai_build_and_parse():
    from memlane.llms.azure_openai import AzureOpenAILLM
    assert issubclass(AzureOpenAILLM, OpenAILLM)
    assert "build" not in AzureOpenAILLM.__dict__ and "parse" not in AzureOpenAILLM.__dict__


def test_azure_from_the_environment(fake_server, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", fake_server.url + "/")
    monkeypatch.setenv("AZURE_OPENAI_DEPLOYMENT", "o3-deployment")
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    create("llm", "azure_openai", {**FAST}).generate(request())
    sent = fake_server.last()
    assert sent.path == "/openai/deployments/o3-deployment/chat/completions"
    assert sent.query["api-version"] == "2025-04-01-preview" and sent.headers["api-key"] == "env-key"
    # the deployment name is the model: "o3-..." gets the reasoning-model parameters
    assert "max_completion_tokens" in sent.json and "temperature" not in sent.json


def test_azure_ad_token_and_errors(fake_server):
    config = config_for("azure_openai", fake_server)
    config["azure_kwargs"] = {**config["azure_kwargs"], "api_key": None, "azure_ad_token": "entra-token"}
    create("llm", "azure_openai", config).generate(request(schema=None))
    sent = fake_server.last()
    assert sent.headers["authorization"] == "Bearer entra-token" and "api-key" not in sent.headers
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_API_KEY"):
        create("llm", "azure_openai", {"azure_kwargs": {"azure_endpoint": "https://x", "azure_deployment": "d"}})
    with pytest.raises(ConfigurationError, match="AZURE_OPENAI_ENDPOINT"):
        create("llm", "azure_openai", {"azure_kwargs": {"api_key": "k", "azure_deployment": "d"}})
    with pytest.raises(ConfigurationError, match="azure_kwargs keys: endpoint"):
        create("llm", "azure_openai", {"azure_kwargs": {"endpoint": "https://x"}})


# ============================================================================ Anthropic


def test_anthropic_system_on_top_schema_as_forced_tool(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=80, completion_tokens=12))
    response = make("anthropic", fake_server, model="claude-sonnet-4-5").generate(request())
    sent = fake_server.last()
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test" and sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers
    body = sent.json
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 2000 and body["temperature"] == 0.0
    assert body["system"] == SYSTEM
    assert body["messages"] == MESSAGES[1:]
    assert body["tools"] == [{"name": "record_facts", "description": "Record the answer.", "input_schema": SCHEMA}]
    assert body["tool_choice"] == {"type": "tool", "name": "record_facts"}
    assert "top_p" not in body
    assert response.data == DATA and json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens) == (80, 12)


def test_anthropic_text_answer_and_base_url_from_env(fake_server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-ant")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_server.url)
    fake_server.script(Answer(text="Hello there"))
    response = create("llm", "anthropic", {**FAST, "max_tokens": 300, "top_p": 0.9}).generate(request(schema=None))
    body = fake_server.last().json
    assert fake_server.last().headers["x-api-key"] == "env-ant"
    assert "tools" not in body and body["max_tokens"] == 300 and body["top_p"] == 0.9
    assert response.content == "Hello there" and response.data is None


def test_anthropic_counts_cached_prompt_tokens(fake_server):
    fake_server.script(Reply(200, {"content": [{"type": "text", "text": "hi"}], "model": "m",
                                   "stop_reason": "end_turn",
                                   "usage": {"input_tokens": 5, "cache_read_input_tokens": 100,
                                             "cache_creation_input_tokens": 20, "output_tokens": 3}}))
    response = make("anthropic", fake_server).generate(request(schema=None))
    assert (response.prompt_tokens, response.completion_tokens) == (125, 3)


# ============================================================================ Gemini


def test_gemini_system_instruction_roles_and_json_schema(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=33, completion_tokens=4))
    response = make("gemini", fake_server).generate(request())
    sent = fake_server.last()
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.headers["x-goog-api-key"] == "g-key" and "key" not in sent.query
    body = sent.json
    assert body["systemInstruction"] == {"parts": [{"text": SYSTEM}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][1]["parts"] == [{"text": "Noted."}]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json" and config["responseJsonSchema"] == SCHEMA
    assert config["temperature"] == 0.0 and config["maxOutputTokens"] == 2000
    assert json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens, response.model) == (33, 4, "gemini-2.5-flash")


def test_gemini_response_schema_mode_converts_to_openapi(fake_server, monkeypatch):
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    llm = create("llm", "gemini", {**FAST, "gemini_base_url": fake_server.url, "model": "models/gemini-2.0-flash",
                                   "structured_output": "response_schema", "thinking_budget": 0})
    llm.generate(request())
    sent = fake_server.last()
    assert sent.headers["x-goog-api-key"] == "google-key"
    assert sent.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    config = sent.json["generationConfig"]
    assert "responseJsonSchema" not in config and config["thinkingConfig"] == {"thinkingBudget": 0}
    assert config["responseSchema"] == {
        "type": "OBJECT", "propertyOrdering": ["facts", "id"], "required": ["facts", "id"],
        "properties": {"facts": {"type": "ARRAY", "items": {"type": "STRING"}},
                       "id": {"type": "INTEGER", "nullable": True}}}


def test_gemini_blocked_prompt_is_an_llm_error(fake_server):
    fake_server.script(Reply(200, {"promptFeedback": {"blockReason": "SAFETY"}}))
    with pytest.raises(LLMError, match="SAFETY"):
        make("gemini", fake_server).generate(request())


def test_gemini_without_key():
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        create("llm", "gemini", {})
    with pytest.raises(ConfigurationError, match="Vertex"):
        create("llm", "gemini", {"api_key": "k", "vertexai": True})


# ============================================================================ Ollama


def test_ollama_native_chat_with_format_schema(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=70, completion_tokens=8))
    llm = make("ollama", fake_server, options={"num_ctx": 8192}, top_k=20)
    response = llm.generate(request())
    sent = fake_server.last()
    assert sent.path == "/api/chat" and "authorization" not in sent.headers
    body = sent.json
    assert body["model"] == "qwen3:4b" and body["stream"] is False
    assert body["messages"] == MESSAGES and body["format"] == SCHEMA
    assert body["options"] == {"temperature": 0.0, "num_predict": 2000, "top_k": 20, "num_ctx": 8192}
    assert json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens, response.model) == (70, 8, "qwen3:4b")


def test_ollama_host_forms(fake_server, monkeypatch):
    assert create("llm", "ollama", {}).base_url == "http://localhost:11434"
    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    assert create("llm", "ollama", {}).base_url == "http://gpu-box:11434"
    monkeypatch.setenv("OLLAMA_HOST", fake_server.url.split("://")[1])  # host:port, no scheme
    fake_server.script(Answer(text="plain"))
    response = create("llm", "ollama", {**FAST}).generate(request(schema=None))
    assert response.content == "plain" and "format" not in fake_server.last().json


def test_ollama_model_not_found(fake_server):
    fake_server.script(Reply(404, {"error": "model 'nope' not found, try pulling it first"}))
    with pytest.raises(ProviderError) as info:
        make("ollama", fake_server, model="nope").generate(request())
    assert info.value.status == 404 and "try pulling it first" in str(info.value)
    assert len(fake_server.requests) == 1


# ============================================================================ Amazon Bedrock (Converse, SigV4)


def test_bedrock_converse_signed_and_forced_tool(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=90, completion_tokens=15))
    response = make("aws_bedrock", fake_server).generate(request())
    sent = fake_server.last()
    assert sent.protocol == "bedrock"
    # The model id is escaped once on the wire (and twice in the canonical request, as botocore does).
    assert sent.raw_path == "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
    assert sent.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/{sent.headers['x-amz-date'][:8]}/us-east-1/bedrock/"
        "aws4_request, SignedHeaders=accept;content-type;host;x-amz-date, Signature=")
    # The server verified the signature over the exact bytes received.
    assert fake_server.signature_checks == 1
    if importlib.util.find_spec("botocore"):
        assert fake_server.sigv4_verifier == "botocore"
    body = sent.json
    assert body["system"] == [{"text": SYSTEM}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "I like tea."}]},
                                {"role": "assistant", "content": [{"text": "Noted."}]},
                                {"role": "user", "content": [{"text": "And green tea most."}]}]
    assert body["inferenceConfig"] == {"maxTokens": 2000, "temperature": 0.0}
    assert body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "record_facts", "description": "Record the answer.",
                                "inputSchema": {"json": SCHEMA}}}],
        "toolChoice": {"tool": {"name": "record_facts"}}}
    assert response.data == DATA and json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens) == (90, 15)


def test_bedrock_wrong_secret_is_refused_by_the_signature_check(fake_server):
    llm = make("aws_bedrock", fake_server, aws_secret_access_key="not-the-secret")
    with pytest.raises(ProviderError) as info:
        llm.generate(request())
    assert info.value.status == 403 and "signature" in str(info.value)
    assert len(fake_server.requests) == 1  # 403 is not retried


def test_bedrock_env_credentials_session_token_and_merged_turns(fake_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "session-token/with+chars==")
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake_server.url)
    llm = create("llm", "aws_bedrock", {**FAST, "model": "arn:aws:bedrock:eu-central-1:123:inference-profile/x",
                                        "top_k": 5})
    turns = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    llm.generate(LLMRequest(messages=turns))
    sent = fake_server.last()
    assert sent.raw_path == "/model/arn%3Aaws%3Abedrock%3Aeu-central-1%3A123%3Ainference-profile%2Fx/converse"
    assert sent.headers["x-amz-security-token"] == "session-token/with+chars=="
    assert "/eu-central-1/bedrock/aws4_request, SignedHeaders=accept;content-type;host;x-amz-date;" \
           "x-amz-security-token," in sent.headers["authorization"]
    assert sent.json["messages"] == [{"role": "user", "content": [{"text": "one"}, {"text": "two"}]}]
    assert sent.json["additionalModelRequestFields"] == {"top_k": 5}
    assert "toolConfig" not in sent.json and "system" not in sent.json


def test_bedrock_api_key_is_a_bearer_token(fake_server, monkeypatch):
    fake_server.bedrock_tokens.add("bedrock-api-key")
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key")
    llm = create("llm", "aws_bedrock", {**FAST, "endpoint_url": fake_server.url})
    llm.generate(request(schema=None))
    sent = fake_server.last()
    assert sent.headers["authorization"] == "Bearer bedrock-api-key" and "x-amz-date" not in sent.headers
    assert sent.raw_path == "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/converse"


def test_bedrock_without_credentials():
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        create("llm", "aws_bedrock", {})
    with pytest.raises(ConfigurationError, match="aws_secret_access_key"):
        create("llm", "aws_bedrock", {"aws_access_key_id": "AKID"})


def test_bedrock_signs_the_exact_bytes_it_sends():
    """With a fixed clock, the signature in the built call is the one botocore computes for call.content."""
    botocore_auth = pytest.importorskip("botocore.auth")
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    llm = create("llm", "aws_bedrock", {"aws_access_key_id": AWS_ACCESS_KEY, "aws_secret_access_key": AWS_SECRET_KEY,
                                        "aws_region": "us-east-1", "model": "amazon.nova-lite-v1:0"})
    llm.clock = lambda: datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
    call = llm.build(request())
    assert call.json is None and call.content == json.dumps(
        llm.body(request()), separators=(",", ":"), ensure_ascii=False).encode()
    assert call.url == "https://bedrock-runtime.us-east-1.amazonaws.com/model/amazon.nova-lite-v1%3A0/converse"
    headers = {k: v for k, v in call.headers.items() if k != "authorization"}
    aws_request = AWSRequest(method="POST", url=call.url, data=call.content, headers=headers)
    aws_request.context["timestamp"] = "20150830T123600Z"
    auth = botocore_auth.SigV4Auth(Credentials(AWS_ACCESS_KEY, AWS_SECRET_KEY), "bedrock", "us-east-1")
    aws_request.context["payload_signing_enabled"] = True
    canonical = auth.canonical_request(aws_request)
    expected = auth.signature(auth.string_to_sign(aws_request, canonical), aws_request)
    assert call.headers["authorization"].endswith(f"Signature={expected}")


# Published AWS Signature Version 4 test vectors. The credentials, date and expected signatures are those of
# the AWS SigV4 test suite (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html), as
# reproduced in aws/aws-sdk-js-v3 packages/signature-v4/src/suite.fixture.ts (get-vanilla,
# get-vanilla-query-order-key-case, post-x-www-form-urlencoded, post-sts-header-before), and of the
# "GET iam ListUsers" example in the AWS General Reference ("Examples of the complete Signature Version 4
# signing process"), whose signature 5d672d79... is quoted by many independent implementations.
SUITE_TOKEN = ("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoI"
               "YRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDv"
               "p75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOL"
               "n9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")


@pytest.mark.parametrize("method,url,headers,body,token,service,signed,signature", [
    ("GET", "https://example.amazonaws.com/", {}, b"", None, "service", "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", {}, b"", None, "service",
     "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("POST", "https://example.amazonaws.com/", {"Content-Type": "application/x-www-form-urlencoded"},
     b"Param1=value1", None, "service", "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ("POST", "https://example.amazonaws.com/", {}, b"", SUITE_TOKEN, "service",
     "host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
    ("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08",
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}, b"", None, "iam",
     "content-type;host;x-amz-date", "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"),
], ids=["get-vanilla", "get-vanilla-query-order-key-case", "post-x-www-form-urlencoded",
        "post-sts-header-before", "iam-list-users"])
def test_sigv4_matches_the_published_aws_vectors(method, url, headers, body, token, service, signed, signature):
    from memlane.aws_sigv4 import sign
    out = sign(method, url, headers, body, AWS_ACCESS_KEY, AWS_SECRET_KEY, token, "us-east-1", service,
               datetime(2015, 8, 30, 12, 36, 0, tzinfo=timezone.utc))
    assert out["x-amz-date"] == "20150830T123600Z"
    assert out["authorization"] == (f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS_KEY}/20150830/us-east-1/{service}/"
                                    f"aws4_request, SignedHeaders={signed}, Signature={signature}")


# ============================================================================ LiteLLM


@needs_litellm
def test_litellm_through_the_openai_protocol(fake_server):
    fake_server.script(Answer(data=DATA, prompt_tokens=21, completion_tokens=6))
    response = make("litellm", fake_server, structured_output="json_schema").generate(request())
    assert len(fake_server.requests) == 1
    sent = fake_server.last()
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == "Bearer sk-lite"
    body = sent.json
    assert body["model"] == "fake-model" and body["messages"] == MESSAGES
    assert body["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "record_facts", "schema": SCHEMA, "strict": True}}
    assert body["temperature"] == 0.0 and body["max_tokens"] == 2000
    assert json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens) == (21, 6)


@needs_litellm
def test_litellm_auto_mode_and_reasoning_models(fake_server):
    make("litellm", fake_server).generate(request())  # LiteLLM does not know fake-model: json_object
    assert fake_server.last().json["response_format"] == {"type": "json_object"}
    make("litellm", fake_server, model="openai/o3-mini").generate(request())
    body = fake_server.last().json
    assert body["max_completion_tokens"] == 2000 and not {"max_tokens", "temperature"} & set(body)
    fake_server.script(Answer(data=DATA))
    response = make("litellm", fake_server, structured_output="tool").generate(request())
    assert fake_server.last().json["tool_choice"]["function"]["name"] == "record_facts"
    assert response.data == DATA


def test_litellm_missing_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "litellm", None)  # makes `import litellm` fail
    with pytest.raises(ConfigurationError, match=r"pip install 'memlane\[litellm\]'"):
        create("llm", "litellm", {})


# ============================================================================ every provider: errors and retries


@pytest.mark.parametrize("name", PROVIDERS)
def test_unknown_config_key_is_refused(fake_server, name):
    with pytest.raises(ConfigurationError, match="unknown .*temprature"):
        make(name, fake_server, temprature=0.5)


@pytest.mark.parametrize("name", PROVIDERS)
def test_429_then_success(fake_server, name):
    fake_server.script(Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0"}), Answer(data=DATA))
    response = make(name, fake_server).generate(request())
    assert len(fake_server.requests) == 2
    assert json.loads(response.content) == DATA


@pytest.mark.parametrize("name", PROVIDERS)
def test_retry_after_is_honoured(fake_server, name):
    fake_server.script(Reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0.4"}), Answer())
    llm = make(name, fake_server, retry_base_delay=0.0001, retry_max_delay=5)  # else the wait would be ~0
    started = time.monotonic()
    llm.generate(request(schema=None))
    assert 0.4 <= time.monotonic() - started < 5
    assert len(fake_server.requests) == 2


@pytest.mark.parametrize("name", PROVIDERS)
def test_persistent_500_raises_after_max_retries(fake_server, name):
    fake_server.script(*[Reply(500, {"error": {"message": "boom"}})] * 3)
    with pytest.raises(ProviderError) as info:
        make(name, fake_server, max_retries=2).generate(request())
    assert info.value.status == 500 and info.value.provider == name
    assert len(fake_server.requests) == 3


@pytest.mark.parametrize("name", PROVIDERS)
def test_timeouts_raise_after_retries(fake_server, name):
    fake_server.script(Reply(delay=1.5, body={}), Reply(delay=1.5, body={}))
    with pytest.raises(ProviderError, match="timed out") as info:
        make(name, fake_server, max_retries=1, timeout=0.3).generate(request())
    assert info.value.provider == name
    assert len(fake_server.requests) == 2


@pytest.mark.parametrize("name", PROVIDERS)
def test_401_is_not_retried(fake_server, name):
    fake_server.script(Reply(401, {"error": {"message": "bad key"}}), Answer())
    with pytest.raises(ProviderError) as info:
        make(name, fake_server).generate(request())
    assert info.value.status == 401
    assert len(fake_server.requests) == 1


@pytest.mark.parametrize("name", PROVIDERS)
def test_malformed_body_is_a_provider_error(fake_server, name):
    fake_server.script(Reply(200, "this is not json"))
    with pytest.raises(ProviderError):
        make(name, fake_server, max_retries=0).generate(request())
    if name != "litellm":
        fake_server.script(Reply(200, "this is not json"))
        with pytest.raises(LLMError) as info:
            make(name, fake_server, max_retries=0).generate(request())
        assert b"this is not json" in info.value.raw_output


@pytest.mark.parametrize("name", PROVIDERS)
async def test_agenerate(fake_server, name):
    fake_server.script(Reply(503, {"error": {"message": "busy"}}, {"retry-after": "0"}),
                       Answer(data=DATA, prompt_tokens=13, completion_tokens=2))
    llm = make(name, fake_server)
    response = await llm.agenerate(request())
    assert json.loads(response.content) == DATA
    assert (response.prompt_tokens, response.completion_tokens) == (13, 2)
    assert len(fake_server.requests) == 2
    assert isinstance(fake_server.last(), Received)


@pytest.mark.parametrize("name", PROVIDERS)
async def test_agenerate_timeout(fake_server, name):
    fake_server.script(Reply(delay=1.5, body={}))
    with pytest.raises(ProviderError, match="timed out"):
        await make(name, fake_server, max_retries=0, timeout=0.3).agenerate(request())


# ============================================================================ end to end, through Memory


@pytest.mark.parametrize("name", PROVIDERS)
def test_memory_add_through_each_provider(fake_server, tmp_path, name):
    from memlane import Memory, MemoryConfig, ProviderConfig
    from memlane.extraction import ANSWER_SCHEMA
    decision = {"memory": [{"event": "ADD", "id": None, "text": "Likes green tea", "source_messages": [0],
                            "attributed_to": "user"}]}
    fake_server.script(Answer(data=decision))
    config = MemoryConfig(vector_store=ProviderConfig(provider="sqlite", config={"path": str(tmp_path / "m.db")}),
                          llm=ProviderConfig(provider=name, config=config_for(name, fake_server)))
    memory = Memory(config)
    try:
        added = memory.add("I like green tea", user_id="alice")
        assert [(r["event"], r["memory"]) for r in added["results"]] == [("ADD", "Likes green tea")]
    finally:
        memory.close()
    sent = json.dumps(fake_server.last().json)
    assert "I like green tea" in sent
    if name != "litellm":  # LiteLLM does not know fake-model, so auto mode asks for json_object
        assert json.dumps(ANSWER_SCHEMA["properties"]["memory"]) in sent
