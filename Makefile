# The README's commands. Everything installs into .venv/ at the repo root.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Go builds the control plane (kube-apiserver, etcd, kubectl, helm) on first use.
export PATH := $(CURDIR)/$(BIN):/usr/local/go/bin:$(PATH)

.PHONY: setup tools node-tools lint test unit integration demo demo-node demo-cli image bench generate package cluster-up cluster-down clean

setup: $(VENV)/.installed

# The runtime dependencies at the image's versions (constraints.txt), the test tools at their newest.
# The development tools (devtools/: `juliarun cluster`, `make generate`) are their own package,
# never in the wheel or the image.
$(VENV)/.installed: pyproject.toml devtools/pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e '.[test]' -e ./devtools
	touch $@
	@echo 'juliarun and kubectl-juliarun are in $(BIN); to put them (and, once built, kubectl and helm) on PATH: eval "$$($(BIN)/juliarun cluster env)"'

# System packages (lua5.4, openssl, curl) and the control-plane binaries (built once into
# ~/.cache; see README): all that `make demo` and `make cluster-up` need, no root when the
# packages are there.
tools:
	bash hack/install-system-deps.sh
	bash hack/controlplane/build.sh >/dev/null

# The local node's packages (containerd, runc, CNI plugins, buildah, mmdebstrap; root) and
# binaries: `make demo-node`, `make image` and the node's tests.
node-tools: tools
	bash hack/node/install-deps.sh
	bash hack/controlplane/build.sh node >/dev/null

# ruff (lint and format check) and mypy; configuration in pyproject.toml.
lint: setup
	$(BIN)/ruff check operator devtools tests bench hack
	$(BIN)/ruff format --check operator devtools tests bench hack
	$(BIN)/mypy

test: lint tools node-tools
	$(BIN)/python -m pytest -ra --durations=40 -n 2

unit: setup
	$(BIN)/python -m pytest -ra tests/unit

integration: setup tools node-tools
	$(BIN)/python -m pytest -ra -n 2 tests/integration

demo: setup tools
	bash hack/demo.sh

# The operator as a Pod on a local node, installed with helm (root; see docs/node.md).
demo-node: setup node-tools
	bash hack/demo-node.sh

# The operator image from the Dockerfile, with buildah (no Docker); prints the archive path.
image: node-tools
	bash hack/node/image.sh

# The JuliaRun client and server alone: one job through its life with the CLI.
demo-cli: setup
	bash hack/demo-jobs.sh

# MALLOC_ARENA_MAX as in the image (Dockerfile), so the numbers are the shipped ones.
bench: setup tools
	MALLOC_ARENA_MAX=2 $(BIN)/python bench/run.py

generate: setup
	$(BIN)/python -m juliarun_dev.gen

# The release artifacts into dist/: the wheel and sdist, and the chart as helm packages it.
package: setup
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	"$$(bash hack/controlplane/build.sh)/helm" package charts/juliarun-operator --destination dist

cluster-up: setup tools
	$(BIN)/juliarun cluster up

cluster-down: setup
	$(BIN)/juliarun cluster down

clean:
	rm -rf $(VENV) .pytest_cache
