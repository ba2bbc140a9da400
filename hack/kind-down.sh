#!/usr/bin/env bash
# Delete the kind cluster "juliarun" and the kubeconfig hack/kind-up.sh wrote.
#
#   hack/kind-down.sh [KUBECONFIG_FILE]   default: $HOME/.kube/juliarun-kind.yaml
set -euo pipefail

kubeconfig="${1:-$HOME/.kube/juliarun-kind.yaml}"
command -v kind >/dev/null || { echo "kind-down.sh: kind not found" >&2; exit 1; }
# Deleting a cluster that does not exist succeeds, so this is idempotent.
kind delete cluster --name juliarun --kubeconfig "$kubeconfig"
rm -f "$kubeconfig"
