#!/usr/bin/env bash
# Create (or reuse) a kind cluster named "juliarun" and write its kubeconfig.
# For machines with Docker; without it use `juliarun cluster up` instead.
#
#   hack/kind-up.sh [KUBECONFIG_FILE]     default: $HOME/.kube/juliarun-kind.yaml
#
# Env: KIND_NODE_IMAGE  node image (default: the one of the installed kind release)
# Then the tests use this cluster when JULIARUN_TEST_KUBECONFIG names <file>.
set -euo pipefail

name=juliarun
kubeconfig="${1:-$HOME/.kube/juliarun-kind.yaml}"
command -v kind >/dev/null || { echo "kind-up.sh: kind not found, see https://kind.sigs.k8s.io/" >&2; exit 1; }
mkdir -p "$(dirname "$kubeconfig")"

if kind get clusters | grep -qx "$name"; then
  echo "kind cluster $name already exists" >&2
else
  # --kubeconfig keeps kind from editing ~/.kube/config.
  kind create cluster --name "$name" --kubeconfig "$kubeconfig" --wait 120s \
    ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi
kind get kubeconfig --name "$name" >"$kubeconfig"
chmod 600 "$kubeconfig"
echo "export KUBECONFIG=$kubeconfig"
