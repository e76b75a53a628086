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

.PHONY: help install lint format test bench demo demo-cord demo-sweep lock clean

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
	$(BIN)/python bench/bench_vqa.py  # needs --official DIR (VLMKIT_OFFICIAL_VQA); skips without
	$(BIN)/python bench/bench_startup.py
	$(BIN)/python bench/bench_synth.py
	$(BIN)/python bench/bench_convert.py
	$(BIN)/python bench/bench_infer.py
	$(BIN)/python bench/bench_served.py
	$(BIN)/python bench/bench_finetune.py
	$(BIN)/python bench/bench_sweep.py
	$(BIN)/python bench/bench_dpo.py
	$(BIN)/python bench/bench_grpo.py
	$(BIN)/python bench/bench_dry_run.py

# --- demo: the whole loop on built-in data, each step a target on files -------------------------
# synth -> tiny model -> baseline infer -> finetune -> tuned infer -> score --baseline, then the
# preference step: the SFT adapter's own mistakes on the training split -> pairs -> DPO from that
# adapter -> infer -> score against the SFT adapter. A second `make demo` redoes nothing; a
# deleted file redoes only what depends on it. (The tiny model is random and untrained: its
# scores are whatever it learns in a few dozen steps on CPU, reported as is.)
EXAMPLE := examples/cord-v2-sample
DEMO := $(OUT)/demo
LETTERS := $(DEMO)/letters
TINY := $(DEMO)/tiny-smolvlm
ADAPTER := $(DEMO)/adapter
GENERATE := --max-new-tokens 8 --batch-size 16 --overwrite

$(LETTERS)/synth.json: | $(INSTALLED)
	$(BIN)/vlmkit synth circled-letter --n 160 --test-fraction 0.25 --image-size 256 \
		--max-length 8 --seed 1 --workers 1 --overwrite -o $(LETTERS)

$(TINY)/tiny-model.json: | $(INSTALLED)
	$(BIN)/vlmkit tiny-model $(TINY) --family idefics3 --overwrite

$(DEMO)/baseline.jsonl: $(LETTERS)/synth.json $(TINY)/tiny-model.json
	$(BIN)/vlmkit infer $(LETTERS) --split test --model $(TINY) $(GENERATE) -o $@

$(ADAPTER)/vlmkit-adapter.json: $(LETTERS)/synth.json $(TINY)/tiny-model.json
	$(BIN)/vlmkit finetune $(LETTERS) --split train --model $(TINY) -o $(ADAPTER) --overwrite \
		--max-steps 60 --lr 1e-2 --batch-size 8 --eval $(LETTERS) --eval-split test \
		--eval-every 30 --eval-samples 40 --eval-max-new-tokens 8

$(DEMO)/tuned.jsonl: $(ADAPTER)/vlmkit-adapter.json
	$(BIN)/vlmkit infer $(LETTERS) --split test --adapter $(ADAPTER) $(GENERATE) -o $@

$(DEMO)/scores.json $(DEMO)/per-sample.jsonl &: $(DEMO)/tuned.jsonl $(DEMO)/baseline.jsonl
	$(BIN)/vlmkit score $(DEMO)/tuned.jsonl $(LETTERS)/test --baseline $(DEMO)/baseline.jsonl \
		--json $(DEMO)/scores.json --per-sample $(DEMO)/per-sample.jsonl > /dev/null

# The preference step. DPO's loss plus the chosen answer's likelihood (RPO, `sigmoid,sft`): on a
# model this small plain DPO lowers both answers' likelihood (README, finetune).
DPO := $(DEMO)/dpo

$(DEMO)/sft-train.jsonl: $(ADAPTER)/vlmkit-adapter.json
	$(BIN)/vlmkit infer $(LETTERS) --split train --adapter $(ADAPTER) $(GENERATE) -o $@

$(DEMO)/pairs/pairs.json: $(DEMO)/sft-train.jsonl
	$(BIN)/vlmkit pairs $(LETTERS) --split train $(DEMO)/sft-train.jsonl -o $(DEMO)/pairs --overwrite

$(DPO)/vlmkit-adapter.json: $(DEMO)/pairs/pairs.json
	$(BIN)/vlmkit finetune $(DEMO)/pairs --objective dpo --model $(TINY) --init-adapter $(ADAPTER) \
		-o $(DPO) --overwrite --max-steps 30 --lr 5e-3 --batch-size 8 --dpo-loss sigmoid,sft

$(DEMO)/dpo.jsonl: $(DPO)/vlmkit-adapter.json
	$(BIN)/vlmkit infer $(LETTERS) --split test --adapter $(DPO) $(GENERATE) -o $@

$(DEMO)/dpo-scores.json: $(DEMO)/dpo.jsonl $(DEMO)/tuned.jsonl
	$(BIN)/vlmkit score $(DEMO)/dpo.jsonl $(LETTERS)/test --baseline $(DEMO)/tuned.jsonl \
		--json $@ > /dev/null

$(DEMO)/report.html: $(DEMO)/scores.json $(DEMO)/per-sample.jsonl $(DEMO)/dpo-scores.json
	$(BIN)/vlmkit report $(DEMO)/scores.json $(DEMO)/dpo-scores.json \
		--per-sample $(DEMO)/per-sample.jsonl \
		--by meta.font --by meta.padding --by meta.thickness --out $@

