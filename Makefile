# The README's commands. Everything installs into .venv/ at the repo root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Go builds the control plane (kube-apiserver, etcd, kubectl, helm) on first use.
export PATH := $(CURDIR)/$(BIN):/usr/local/go/bin:$(PATH)

.PHONY: setup test unit demo bench generate clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

test: setup
	$(BIN)/python -m pytest -ra

unit: setup
	$(BIN)/python -m pytest -ra tests/unit

demo: setup
	bash hack/demo.sh

bench: setup
	$(BIN)/python bench/run.py

generate: setup
	$(BIN)/python -m juliarun_operator.gen

clean:
	rm -rf $(VENV) .pytest_cache
