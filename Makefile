# The two commands of the README: `make demo` and `make test`. Both set up .venv first when needed.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint bench

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup-venv.sh
	bash scripts/setup-venv.sh $(VENV)

demo: setup
	$(PY) -m pix2pix demo --out demo

test: setup lint
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/translate.py --sizes 256 512 1024 2048 4096

lint: setup
	$(PY) -m ruff check src tests