$(DEMO)/circled-letter-paper/synth.json: | $(INSTALLED)
	$(BIN)/vlmkit synth circled-letter --preset paper --overwrite -o $(DEMO)/circled-letter-paper

$(DEMO)/cord-scores.json: $(EXAMPLE)/metadata.jsonl $(EXAMPLE)/predictions-a.jsonl $(EXAMPLE)/predictions-b.jsonl | $(INSTALLED)
	$(BIN)/vlmkit score $(EXAMPLE)/predictions-b.jsonl $(EXAMPLE) \
		--baseline $(EXAMPLE)/predictions-a.jsonl --json $@ > /dev/null

# The same loop on the nine real CORD v2 receipts (JSON task). Nine receipts are all there is,
# so it trains and scores on the same ones: a check that real JSON targets flow through every
# step, not a measure of generalisation.
CORD_TINY := $(DEMO)/cord
CORD_GENERATE := --max-new-tokens 192 --batch-size 9 --overwrite

$(CORD_TINY)/baseline.jsonl: $(TINY)/tiny-model.json
	$(BIN)/vlmkit infer $(EXAMPLE) --model $(TINY) $(CORD_GENERATE) -o $@

$(CORD_TINY)/adapter/vlmkit-adapter.json: $(TINY)/tiny-model.json $(EXAMPLE)/metadata.jsonl
	$(BIN)/vlmkit finetune $(EXAMPLE) --model $(TINY) -o $(CORD_TINY)/adapter --overwrite \
		--max-steps 80 --lr 1e-2 --batch-size 3

$(CORD_TINY)/tuned.jsonl: $(CORD_TINY)/adapter/vlmkit-adapter.json
	$(BIN)/vlmkit infer $(EXAMPLE) --adapter $(CORD_TINY)/adapter $(CORD_GENERATE) -o $@

$(CORD_TINY)/scores.json $(CORD_TINY)/per-sample.jsonl &: $(CORD_TINY)/tuned.jsonl $(CORD_TINY)/baseline.jsonl
	$(BIN)/vlmkit score $(CORD_TINY)/tuned.jsonl $(EXAMPLE) --baseline $(CORD_TINY)/baseline.jsonl \
		--json $(CORD_TINY)/scores.json --per-sample $(CORD_TINY)/per-sample.jsonl > /dev/null

$(CORD_TINY)/report.html: $(CORD_TINY)/scores.json $(CORD_TINY)/per-sample.jsonl
	$(BIN)/vlmkit report $< --per-sample $(CORD_TINY)/per-sample.jsonl --by meta.menu_items --out $@

demo-cord: $(INSTALLED) $(CORD_TINY)/report.html ## The loop on the 9 real CORD receipts (JSON)
	COLUMNS=120 $(BIN)/vlmkit score $(CORD_TINY)/tuned.jsonl $(EXAMPLE) --baseline $(CORD_TINY)/baseline.jsonl
	@echo "Report: $(CORD_TINY)/report.html"

demo: $(INSTALLED) $(DEMO)/report.html $(DEMO)/circled-letter-paper/synth.json $(DEMO)/cord-scores.json ## Run the main job end to end on built-in data
	@# The comparison table (scoring is cheap; the files above are only rebuilt when stale).
	COLUMNS=120 $(BIN)/vlmkit score $(DEMO)/tuned.jsonl $(LETTERS)/test --baseline $(DEMO)/baseline.jsonl
	@echo "The preference step (DPO from the SFT adapter, against it):"
	COLUMNS=120 $(BIN)/vlmkit score $(DEMO)/dpo.jsonl $(LETTERS)/test --baseline $(DEMO)/tuned.jsonl
	@echo "Report: $(DEMO)/report.html"

# A hyper-parameter sweep over the demo's tiny model and letters (examples/sweep/tiny-cpu.toml):
# 6 trials, the hopeless ones pruned, then its report. Run again, it trains nothing.
$(DEMO)/sweep/trials.jsonl: examples/sweep/tiny-cpu.toml $(LETTERS)/synth.json $(TINY)/tiny-model.json
	$(BIN)/vlmkit sweep examples/sweep/tiny-cpu.toml -o $(DEMO)/sweep

$(DEMO)/sweep.html: $(DEMO)/sweep/trials.jsonl
	$(BIN)/vlmkit report $(DEMO)/sweep -o $@

demo-sweep: $(INSTALLED) $(DEMO)/sweep.html ## A hyper-parameter sweep of the demo's fine-tune, and its report
	@echo "Report: $(DEMO)/sweep.html; best adapter: $(DEMO)/sweep/best"

lock: $(INSTALLED) ## Rewrite constraints.txt from the current venv
	{ echo "# Versions vlmkit is tested with (pip constraints: make install applies them)."; \
	  echo "# Regenerate after upgrading: make lock"; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^donut-python'; } > constraints.txt

clean: ## Remove outputs (keeps .venv)
	rm -rf $(OUT) .pytest_cache .ruff_cache
