#!/usr/bin/env bash
# Build the operator image and load it into the kind cluster from hack/kind-up.sh,
# then (optionally) install the chart using it. Needs Docker and kind.
#
#   hack/kind-load-image.sh [TAG]          default tag: the chart's appVersion
#   INSTALL=1 hack/kind-load-image.sh      also `helm upgrade --install` the chart
#
# Env: KIND_CLUSTER (default juliarun), IMAGE (default juliarun-operator),
#      KUBECONFIG (default $HOME/.kube/juliarun-kind.yaml, as kind-up.sh writes it)
set -euo pipefail

cd "$(dirname "$0")/.."
cluster="${KIND_CLUSTER:-juliarun}"
image="${IMAGE:-juliarun-operator}"
tag="${1:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/juliarun-operator/Chart.yaml)}"
export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/juliarun-kind.yaml}"

for tool in docker kind; do
  command -v "$tool" >/dev/null || { echo "kind-load-image.sh: $tool not found" >&2; exit 1; }
done
kind get clusters | grep -qx "$cluster" || { echo "kind-load-image.sh: no kind cluster $cluster (run hack/kind-up.sh)" >&2; exit 1; }

docker build -t "$image:$tag" .
# kind nodes have no registry access to a local image: copy it into the nodes.
kind load docker-image "$image:$tag" --name "$cluster"
echo "loaded $image:$tag into kind cluster $cluster" >&2

if [ "${INSTALL:-0}" = 1 ]; then
  helm="$(command -v helm || true)"
  [ -n "$helm" ] || helm="$(.venv/bin/python -c 'from juliarun_dev import devcluster; print(devcluster.ensure_binaries()["helm"])')"
  kubectl create namespace juliarun-system --dry-run=client -o yaml | kubectl apply -f -
  kubectl label namespace juliarun-system pod-security.kubernetes.io/enforce=restricted --overwrite
  # pullPolicy Never: the image exists only inside the kind nodes.
  "$helm" upgrade --install juliarun-operator charts/juliarun-operator -n juliarun-system \
    --set image.repository="$image" --set image.tag="$tag" --set image.pullPolicy=Never
fi
