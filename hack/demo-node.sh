#!/usr/bin/env bash
# The operator as a cluster add-on, on this machine: a local cluster with one real node
# (kubelet + containerd), the operator image built from the Dockerfile with buildah, the chart
# installed with helm, JuliaRun in the cluster at the operator's default address, and jobs
# applied, scaled and deleted with kubectl.
#
#   make demo-node        (root; the first run builds the node's binaries and the image)
#
# Everything stops on exit, however the script ends: `juliarun cluster down` removes the
# node's processes, mounts, bridge and iptables rules.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
DIR=$(mktemp -d -t juliarun-demo-node.XXXXXX)
STATE="$DIR/cluster"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

cleanup() {
  step "stopping the cluster and its node"
  "$BIN/juliarun" cluster down --state-dir "$STATE" --kubeconfig "$DIR/kubeconfig" || true
  rm -rf "$DIR"
}
trap cleanup EXIT

step "the operator image, built from the Dockerfile with buildah (cached after the first time)"
ARCHIVE=$(bash hack/node/image.sh)

step "a local cluster with one node (binaries built on first use)"
export KUBECONFIG="$DIR/kubeconfig"
"$BIN/juliarun" cluster up --node --state-dir "$STATE" --kubeconfig "$KUBECONFIG" >/dev/null
# Nothing can be pulled here: the image goes into the node's containerd, as a pull would put it.
show "$BIN/juliarun" cluster load --state-dir "$STATE" "$ARCHIVE"
TOOLS=$("$BIN/python" -c 'from juliarun_dev import devcluster; print(devcluster.bin_dir())')
kubectl() { "$TOOLS/kubectl" "$@"; }
helm() { "$TOOLS/helm" "$@"; }
show kubectl get nodes -o wide

step "JuliaRun in the cluster: the Service juliarunremote-svc in namespace juliarun"
show kubectl apply -f hack/node/juliarun-emulator.yaml
# It accepts one token, made here (docs/install.md: ./juliarun.token), in the operator's namespace.
TOKEN=$("$BIN/python" -c 'import secrets; print(secrets.token_hex(24))')
kubectl -n juliarun create secret generic juliarun-auth --from-literal=tokens.yaml="juliarun-system: [$TOKEN]" >/dev/null
show kubectl rollout status deployment/juliarunremote -n juliarun --timeout=120s

step "the operator, installed with helm: the default in-cluster URL, the token from a Secret"
show kubectl create namespace juliarun-system
show kubectl label namespace juliarun-system pod-security.kubernetes.io/enforce=restricted
kubectl -n juliarun-system create secret generic juliarun-token --from-literal=token="$TOKEN" >/dev/null
show helm install juliarun-operator charts/juliarun-operator -n juliarun-system \
  --set image.pullPolicy=Never --set juliarun.allowInsecureHttp=true \
  --set juliarun.tokenSecret.name=juliarun-token --set 'networkPolicy.juliarun.ports={8080}' \
  --wait --timeout 3m
show kubectl get pods -n juliarun-system -o wide

step "jobs, applied with kubectl"
show kubectl create namespace demo
# Right after a first install the API server may refuse them for a few seconds (503: its
# finalizer policy learns the new CRD's schema by polling); as docs/install.md says, again.
for _ in $(seq 30); do
  kubectl create -n demo --dry-run=server -f examples/webserver.yaml >/dev/null 2>&1 && break
  sleep 1
done
show kubectl apply -n demo -f examples/julia-par-batch.yaml -f examples/webserver.yaml
show kubectl wait jrj --all -n demo --for=condition=Ready --timeout=120s
show kubectl get jrj -n demo

step "scale the parallel batch job to 6 workers and watch it (kubectl get jrj -w, 10 s)"
show kubectl scale jrj/sim -n demo --replicas=6
timeout 10 "$TOOLS/kubectl" get jrj -n demo -w || true
show kubectl wait jrj/sim -n demo --for=jsonpath='{.status.scale.running}'=6 --timeout=60s
show kubectl get jrj -n demo

step "the operator's log, as kubelet keeps it"
show kubectl logs -n juliarun-system deployment/juliarun-operator --tail=8

step "delete the jobs (the operator deletes them in JuliaRun), then uninstall"
show kubectl delete jrj --all -n demo --timeout=60s
show helm uninstall juliarun-operator -n juliarun-system --wait
