#!/usr/bin/env bash
# The whole product on this machine: a real Kubernetes API server (etcd + kube-apiserver),
# the JuliaRun server, the operator, and every example JuliaRunJob through its life.
#
#   make demo
#
# Everything runs on loopback and is stopped on exit, however the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/.venv/bin
DIR=$(mktemp -d -t juliarun-demo.XXXXXX)
STATE="$DIR/cluster"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# SIGTERM, then up to 15 s for the process to exit; one that does not is a bug: it is killed,
# said, and the demo fails.
stop() {
  local pid=$1 name=$2
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  echo "demo: $name did not stop within 15 s of SIGTERM; killed" >&2
  kill -KILL "$pid" 2>/dev/null || true
  STOP_FAILED=1
}

cleanup() {
  step "stopping the operator, the JuliaRun server and the control plane"
  [[ -n ${OPERATOR:-} ]] && stop "$OPERATOR" "the operator"
  [[ -n ${SERVER:-} ]] && stop "$SERVER" "the JuliaRun server"
  "$BIN/juliarun" cluster down --state-dir "$STATE" >/dev/null 2>&1 || true
  rm -rf "$DIR"
  [[ -z ${STOP_FAILED:-} ]] || exit 1
}
trap cleanup EXIT

free_port() { "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

step "a local Kubernetes control plane (built from source on first use: several minutes)"
export KUBECONFIG="$DIR/kubeconfig"
"$BIN/juliarun" cluster up --state-dir "$STATE" --kubeconfig "$KUBECONFIG" >/dev/null
KUBECTL=$("$BIN/python" -c 'from juliarun_dev import devcluster; print(devcluster.ensure_binaries()["kubectl"])')
kubectl() { "$KUBECTL" "$@"; }
show kubectl version
show kubectl apply -f crds/

step "the JuliaRun server and the operator"
PORT=$(free_port)
export JULIARUN_URL="http://127.0.0.1:$PORT" JULIARUN_TOKEN=demo-token JULIARUN_NAMESPACE=demo
"$BIN/juliarun" emulator --port "$PORT" --create-delay 2 --worker-delay 0.5 --run-time 25 >"$DIR/juliarun.log" 2>&1 &
SERVER=$!
"$BIN/juliarun" operator --standalone --sync-interval 1 --metrics-port "$(free_port)" >"$DIR/operator.log" 2>&1 &
OPERATOR=$!
echo "JuliaRun server at $JULIARUN_URL; operator log in $DIR/operator.log"

step "every example JuliaRunJob, applied"
show kubectl apply -f examples/
sleep 5
show kubectl get jrj

step "scale the parallel batch job to 6 workers, and watch everything converge (kubectl get jrj -w, 25 s)"
show kubectl scale jrj/sim --replicas=6
timeout 25 "$KUBECTL" get jrj -w || true
show kubectl get jrj sim -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}) {.message}{"\n"}{end}'

step "what JuliaRun sees"
show "$BIN/juliarun" jobs --all
step "events"
show kubectl get events --sort-by=.lastTimestamp

step "delete everything: the finalizer deletes each job in JuliaRun"
show kubectl delete jrj --all --timeout=60s
show "$BIN/juliarun" jobs
