# vlmkit — every step of the loop is a target on files. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The venv is (re)installed when the project's requirements change, and only then.
INSTALLED := $(VENV)/.installed
OUT ?= out
PYTEST_ARGS ?=

.PHONY: help install lint format test bench demo lock clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@# Donut's JSON evaluator is the tests' oracle; its package declares torch and
	@# transformers as dependencies it does not need for that, so they are skipped.
	$(BIN)/python -m pip install --quiet --no-deps donut-python==1.0.9
	@touch $@

install: $(INSTALLED) ## Create or reuse .venv and install vlmkit with everything to develop it

lint: $(INSTALLED) ## ruff check + format check
	$(BIN)/ruff check vlmkit tests bench examples
	$(BIN)/ruff format --check vlmkit tests bench examples

format: $(INSTALLED) ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix vlmkit tests bench examples
	$(BIN)/ruff format vlmkit tests bench examples

test: $(INSTALLED) ## Lint, then run the test suite (what CI runs)
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(INSTALLED) ## Run the benchmarks (minutes; figures go in bench/README.md)
	$(BIN)/python bench/bench_score.py
	$(BIN)/python bench/bench_ter.py
	$(BIN)/python bench/bench_json.py
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_synth.py
	$(BIN)/python bench/bench_convert.py
	$(BIN)/python bench/bench_infer.py
	$(BIN)/python bench/bench_finetune.py

# --- demo: until finetune lands, the main job draws the paper's dataset, measures a tiny
# untrained model on circled letters (its baseline), and scores the bundled CORD predictions --
EXAMPLE := examples/cord-v2-sample
DEMO := $(OUT)/demo

demo: $(INSTALLED) ## Run the main job end to end on built-in data
	@mkdir -p $(DEMO)
	$(BIN)/vlmkit synth circled-letter --preset paper --overwrite -o $(DEMO)/circled-letter-paper
	$(BIN)/vlmkit synth circled-letter --n 64 --test-fraction 0 --image-size 256 --max-length 8 \
		--seed 1 --workers 1 --overwrite -o $(DEMO)/letters
	$(BIN)/vlmkit tiny-model $(DEMO)/tiny-smolvlm --family idefics3 --overwrite
	$(BIN)/vlmkit infer $(DEMO)/letters --model $(DEMO)/tiny-smolvlm --max-new-tokens 8 \
		--batch-size 16 -o $(DEMO)/baseline.jsonl
	$(BIN)/vlmkit score $(DEMO)/baseline.jsonl $(DEMO)/letters --json $(DEMO)/baseline-scores.json
	$(BIN)/vlmkit score $(EXAMPLE)/predictions-b.jsonl $(EXAMPLE) \
		--baseline $(EXAMPLE)/predictions-a.jsonl \
		--json $(DEMO)/scores.json --per-sample $(DEMO)/per-sample.jsonl

lock: $(INSTALLED) ## Rewrite constraints.txt from the current venv
	{ echo "# Versions vlmkit is tested with (pip constraints: make install applies them)."; \
	  echo "# Regenerate after upgrading: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^donut-python'; } > constraints.txt

clean: ## Remove outputs (keeps .venv)
	rm -rf $(OUT) .pytest_cache .ruff_cache
