"""memlane.provider_config: how every provider reads its config dict, and that the providers use it."""
from __future__ import annotations

from typing import Any, Callable

import pytest

from memlane.embeddings.ollama import OllamaEmbedder
from memlane.embeddings.openai import OpenAIEmbedder
from memlane.errors import ConfigurationError
from memlane.http import RetryPolicy
from memlane.llms.anthropic import AnthropicLLM
from memlane.llms.ollama import OllamaLLM
from memlane.llms.openai import OpenAILLM
from memlane.provider_config import MEM0_EMBEDDER_KEYS, MEM0_LLM_KEYS, ProviderConfig
from memlane.rerankers.maxsim import MaxSimReranker


def reader(config: dict[str, Any] | None, **kwargs: Any) -> ProviderConfig:
    return ProviderConfig(config, "acme", "llm", **kwargs)


def test_known_keys_are_read_with_defaults() -> None:
    cfg = reader({"model": "m1", "temperature": None, "max_tokens": 0})
    assert cfg.first("model", default="d") == "m1"
    assert cfg.take("temperature", 0.5) is None  # given as None: kept (e.g. "do not send temperature")
    assert cfg.take("top_p", 0.9) == 0.9  # absent: the default
    assert cfg.first("max_tokens", default=2000) == 2000  # first() treats falsy values as unset
    assert cfg.mapping("extra_headers") == {}
    cfg.done()


def test_the_callers_dict_is_not_changed() -> None:
    given = {"model": "m1"}
    reader(given).take("model")
    assert given == {"model": "m1"}


def test_mem0_legacy_keys_are_ignored() -> None:
    reader({"enable_vision": True, "vision_details": "auto", "http_client_proxies": "http://p"},
           ignored=MEM0_LLM_KEYS).done()
    ProviderConfig({"memory_add_embedding_type": "x"}, "acme", "embedder", ignored=MEM0_EMBEDDER_KEYS).done()
    with pytest.raises(ConfigurationError, match="enable_vision"):  # ignored only where the provider says so
        reader({"enable_vision": True}).done()


def test_none_values_are_ignored() -> None:
    reader({"azure_kwargs": None, "ollama_base_url": None}).done()  # mem0 dumps unset keys as None


def test_unknown_keys_raise_naming_provider_and_keys() -> None:
    cfg = reader({"model": "m", "temprature": 0.5, "colour": "red", "unset": None}, ignored=MEM0_LLM_KEYS)
    cfg.take("model")
    with pytest.raises(ConfigurationError, match=r"^unknown acme llm config keys: colour, temprature$"):
        cfg.done()


def test_aliases_first_set_wins_and_all_are_consumed() -> None:
    cfg = reader({"ollama_base_url": "http://a:1", "base_url": "http://b:2"})
    assert cfg.first("ollama_base_url", "base_url") == "http://a:1"
    cfg.done()  # both given: the alias is not an unknown key
    cfg = reader({"ollama_base_url": None, "base_url": "http://b:2"})
    assert cfg.first("ollama_base_url", "base_url") == "http://b:2"
    cfg.done()


def test_environment_fallbacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_A", "")
    monkeypatch.setenv("ACME_B", "from-env")
    assert reader({}).first("api_key", env=("ACME_A", "ACME_B"), default="d") == "from-env"
    assert reader({"api_key": "given"}).first("api_key", env=("ACME_B",)) == "given"
    monkeypatch.delenv("ACME_B")
    assert reader({}).first("api_key", env=("ACME_A", "ACME_B"), default="d") == "d"


@pytest.mark.parametrize("read, config, message", [
    (lambda c: c.choice("structured_output", ("tool", "none"), "tool"), {"structured_output": "xml"},
     "acme llm: structured_output must be one of tool, none"),
    (lambda c: c.mapping("extra_headers"), {"extra_headers": "x"}, "acme llm: extra_headers must be a dict"),
    (lambda c: c.number("timeout", 60.0, float), {"timeout": "soon"}, "acme llm: timeout must be a number"),
    (lambda c: c.positive_int("batch_size"), {"batch_size": 2.5}, "acme llm: batch_size must be a positive"),
    (lambda c: c.positive_int("batch_size"), {"batch_size": True}, "batch_size must be a positive"),
    (lambda c: c.positive_int("batch_size"), {"batch_size": 0}, "batch_size must be a positive"),
])
def test_typed_readers_raise_configuration_errors(read: Callable[[ProviderConfig], Any], config: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        read(reader(config))


def test_typed_readers_accept_what_providers_accepted() -> None:
    cfg = reader({"batch_size": "8", "embedding_dims": 3.0, "max_retries": None, "timeout": "5"})
    assert cfg.positive_int("batch_size") == 8 and cfg.positive_int("embedding_dims") == 3
    assert cfg.number("max_retries", 3, int) == 3 and cfg.number("timeout", 60.0, float) == 5.0
    assert cfg.choice("structured_output", ("tool", "none"), "tool") == "tool"


def test_a_config_that_is_not_a_dict() -> None:
    with pytest.raises(ConfigurationError, match="acme llm: config must be a dict"):
        reader(["model"])  # type: ignore[arg-type]


def test_nested_sections_and_rest() -> None:
    cfg = reader({"azure_kwargs": {"api_key": "k", "endpoint": "x", "http_client_proxies": "p"}, "a": 1})
    azure = cfg.nested("azure_kwargs", ignored=("http_client_proxies",))
    assert azure.take("api_key") == "k"
    with pytest.raises(ConfigurationError, match="^unknown acme llm azure_kwargs keys: endpoint$"):
        azure.done()
    assert cfg.rest() == {"a": 1}
    cfg.done()


# ---------------------------------------------------------------- the providers read through it

def test_retry_keys_none_means_default() -> None:
    policy = RetryPolicy.from_config(reader({"max_retries": None, "timeout": None, "retry_base_delay": None}))
    assert (policy.max_retries, policy.timeout, policy.base_delay) == (3, 60.0, 0.5)


@pytest.mark.parametrize("make, label", [
    (lambda **c: OpenAILLM({"api_key": "k", **c}), "openai llm"),
    (lambda **c: AnthropicLLM({"api_key": "k", **c}), "anthropic llm"),
    (lambda **c: OllamaLLM(c), "ollama llm"),
    (lambda **c: OpenAIEmbedder({"api_key": "k", **c}), "openai embedder"),
    (lambda **c: OllamaEmbedder(c), "ollama embedder"),
])
def test_providers_share_the_rules(make: Callable[..., Any], label: str) -> None:
    with pytest.raises(ConfigurationError, match=f"^unknown {label} config keys: colour$"):
        make(colour="red", nothing=None)
    make(http_client_proxies="http://proxy", nothing=None)
    with pytest.raises(ConfigurationError, match=f"^{label}: max_retries must be a number"):
        make(max_retries="many")


def test_provider_aliases_given_together() -> None:
    both = {"api_key": "k", "openai_base_url": "http://a/v1", "base_url": "http://b/v1"}
    assert OpenAILLM(dict(both)).base_url == OpenAIEmbedder(dict(both)).base_url == "http://a/v1"
    assert OpenAILLM({"api_key": "k", "base_url": "http://b/v1/"}).base_url == "http://b/v1"


def test_the_reranker_names_itself() -> None:
    with pytest.raises(ConfigurationError, match="^unknown maxsim reranker config keys: colour$"):
        MaxSimReranker({"colour": "red"})
    with pytest.raises(ConfigurationError, match="^maxsim reranker: cache_size"):
        MaxSimReranker({"cache_size": -1})
